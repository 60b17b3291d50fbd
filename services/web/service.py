"""The web service: the bus side of the installer's page.

Two loops in one process: the service's own (the bus, the machines, the disk worker), and the
HTTP server's asyncio loop in its own thread (:mod:`.app`, Microdot). The bus loop keeps
:class:`.view.View` up to date and broadcasts what changed to the open pages (:mod:`.bridge`);
a request reaches the bus through :class:`.bridge.Bridge`. Neither loop ever waits on the
other.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path

from services.runtime import Service
from ticgw import __version__, registry
from ticgw.journal import Journal

from . import app as web_app
from .bridge import Bridge, Hub
from .view import View

log = logging.getLogger("web")

#: Where the live sessions wait while the process restarts (auth.Sessions.save).
SESSIONS_FILE = "web-sessions.json"
#: Journal rows read from disk at start (then the bus keeps them coming).
JOURNAL_SEED = 200
#: Topics the page follows (beyond every service's state and status).
TOPICS = ("journal", "task.", "gateway.leds", "tic.", "update.", "alarm.raised",
          "config.changed")


class HttpThread:
    """The HTTP server in a thread with its own asyncio loop."""

    def __init__(self, app, host: str, port: int, hub: Hub, on_listening, on_failed):
        self.app, self.host, self.port, self.hub = app, host, port, hub
        self.on_listening, self.on_failed = on_listening, on_failed
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server = None
        self.thread = threading.Thread(target=self._run, name="web-http", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.hub.loop = self.loop
        try:
            self.server = self.loop.run_until_complete(
                self.app.start_server(self.host, self.port, start_serving=False))
        except OSError as e:
            self.on_failed("%s:%d: %s" % (self.host, self.port, e.strerror or e))
            self.loop.close()
            return
        sockets = self.server.sockets or []
        self.on_listening(sockets[0].getsockname()[1] if sockets else self.port)
        try:
            self.loop.run_until_complete(self.server.serve_forever())
        except asyncio.CancelledError:
            pass
        finally:
            self.loop.close()

    def stop(self, timeout: float = 2.0) -> None:
        loop, server = self.loop, self.server
        if loop is None or loop.is_closed() or server is None:
            return

        def close():
            server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
        try:
            loop.call_soon_threadsafe(close)
        except RuntimeError:
            return
        self.thread.join(timeout)


class WebService(Service):
    name = "web"

    def on_start(self) -> None:
        names = [s.name for s in registry.SERVICES]
        self.view = View(names)
        self.hub = Hub()
        self.bridge = Bridge(self)
        self.web = web_app.Web(self, self.view, self.hub, self.bridge)
        self._release_info = self._read_release_info()     # once, at start
        kept = self.web.sessions.load(self.run_dir / SESSIONS_FILE)
        if kept:
            log.info("%d session(s) kept across the restart", kept)
        self.port: int | None = None
        self.http_error: str | None = None
        for name in names:
            self.follow("%s.state" % name, self._on_bus)
            self.follow("%s.status" % name, self._on_bus)
        for prefix in TOPICS:
            self.follow(prefix, self._on_bus)
        journal = Journal(self.data_dir / "state")
        self.disk.submit(lambda job: journal.tail(JOURNAL_SEED),
                         on_done=self._journal_read, name="journal")
        host, _, port = self.settings.web_listen.rpartition(":")
        self.http = HttpThread(web_app.build(self.web), host.strip("[]"), int(port), self.hub,
                               on_listening=lambda p: self.loop.post(self._listening, p),
                               on_failed=lambda why: self.loop.post(self._http_failed, why))
        self.http.start()
        for name in names:                  # their state now, not at their next status
            if name != self.name:
                self.call(name, "status", on_reply=lambda r, n=name: self._status_reply(n, r),
                          timeout=3.0)

    def initialise(self):
        """Operational once the page is served; a port that cannot be had is a fault."""
        if self.http_error:
            raise RuntimeError("the web page cannot listen on %s" % self.http_error)
        return self.port is not None

    def on_stop(self) -> None:
        self.http.stop()
        try:
            self.web.sessions.save(self.run_dir / SESSIONS_FILE)
        except OSError as e:
            log.warning("sessions not kept: %s", e)

    def commands(self) -> dict:
        return {"sessions": self.cmd_sessions}

    def cmd_sessions(self, params: dict) -> dict:
        return {"sessions": self.web.sessions.count(), "streams": len(self.hub.streams),
                "failures": self.web.throttle.snapshot()}

    def status(self) -> dict:
        return {"listen": self.settings.web_listen, "port": self.port,
                "sessions": self.web.sessions.count(), "streams": len(self.hub.streams)}

    # --- the bus side ----------------------------------------------------------------------

    def _listening(self, port: int) -> None:
        self.port = port
        log.info("the web page is served on http://%s:%d/",
                 self.settings.web_listen.rpartition(":")[0], port)
        if self.activity == "initialising":
            self.ready()

    def _http_failed(self, why: str) -> None:
        self.http_error = why
        self.failed("the web page cannot listen on %s" % why)

    def _journal_read(self, outcome) -> None:
        if isinstance(outcome, BaseException):
            log.warning("the journal could not be read: %s", outcome)
            return
        self.view.seed_journal(outcome)

    def _status_reply(self, name: str, reply) -> None:
        if isinstance(reply, Exception):
            return
        self._on_bus("%s.status" % name, {"src": name, "data": reply, "ts": time.time()})

    def _on_bus(self, topic: str, env: dict) -> None:
        for item in self.view.apply(topic, env):
            self.hub.broadcast(item)

    def release_info(self) -> dict:
        """The running software's version and date (the release's build date, else the
        install's), for *Accueil*; read once."""
        if getattr(self, "_release_info", None) is None:
            self._release_info = self._read_release_info()
        return self._release_info

    def _read_release_info(self) -> dict:
        name = os.environ.get("TICGW_RELEASE")
        if name:
            from ticgw.release import layout
            info = layout.Releases(layout.root(self.data_dir)).info(name)
            if info:
                return {"version": info.get("version"), "date": info.get("build_date")}
        try:
            t = Path(__file__).stat().st_mtime
        except OSError:
            return {"version": __version__}
        return {"version": __version__,
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))}

