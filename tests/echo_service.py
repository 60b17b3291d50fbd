"""The smallest complete service, as ``services/runtime/__init__.py`` shows it, added with one
registry entry: the tests run it in-process and as a process (``python tests/echo_service.py``).

A newcomer writes the chart in ``statecharts/echo.py`` and the service in ``services/echo/``;
here both live in this file (the chart is installed as ``statecharts.echo``) so that the test
adds nothing to the tree. ``block`` and ``slow`` are the runtime tests' extras.
"""
import sys
import time
import types
from pathlib import Path

if __name__ == "__main__":                       # the child process: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import statecharts
from bus.client import in_worker
from bus.messages import Command
from ticgw import registry

# --- statecharts/echo.py ------------------------------------------------------------------------
chart = types.ModuleType("statecharts.echo")
chart.NAME, chart.DOC, chart.INITIAL = "echo", "Quiet, or saying something.", "quiet"
chart.STATES = ("quiet", {"name": "saying", "on_enter": "say"})
chart.TRANSITIONS = ({"trigger": "heard", "source": "quiet", "dest": "saying"},
                     {"trigger": "said", "source": "saying", "dest": "quiet"},
                     {"trigger": "fault", "source": ["quiet", "saying"], "dest": "quiet"})
chart.TIMEOUTS = {"saying": "said"}              # no answer in time: give up
chart.FAULT = "fault"
sys.modules["statecharts.echo"] = chart
statecharts.echo = chart

# --- the registry entry (ticgw/registry.py) ----------------------------------------------------
if "echo" not in registry.names():
    ECHO = registry.register(registry.ServiceSpec(
        "echo", "repeats what it is told, slowly", "tests.echo_service", charts=("echo",),
        commands=(Command("echo", "say", "repeat a text", {"text": "what to say"},
                          {"said": "it"}),
                  Command("echo", "block", "a blocking job in a worker", {"seconds": "how long"},
                          {"started": "true"}),
                  Command("echo", "slow", "an answer that comes later, from a worker",
                          {"seconds": "how long"}, {"slept": "seconds"}))))


# --- services/echo/ -------------------------------------------------------------------------------
from services.runtime import Service, Worker, main  # noqa: E402 (after the entry: Bus_Echo)


class Echo(Service):
    name = "echo"
    status_period = 0.3
    subscriptions = ("journal",)

    def on_start(self):                          # once, on the loop: nothing blocking
        self.voice = Worker(self.loop, "echo-voice")
        self.text = ""
        self.spoken = 0
        self.heard_rows: list[str] = []
        self.jobs_done = 0
        self.machine("echo", self)               # the chart's callbacks are our methods
        with open(self.run_dir / "boots", "a") as f:
            f.write("%d\n" % __import__("os").getpid())

    def commands(self):                          # beside status, restart, reboot, ping
        return {"say": self.cmd_say, "block": self.cmd_block, "slow": self.cmd_slow}

    def cmd_say(self, params):
        self.text = str(params.get("text", ""))
        self.fire("echo", "heard")               # the state decides what may happen
        return {"said": self.text}

    def say(self, event):                        # entering `saying` does its work:
        self.voice.submit(slow_print, self.text,  # blocking work goes to a worker
                          on_done=self._spoken)

    def _spoken(self, outcome):
        self.spoken += 1
        self.fire("echo", "said")

    def timeout(self, state):                    # seconds before TIMEOUTS[state] fires
        return 5.0

    def status(self):                            # what a supervision page shows
        return {"text": self.text, "spoken": self.spoken, "journal": len(self.heard_rows),
                "jobs_done": self.jobs_done}

    def on_event(self, topic, env):
        self.heard_rows.append(env["data"]["message"])

    # the runtime tests' extras
    def cmd_block(self, params):
        """A blocking job in a short-lived thread; the loop stays free."""
        self.run_in_thread(time.sleep, params.get("seconds", 2.0), on_done=self._job_done)
        return {"started": True}

    def _job_done(self, outcome):
        self.jobs_done += 1

    def cmd_slow(self, params):
        """A command answered later, from a worker."""
        seconds = params.get("seconds", 0.5)
        return in_worker(self.loop, lambda: (time.sleep(seconds), {"slept": seconds})[1])

    def on_stop(self):
        self.voice.stop(0.5)
        (self.run_dir / "stopped").write_text("%d\n" % __import__("os").getpid())


def slow_print(job, text):                       # in the worker; job.cancelled, job.wait
    job.wait(0.2)
    print(text, flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--derived"]:
        # what the registry entry gave, seen by a process that registered it before loading the
        # configuration: a Bus_Echo key, a Procfile line, a chart
        from ticgw.config import BY_NAME
        print("key", BY_NAME["Bus_Echo"].name)
        print("procfile", [line for line in registry.procfile().splitlines()
                           if line.startswith("echo:")][0])
        print("charts", ",".join(statecharts.charts()))
        sys.exit(0)
    sys.exit(main(Echo))
