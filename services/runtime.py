"""The runtime every service is built on: one loop, the bus sockets, the machines, the life.

A service subclasses :class:`Service`, names itself, and fills in what it needs::

    class Modem(Service):
        name = "modem"
        subscriptions = ("uplink.state",)         # optional: events to follow -> on_event()

        def commands(self):                       # beside the built-in status, restart, ping
            return {"connect": self.cmd_connect}

        def on_start(self):                       # open things; nothing blocking on the loop
            self.link = self.machine("modem", self.link_model)

        def status(self):                         # what the supervision page shows
            return {"signal": self.signal}

Life: ``run()`` fires ``begin`` (starting -> initialising), calls ``on_start()``, then
``initialise()``; when that returns anything but False the service is ``ready`` (operational);
otherwise the subclass calls ``self.ready()`` later. SIGTERM/SIGINT only post ``stop`` to the
loop; stopping is a state (``activity.stop``), then ``on_stop()`` runs with a 3 s budget, the
sockets close with a short linger, and ``run()`` returns 0. ``restart`` replies first, stops the
same way, then re-executes the process (``os.execv``).

Every state change of every machine built with :meth:`Service.machine` is logged at INFO and
published as ``<name>.state`` {machine, state, previous, trigger}; all states are re-published at
start, on the ``status`` command and when the broker connection comes (back). ``<name>.status``
is published every ``status_period`` seconds.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

import zmq

import statecharts
from bus import envelope
from bus import endpoints as eps
from bus import sockets
from bus.client import CommandClient, CommandServer, Publisher, Subscriber, ping_result
from bus.loop import Loop
from statecharts import activity as activity_chart

LOG_FORMAT = "%(asctime)s {name} %(levelname)-5s %(message)s"
LOG_DATEFMT = "%Y-%m-%d %H:%M:%S"

#: Seconds after the broker (re)connects before states are re-published (subscriptions travel
#: upstream to the publisher after the connection; best effort, the status period covers it).
REPUBLISH_DELAY = 0.3


def setup_logging(name: str, level: str | int | None = None) -> logging.Logger:
    """Log to stderr as ``2026-11-23 12:03:04 acquisition INFO  TIC1: ...``.

    Level from the argument, else ``$TICGW_LOG_LEVEL``, else INFO. Returns the service's logger.
    """
    if level is None:
        level = os.environ.get("TICGW_LOG_LEVEL", "INFO")
    if isinstance(level, str):
        level = getattr(logging, level.upper(), logging.INFO)
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_ticgw", False):
            root.removeHandler(h)
    handler = logging.StreamHandler()
    handler._ticgw = True
    handler.setFormatter(logging.Formatter(LOG_FORMAT.format(name=name), LOG_DATEFMT))
    root.addHandler(handler)
    root.setLevel(level)
    # transitions narrates every callback at INFO; our one listener logs the state changes
    logging.getLogger("transitions").setLevel(max(level, logging.WARNING))
    return logging.getLogger(name)


def load_configuration(log: logging.Logger):
    """The data dir ($TICGW_DATA, default var/data) and its configuration store. A bad file is
    logged with its file, key and reason; the last good configuration (or the defaults) stays."""
    from pathlib import Path

    from ticgw.config import ConfigStore, describe

    data_dir = Path(os.environ.get("TICGW_DATA", "var/data"))
    store = ConfigStore(data_dir)
    for problem in store.problems:
        log.error("configuration: %s (the last good value stays in force)", problem)
    log.info("data dir %s, site %s", data_dir, store.settings.site_id)
    for line in describe(store.settings):
        log.debug("config %s", line)
    return data_dir, store


def _version() -> str:
    try:
        from ticgw import __version__
        return __version__
    except Exception:
        return "unknown"


class _Model:
    """A bare model for a transitions machine."""


class Service:
    #: Service name: logger, bus source, topics ``<name>.*``, command endpoint.
    name = "service"
    #: Topic prefixes to follow; each event goes to ``on_event(topic, env)``.
    subscriptions: tuple = ()
    #: Seconds between two ``<name>.status`` events.
    status_period = 5.0
    #: Seconds ``on_stop()`` may take before the process gives up on it.
    stop_budget = 3.0

    def __init__(self, settings=None, run_dir=None, endpoints=None, ctx: zmq.Context | None = None):
        self.settings = settings
        self.log = logging.getLogger(self.name)
        if isinstance(endpoints, eps.Endpoints):
            self.endpoints = endpoints
        elif endpoints is None and settings is not None and hasattr(settings, "bus_xsub"):
            self.endpoints = eps.from_settings(settings, run_dir)
        else:
            self.endpoints = eps.resolve(run_dir, endpoints)
        self.run_dir = self.endpoints.run_dir
        self._own_ctx = ctx is None
        self.ctx = ctx if ctx is not None else zmq.Context()
        self.loop = Loop()
        self.started = time.monotonic()
        self.machines: dict = {}                 # machine name -> model (state in .state)
        self._stopping = False
        self._restart_requested = False
        self._closed = False
        self._connections = 0
        ep = self.endpoints
        self.publisher = Publisher(self.ctx, ep.xsub, self.name, ep.keys_for(ep.xsub))
        self.server = CommandServer(self.ctx, ep.command(self.name), self.name,
                                    {"status": self._cmd_status, "restart": self._cmd_restart,
                                     "ping": self._cmd_ping},
                                    ep.keys_for(ep.command(self.name)), loop=self.loop)
        self.client = CommandClient(self.ctx, ep, src=self.name)
        self.subscriber = None
        if self.subscriptions:
            self.subscriber = Subscriber(self.ctx, ep.xpub, self.subscriptions,
                                         ep.keys_for(ep.xpub))
            self.loop.add_reader(self.subscriber.sock,
                                 lambda: self.subscriber.drain(self._dispatch_event))
        self._monitor = self.publisher.sock.get_monitor_socket(
            zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        self.loop.add_reader(self._monitor, self._on_monitor)
        self.activity_model = _Model()
        self.activity = self.machine("activity", self.activity_model)

    # --- to override ------------------------------------------------------------------------

    def commands(self) -> dict:
        """The service's own commands: method -> fn(params) -> result (or a Deferred)."""
        return {}

    def on_start(self) -> None:
        """Open ports, start workers, schedule timers. Nothing blocking."""

    def initialise(self) -> bool | None:
        """Return False to stay ``initialising`` until the subclass calls ``self.ready()``."""
        return True

    def on_event(self, topic: str, env: dict) -> None:
        """An event matching ``subscriptions``."""

    def status(self) -> dict:
        """What the supervision page shows (published as ``<name>.status``)."""
        return {}

    def on_stop(self) -> None:
        """Stop workers, flush files; within ``stop_budget`` seconds."""

    # --- machines and events -------------------------------------------------------------------

    def machine(self, name: str, model, chart: str | None = None):
        """Build chart ``chart`` (default: ``name`` up to its first dot) on ``model``; its state
        changes are logged and published as ``<service>.state`` with machine ``name``."""
        chart = chart or name.split(".", 1)[0]

        def changed(_chart, previous, state, trigger):
            self._state_changed(name, previous, state, trigger)

        m = statecharts.build(chart, model, on_change=changed)
        self.machines[name] = model
        return m

    def _state_changed(self, machine: str, previous: str, state: str, trigger: str) -> None:
        self.log.info("%s: %s -> %s (%s)", machine, previous, state, trigger)
        self.publish("%s.state" % self.name, machine=machine, state=state, previous=previous,
                     trigger=trigger)

    def publish(self, topic: str, /, **data) -> dict:
        return self.publisher.publish(topic, **data)

    def publish_states(self) -> None:
        """Re-publish the current state of every machine (late joiners, reconnections)."""
        for machine, model in self.machines.items():
            self.publish("%s.state" % self.name, machine=machine, state=model.state,
                         previous=None, trigger="republish")

    def snapshot(self) -> dict:
        state = self.activity_model.state
        snap = {"service": self.name, "activity": state,
                "led": activity_chart.LED.get(state, "off"), "pid": os.getpid(),
                "uptime": round(time.monotonic() - self.started, 3), "version": _version(),
                "protocol": envelope.PROTOCOL,
                "machines": {n: m.state for n, m in self.machines.items()}}
        snap.update(self.status() or {})
        return snap

    def publish_status(self) -> None:
        self.publish("%s.status" % self.name, **self.snapshot())

    def _dispatch_event(self, topic: str, env: dict) -> None:
        try:
            self.on_event(topic, env)
        except Exception:
            self.log.exception("on_event(%s) failed", topic)

    def _on_monitor(self) -> None:
        from zmq.utils.monitor import recv_monitor_message
        while True:
            try:
                msg = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if msg["event"] == zmq.EVENT_CONNECTED:
                self._connections += 1
                level = logging.DEBUG if self._connections == 1 else logging.INFO
                self.log.log(level, "connected to the bus broker (%s)", self.endpoints.xsub)
                self.loop.call_later(REPUBLISH_DELAY, self._republish)
            elif msg["event"] == zmq.EVENT_DISCONNECTED:
                self.log.warning("lost the bus broker (%s); reconnecting", self.endpoints.xsub)

    def _republish(self) -> None:
        if not self._stopping:
            self.publish_states()
            self.publish_status()

    # --- helpers for subclasses -------------------------------------------------------------

    def run_in_thread(self, fn, *args, on_done=None, name: str | None = None):
        """Run blocking ``fn`` in a worker; ``on_done(result_or_exception)`` runs on the loop."""
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
        statecharts.fire(self.activity_model, "ready")

    def failed(self, reason: str) -> None:
        self.log.error("%s", reason)
        statecharts.fire(self.activity_model, "failed")

    # --- built-in commands ---------------------------------------------------------------------

    def _cmd_status(self, params: dict) -> dict:
        """The status snapshot; the machines' states are re-published too."""
        self.loop.post(self.publish_states)
        return self.snapshot()

    def _cmd_ping(self, params: dict) -> dict:
        return ping_result(self.name)

    def _cmd_restart(self, params: dict) -> dict:
        """Reply first (this return value), then stop and re-execute on the next loop turn."""
        self.loop.post(self.restart)
        return {"restarting": True}

    # --- life ---------------------------------------------------------------------------------

    def run(self, install_signals: bool = True) -> int:
        """Start, run the loop until stopped, stop cleanly. Returns the exit code (0)."""
        if install_signals and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self.loop.add_signal_handler(signum, self.stop, signal.Signals(signum).name)
        self.server.add_handlers(self.commands())
        self.loop.post(self._start)
        try:
            self.loop.run_forever()
        finally:
            self._shutdown()
        if self._restart_requested:
            self._exec()
        if install_signals:
            self._no_stragglers()
        return 0

    def _start(self) -> None:
        self.log.info("starting (pid %d, bus %s, commands %s)", os.getpid(),
                      self.endpoints.xsub, self.endpoints.command(self.name))
        statecharts.fire(self.activity_model, "begin")
        try:
            self.on_start()
            ok = self.initialise()
        except Exception as e:
            self.log.exception("start failed")
            self.failed("start failed: %s" % e)
            ok = False
        if ok is not False:
            self.ready()
        self.publish_states()
        self.publish_status()
        self.loop.call_every(self.status_period, self.publish_status)

    def stop(self, reason: str = "request") -> None:
        """Stop (on the loop): enter ``stopping``, leave the loop; run() then calls on_stop()."""
        if self._stopping:
            return
        self._stopping = True
        self.log.info("stopping (%s)", reason)
        statecharts.fire(self.activity_model, "stop")
        self.loop.stop()

    def restart(self) -> None:
        """Stop cleanly, then re-execute this process (same pid, fresh code)."""
        self._restart_requested = True
        self.stop("restart")

    def restart_argv(self) -> list:
        """The command line re-executed by restart: this process's own
        (``python -m services.<name> ...`` under the Procfile)."""
        orig = getattr(sys, "orig_argv", None)
        if orig:
            return [sys.executable, *orig[1:]]
        return [sys.executable, "-m", "services.%s" % self.name, *sys.argv[1:]]

    def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._stopping:               # the loop ended some other way (an exception)
            self._stopping = True
            statecharts.fire(self.activity_model, "stop")
        watchdog = threading.Timer(self.stop_budget, self._overrun)
        watchdog.daemon = True
        watchdog.start()
        try:
            self.on_stop()
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
            self.ctx.term()

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


def main(service_cls, **kw) -> int:
    """Entry point helper: ``sys.exit(main(MyService))`` in a service's ``__main__``."""
    setup_logging(service_cls.name)
    return service_cls(**kw).run()
