"""The Service base class: one loop, the bus sockets, the machines, the workers, the life.

See the package's docstring for the smallest complete service.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import struct
import sys
import threading

import zmq

from bus import envelope, sockets
from bus.client import CommandClient, CommandServer, Publisher, Subscriber, ping_result
from bus.errors import CommandRefused
from bus.loop import Loop
from statecharts import activity as activity_chart
from ticgw import __version__, gateway, registry
from ticgw.clock import SYSTEM, GatewayClock
from ticgw.config import defaults
from ticgw.journal import Journal

from .backoff import Backoff
from .machines import Machines
from .worker import Worker

#: Seconds after the broker (re)connects before states are re-published (subscriptions travel
#: upstream to the publisher after the connection; best effort, the status period covers it).
REPUBLISH_DELAY = 0.3

#: The manual's row when the gateway is about to restart (section 10.3.2).
RESTART_MESSAGE = ("Veuillez attendre le redémarrage de la passerelle, puis vous reconnecter "
                   "au serveur Web ...")
#: The manual's row for every configuration save.
CONFIG_SAVED_MESSAGE = "Sauvegarde de la configuration..."

#: Seconds each service gets to acknowledge a whole-gateway restart before the next is asked.
REBOOT_STEP_TIMEOUT = 2.0


def _term(ctx: zmq.Context, log, timeout: float = 1.0) -> None:
    """Terminate the context, but never hang on a socket a stuck thread still holds."""
    done = threading.Event()

    def term():
        ctx.term()
        done.set()
    threading.Thread(target=term, name="zmq-term", daemon=True).start()
    if not done.wait(timeout):
        log.warning("a bus socket is still open in a worker; leaving without it")


class _Activity:
    """The model of the service's ``activity`` machine: its callbacks call the service."""

    def __init__(self, service: "Service"):
        self._svc = service
        self.retry_backoff = Backoff(1.0, 60.0)

    def initialise(self, event) -> None:
        self._svc._initialising()

    def enter_fault(self, event) -> None:
        self._svc._entered_fault()

    def enter_stopping(self, event) -> None:
        self._svc.loop.stop()

    def timeout(self, state: str):
        return self.retry_backoff.next() if state == "fault" else None


class Service:
    #: Service name: its registry entry, logger, bus source, topics ``<name>.*``.
    name = "service"
    #: Topic prefixes to follow; each event goes to ``on_event(topic, env)``.
    subscriptions: tuple = ()
    #: Seconds between two ``<name>.status`` events.
    status_period = 5.0
    #: Seconds ``on_stop()`` may take before the process gives up on it.
    stop_budget = 3.0

    def __init__(self, config=None, *, data_dir=None, run_dir=None, endpoints=None,
                 ctx: zmq.Context | None = None, clock=None):
        self.spec = registry.get(self.name)
        self.log = logging.getLogger(self.name)
        self.store = config
        self.settings = config.settings if config is not None else defaults()
        self.data_dir = gateway.data_dir(data_dir if data_dir is not None else
                                         getattr(config, "data_dir", None))
        self.clock = clock or SYSTEM
        self.loop = Loop(clock=self.clock.monotonic)
        self.endpoints = endpoints or gateway.endpoints(self.settings, run_dir)
        self.run_dir = self.endpoints.run_dir
        self.gateway_clock = GatewayClock(self.data_dir / "state", self.clock)
        self.started = self.clock.monotonic()
        self._own_ctx = ctx is None
        self.ctx = ctx if ctx is not None else zmq.Context()
        self._stopping = False
        self._restart_requested = False
        self._rebooting = False
        self._closed = False
        self._started = False
        self._connections = 0
        self._followers: list = []
        self.fault_reason: str | None = None
        ep = self.endpoints
        self.publisher = Publisher(self.ctx, ep.xsub, self.name, ep.keys_for(ep.xsub),
                                   clock=self.clock.time)
        self.server = CommandServer(self.ctx, ep.command(self.name), self.name,
                                    {"status": self._cmd_status, "restart": self._cmd_restart,
                                     "ping": self._cmd_ping, "reboot": self._cmd_reboot},
                                    ep.keys_for(ep.command(self.name)), loop=self.loop,
                                    clock=self.clock.time)
        self.client = CommandClient(self.ctx, ep, src=self.name)
        self.subscriber: Subscriber | None = None
        for prefix in self.subscriptions:
            self.follow(prefix, self._dispatch_event)
        self._monitor = self.publisher.sock.get_monitor_socket(
            zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        self.loop.add_reader(self._monitor, self._on_monitor)
        self.machines = Machines(self.loop, self._state_changed, self.log)
        self.disk = Worker(self.loop, "%s-disk" % self.name)
        self.journal_file = Journal(self.data_dir / "state", clock=self.gateway_clock.now,
                                    on_entry=self._journal_written)
        if self.store is not None:
            self.store.on_change = self._config_saved
        self.activity_model = _Activity(self)
        self.machine("activity", self.activity_model)

    # --- to override ------------------------------------------------------------------------

    def commands(self) -> dict:
        """The service's own commands: method -> fn(params) -> result (or a Deferred). They are
        refused, with a reason, while the service is in fault."""
        return {}

    def on_start(self) -> None:
        """Open things, start workers and timers, once. Nothing blocking: the loop runs this."""

    def initialise(self) -> bool | None:
        """Return False to stay ``initialising`` until the subclass calls ``self.ready()``.
        Raising sends the service to ``fault``, from where this is called again later."""
        return True

    def on_event(self, topic: str, env: dict) -> None:
        """An event matching ``subscriptions``."""

    def status(self) -> dict:
        """What the supervision page shows (published as ``<name>.status``)."""
        return {}

    def on_stop(self) -> None:
        """Stop workers, flush files; within ``stop_budget`` seconds."""

    # --- machines --------------------------------------------------------------------------

    def machine(self, name: str, model, chart: str | None = None):
        """Build chart ``chart`` (default: ``name`` up to its first dot) on ``model``, with its
        timers and its fault path; its state changes are published as ``<service>.state``."""
        return self.machines.build(name, model, chart)

    def fire(self, machine: str, trigger: str, *args) -> bool:
        return self.machines.fire(machine, trigger, *args)

    def _state_changed(self, machine: str, previous: str, state: str, trigger: str,
                       error: str | None) -> None:
        data = {"machine": machine, "state": state, "previous": previous, "trigger": trigger}
        if error:
            data["error"] = error
        self.publish("%s.state" % self.name, **data)

    def publish(self, topic: str, /, **data) -> dict:
        return self.publisher.publish(topic, **data)

    def publish_states(self) -> None:
        """Re-publish the current state of every machine (late joiners, reconnections)."""
        for machine, state in self.machines.states().items():
            self.publish("%s.state" % self.name, machine=machine, state=state, previous=None,
                         trigger="republish")

    @property
    def activity(self) -> str:
        return self.activity_model.state

    def snapshot(self) -> dict:
        state = self.activity
        snap = {"service": self.name, "activity": state,
                "led": activity_chart.LED.get(state, "off"), "pid": os.getpid(),
                "uptime": round(self.clock.monotonic() - self.started, 3),
                "version": __version__, "protocol": envelope.PROTOCOL,
                "machines": self.machines.states(), "faults": self.machines.faults,
                "last_fault": self.machines.last_fault}
        if state == "fault":
            snap["fault"] = self.fault_reason
        try:
            snap.update(self.status() or {})
        except Exception as e:      # e.g. asked before on_start() could run: say so, answer
            snap["status_error"] = "%s: %s" % (type(e).__name__, e)
        return snap

    def publish_status(self) -> None:
        self.publish("%s.status" % self.name, **self.snapshot())

    # --- events ------------------------------------------------------------------------------

    def follow(self, prefix: str, handler) -> None:
        """Call ``handler(topic, env)`` on the loop for every event whose topic starts with
        ``prefix``."""
        if self.subscriber is None:
            ep = self.endpoints
            self.subscriber = Subscriber(self.ctx, ep.xpub, (), ep.keys_for(ep.xpub))
            self.loop.add_reader(self.subscriber.sock,
                                 lambda: self.subscriber.drain(self._route_event))
        if prefix not in self.subscriber.prefixes:
            self.subscriber.subscribe(prefix)
        self._followers.append((prefix, handler))

    def _route_event(self, topic: str, env: dict) -> None:
        for prefix, handler in self._followers:
            if topic.startswith(prefix):
                try:
                    handler(topic, env)
                except Exception:
                    self.log.exception("handling %s failed", topic)

    def _dispatch_event(self, topic: str, env: dict) -> None:
        self.on_event(topic, env)

    def _on_monitor(self) -> None:
        while True:
            try:
                frames = self._monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            # [event (uint16) + value (int32), endpoint]: decoded here rather than with
            # zmq.utils.monitor, which imports asyncio (and ssl with it): 2 to 6 MB per process
            event = struct.unpack("=Hi", frames[0][:6])[0] if frames and len(frames[0]) >= 6 \
                else None
            if event == zmq.EVENT_CONNECTED:
                self._connections += 1
                level = logging.DEBUG if self._connections == 1 else logging.INFO
                self.log.log(level, "connected to the bus broker (%s)", self.endpoints.xsub)
                self.loop.call_later(REPUBLISH_DELAY, self._republish)
            elif event == zmq.EVENT_DISCONNECTED:
                self.log.warning("lost the bus broker (%s); reconnecting", self.endpoints.xsub)

    def _republish(self) -> None:
        if not self._stopping:
            self.publish_states()
            self.publish_status()

    # --- the journal and the configuration ------------------------------------------------

    def journal(self, message: str, on_written=None) -> None:
        """From the loop: append a row to the gateway's journal (in the disk worker), then
        publish it; ``on_written()`` runs on the loop once it is on disk."""
        def written(outcome):
            if isinstance(outcome, BaseException):
                self.log.error("journal row %r not written: %s", message, outcome)
            if on_written is not None:
                on_written()
        self.disk.submit(lambda job: self.journal_file.append(message), on_done=written,
                         name="journal")

    def journal_now(self, message: str) -> dict:
        """From a worker: append a row now (blocking); it is published from the loop."""
        return self.journal_file.append(message)

    def _journal_written(self, entry: dict) -> None:
        self.loop.post(self._publish_journal, entry)

    def _publish_journal(self, entry: dict) -> None:
        self.publish("journal", time=entry["time"], message=entry["message"])

    def _config_saved(self, files: list, by: str) -> None:
        """The configuration store wrote ``files`` (in the writing thread, never the loop):
        *Sauvegarde de la configuration...* and ``config.changed``, whoever saved."""
        if threading.get_ident() == self.loop.thread_id:
            self.journal(CONFIG_SAVED_MESSAGE)
        else:
            self.journal_now(CONFIG_SAVED_MESSAGE)
        self.loop.post(lambda: self.publish("config.changed", files=list(files), by=by))

    # --- helpers for subclasses -------------------------------------------------------------

    def run_in_thread(self, fn, *args, on_done=None, name: str | None = None):
        """Run blocking ``fn`` in a short-lived thread; ``on_done(result_or_exception)`` runs on
        the loop. Long-lived work belongs in a :class:`Worker`."""
        return self.loop.run_in_thread(fn, *args, on_done=on_done, name=name)

    def call(self, service: str, method: str, params: dict | None = None, on_reply=None,
             timeout: float = 2.0) -> str:
        """Call a peer's command from the loop; ``on_reply(result_or_exception)`` on the loop."""
        def ignore(outcome):
            if isinstance(outcome, Exception):
                self.log.warning("%s.%s: %s", service, method, outcome)
        return self.client.call_async(self.loop, service, method, params or {},
                                      on_reply or ignore, timeout)

    def ready(self) -> None:
        self.machines.fire("activity", "ready")

    def failed(self, reason: str) -> None:
        """Something the service needs broke: go to fault (commands refused, retried later)."""
        self.log.error("%s", reason)
        self.fault_reason = reason
        self.machines.fire("activity", "failed")

    # --- the activity machine's work --------------------------------------------------------

    def _initialising(self) -> None:
        if not self._started:
            self.on_start()
            self._started = True
        if self.initialise() is not False:
            self.ready()

    def _entered_fault(self) -> None:
        last = self.machines.last_fault
        if self.fault_reason is None and last is not None:
            self.fault_reason = last["error"]
        delay = self.activity_model.retry_backoff.peek()
        self.log.error("in fault (%s); retrying in about %.0f s", self.fault_reason, delay)

    def _guard(self, method: str, fn):
        def guarded(params):
            state = self.activity
            if state == "fault":
                raise CommandRefused("fault", "%s is in fault (%s); it retries on its own, "
                                     "try again in a moment" % (self.name, self.fault_reason))
            if state in ("starting", "stopping"):
                raise CommandRefused("unavailable", "%s is %s; try again in a moment"
                                     % (self.name, state))
            return fn(params)
        guarded.__name__ = getattr(fn, "__name__", method)
        return guarded

    # --- built-in commands ---------------------------------------------------------------------

    def _cmd_status(self, params: dict) -> dict:
        """The status snapshot; the machines' states are re-published too."""
        self.loop.post(self.publish_states)
        return self.snapshot()

    def _cmd_ping(self, params: dict) -> dict:
        return ping_result(self.name, __version__)

    def _cmd_restart(self, params: dict) -> dict:
        """Reply first (this return value), then stop and re-execute on the next loop turn."""
        self.loop.post(self.restart)
        return {"restarting": True}

    def _cmd_reboot(self, params: dict) -> dict:
        self.loop.post(self.restart_gateway, str(params.get("reason") or "command"))
        return {"restarting": list(registry.restart_order())}

    # --- life ---------------------------------------------------------------------------------

    def run(self, install_signals: bool = True) -> int:
        """Start, run the loop until stopped, stop cleanly. Returns the exit code (0)."""
        self.begin(install_signals)
        try:
            self.loop.run_forever()
        finally:
            self.finish()
        if self._restart_requested:
            self._exec()
        if install_signals:
            self._no_stragglers()
        return 0

    def begin(self, install_signals: bool = False) -> None:
        """Everything :meth:`run` does before its loop: a test may then step the loop itself
        (``loop.run_once``), on a fake clock, and end with :meth:`stop` and :meth:`finish`."""
        if install_signals and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self.loop.add_signal_handler(signum, self.stop, signal.Signals(signum).name)
        self.server.add_handlers({m: self._guard(m, fn) for m, fn in self.commands().items()})
        self.loop.thread_id = threading.get_ident()
        self._start()                   # before the first request is read: none finds it starting

    def finish(self) -> None:
        """Stop cleanly once the loop has ended (on_stop within its budget, sockets closed)."""
        self._shutdown()

    def _start(self) -> None:
        self.log.info("starting (pid %d, bus %s, commands %s)", os.getpid(),
                      self.endpoints.xsub, self.endpoints.command(self.name))
        self.machines.fire("activity", "begin")
        self.publish_states()
        self.publish_status()
        self.loop.call_every(self.status_period, self.publish_status)

    def stop(self, reason: str = "request") -> None:
        """Stop (on the loop): enter ``stopping``, which leaves the loop; run() then calls
        on_stop()."""
        if self._stopping:
            return
        self._stopping = True
        self.log.info("stopping (%s)", reason)
        self.machines.fire("activity", "stop")
        self.loop.stop()

    def restart(self) -> None:
        """Stop cleanly, then re-execute this process (same pid, fresh code)."""
        self._restart_requested = True
        self.stop("restart")

    def restart_gateway(self, reason: str = "command") -> None:
        """Restart the whole gateway (the manual's *Redémarrer*): the manual's row in the
        journal, then every other service in the registry's order, each asked once it is on
        disk, then this one."""
        if self._rebooting:
            return
        self._rebooting = True
        others = [n for n in registry.restart_order() if n != self.name]
        self.log.warning("restarting the whole gateway (%s): %s, then %s", reason,
                         ", ".join(others) or "no other service", self.name)

        def ask(i: int) -> None:
            if i >= len(others):
                self.loop.call_later(0.2, self.restart)
                return
            self.call(others[i], "restart", on_reply=lambda outcome: after(i, outcome),
                      timeout=REBOOT_STEP_TIMEOUT)

        def after(i: int, outcome) -> None:
            if isinstance(outcome, Exception):
                self.log.warning("%s did not acknowledge the restart: %s", others[i], outcome)
            ask(i + 1)

        self.journal(RESTART_MESSAGE, on_written=lambda: ask(0))

    def restart_argv(self) -> list:
        """The command line re-executed by restart: the launcher's that started this process
        (``$TICGW_LAUNCH``: it runs whatever release is current then), else this process's
        own (``python -m services.<name> ...``)."""
        launch = os.environ.get("TICGW_LAUNCH")
        if launch:
            return json.loads(launch)
        orig = getattr(sys, "orig_argv", None)
        if orig:
            return [sys.executable, *orig[1:]]
        return [sys.executable, "-m", self.spec.module, *sys.argv[1:]]

    def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._stopping:               # the loop ended some other way (an exception)
            self._stopping = True
            self.machines.fire("activity", "stop")
        watchdog = threading.Timer(self.stop_budget, self._overrun)
        watchdog.daemon = True
        watchdog.start()
        try:
            self.on_stop()
            self.disk.drain(1.0)
        except Exception:
            self.log.exception("on_stop failed")
        finally:
            watchdog.cancel()
        self.close()
        self.log.info("stopped")

    def _overrun(self) -> None:
        self.log.error("on_stop() overran its %.0f s budget: exiting without it", self.stop_budget)
        logging.shutdown()
        os._exit(1)

    def close(self) -> None:
        """Close every socket (short linger lets the last messages out) and the loop."""
        self.machines.cancel_timers()
        self.disk.stop(0.5)
        self.loop.remove_reader(self._monitor)
        try:
            self.publisher.sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self._monitor.close(linger=0)
        if self.subscriber is not None:
            self.loop.remove_reader(self.subscriber.sock)
            self.subscriber.close()
        self.client.close()
        self.server.close()
        self.publisher.close()
        self.loop.close()
        if self._own_ctx:
            sockets.stop_authenticator(self.ctx)
            _term(self.ctx, self.log)

    def _exec(self) -> None:
        argv = self.restart_argv()
        self.log.info("restarting: %s", " ".join(argv))
        for h in logging.getLogger().handlers:
            h.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(argv[0], argv)

    def _no_stragglers(self) -> None:
        """Non-daemon threads would hold the exit past the 5 s the supervisor waits."""
        left = [t for t in threading.enumerate()
                if t is not threading.current_thread() and not t.daemon and t.is_alive()]
        for t in left:
            t.join(timeout=0.5)
        left = [t for t in left if t.is_alive()]
        if left:
            self.log.error("threads still running at exit (%s): exiting without them",
                           ", ".join(t.name for t in left))
            logging.shutdown()
            os._exit(0)

