"""The runtime every service is built on: one loop, the bus sockets, the machines, the workers.

The smallest complete service: a registry entry, a chart, a package (``tests/echo_service.py``
is this very service; the tests run it)::

    # ticgw/registry.py: one entry
    ECHO = register(ServiceSpec("echo", "repeats what it is told, slowly", "services.echo",
                                charts=("echo",),
                                commands=(Command("echo", "say", "repeat a text",
                                                  {"text": "what to say"}, {"said": "it"}),)))

    # statecharts/echo.py: the table of contents
    NAME, DOC, INITIAL = "echo", "Quiet, or saying something.", "quiet"
    STATES = ("quiet", {"name": "saying", "on_enter": "say"})
    TRANSITIONS = ({"trigger": "heard", "source": "quiet", "dest": "saying"},
                   {"trigger": "said", "source": "saying", "dest": "quiet"},
                   {"trigger": "fault", "source": ["quiet", "saying"], "dest": "quiet"})
    TIMEOUTS = {"saying": "said"}          # no answer in time: give up
    FAULT = "fault"                        # where an exception in a callback leads

    # services/echo/__init__.py
    class Echo(Service):
        name = "echo"

        def on_start(self):                          # once, on the loop: nothing blocking
            self.voice = Worker(self.loop, "echo-voice")
            self.text = ""
            self.spoken = 0
            self.machine("echo", self)               # the chart's callbacks are our methods
                                                     # (and its triggers become methods too)
        def commands(self):                          # beside status, restart, reboot, ping
            return {"say": self.cmd_say}

        def cmd_say(self, params):
            self.text = str(params.get("text", ""))
            self.fire("echo", "heard")               # the state decides what may happen
            return {"said": self.text}

        def say(self, event):                        # entering `saying` does its work:
            self.voice.submit(slow_print, self.text, # blocking work goes to a worker
                              on_done=self._spoken)

        def _spoken(self, outcome):                  # back on the loop
            self.spoken += 1
            self.fire("echo", "said")

        def timeout(self, state):                    # seconds before TIMEOUTS[state] fires
            return 5.0

        def status(self):                            # what a supervision page shows
            return {"text": self.text, "spoken": self.spoken}

    def slow_print(job, text):                       # in the worker; job.cancelled, job.wait
        job.wait(0.2)
        print(text, flush=True)

    # services/echo/__main__.py
    sys.exit(main(Echo))

What the runtime does for it: reads the configuration once (``main``), binds the service's
command socket and connects to the broker (endpoints from the configuration), runs the
``activity`` machine (starting, initialising, operational, fault with retries, stopping),
publishes every state change as ``<name>.state`` and a status every few seconds, answers
``status``, ``ping``, ``restart`` (re-executes the process) and ``reboot`` (the whole gateway,
in the registry's order), refuses the service's own commands while it is in fault (saying so),
turns SIGTERM into a clean stop within 3 s, journals every configuration save, and routes an
exception in any machine callback to that machine's fault path.

Parts, each in its module: ``service`` (:class:`Service`), ``machines`` (charts built with
timers and a fault path), ``worker`` (:class:`Worker`: a long-lived thread with an inbox, cancel,
reports through the loop), ``backoff`` (:class:`Backoff`), ``peers`` (:class:`Peers`: the other
services' states, subscribe first, then ask), ``logs`` (:func:`setup_logging`).
"""
from __future__ import annotations

from .backoff import Backoff
from .logs import setup_logging
from .peers import Peers
from .service import CONFIG_SAVED_MESSAGE, RESTART_MESSAGE, Service
from .worker import Cancelled, Job, Worker

__all__ = ["Service", "Worker", "Job", "Cancelled", "Backoff", "Peers", "setup_logging",
           "load_configuration", "main", "RESTART_MESSAGE", "CONFIG_SAVED_MESSAGE"]


def load_configuration(log):
    """The configuration store of the data dir ($TICGW_DATA, default var/data), read once. A bad
    file is logged with its file, key and reason; the last good configuration (or the defaults)
    stays in force."""
    from ticgw import gateway
    from ticgw.config import ConfigStore, describe

    store = ConfigStore(gateway.data_dir())
    for problem in store.problems:
        log.error("configuration: %s (the last good value stays in force)", problem)
    log.info("data dir %s, site %s", store.data_dir, store.settings.site_id)
    for line in describe(store.settings):
        log.debug("config %s", line)
    return store


def main(service_cls, **kw) -> int:
    """Entry point: ``sys.exit(main(MyService))`` in a service's ``__main__``."""
    log = setup_logging(service_cls.name)
    return service_cls(load_configuration(log), **kw).run()
