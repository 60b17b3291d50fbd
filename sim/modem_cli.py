"""``ticgw sim modem``: serve a simulated 27.007 modem on a pseudo-terminal until SIGINT/SIGTERM.

    ticgw sim modem --link /tmp/ttyMODEM --control /tmp/modem.sock --sim PIN --pin 1234

Prints the pty path (the link if given) on stdout, then runs. With ``--control SOCKET`` a UNIX
stream socket takes JSON objects, one per line, and answers one JSON line each:

    {"set": {"signal": 5, "reg": 2}}      change the modem (any ModemState field)
    {"drop_carrier": true}                 unsolicited NO CARRIER in data mode
    {"urc": "+CEREG: 2"}                   send a URC now ("inside_answer": true: inside the
                                           next answer instead)
    {"mute": true} / {"mute": false}       stop / resume answering
    {"vanish": true} / {"reappear": true}  close the pty and remove the link / a new pty there
    {"reset": true}                        restart the module (as AT+CFUN=1,1)
    {"state": true}                        answer with the state, the commands received so far
                                           and the wrong PIN entries

Answers are ``{"ok": true}`` (plus "state", "commands", "pin_attempts_used" when asked), or
``{"ok": false, "error": "..."}``. Several keys in one object are applied in the order above.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import socket
import sys
import threading

from .modem import DIAL_OUTCOMES, DIALECTS, SIM_STATES, TECHS, PtyModem

log = logging.getLogger(__name__)


class ControlServer:
    """The JSON-lines control socket of a running PtyModem (one thread per client)."""

    def __init__(self, modem: PtyModem, path: str):
        self.modem = modem
        self.path = path
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> "ControlServer":
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.path)
        s.listen(8)
        s.settimeout(0.2)
        self._sock = s
        self._thread = threading.Thread(target=self._accept, name="modem-control", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._sock is not None:
            self._sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as f:
            for raw in f:
                if not raw.strip():
                    continue
                try:
                    msg = json.loads(raw)
                    if not isinstance(msg, dict):
                        raise ValueError("a JSON object is expected")
                    answer = self.apply(msg)
                except Exception as e:  # noqa: BLE001 - reported to the client
                    answer = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
                f.write((json.dumps(answer) + "\n").encode())
                f.flush()

    def apply(self, msg: dict) -> dict:
        m = self.modem
        known = {"set", "drop_carrier", "urc", "inside_answer", "mute", "vanish", "reappear",
                 "reset", "state"}
        unknown = set(msg) - known
        if unknown:
            raise ValueError("unknown request %s" % ", ".join(sorted(unknown)))
        answer: dict = {"ok": True}
        if "set" in msg:
            m.set(**msg["set"])
        if msg.get("drop_carrier"):
            m.drop_carrier()
        if "urc" in msg:
            m.urc(str(msg["urc"]), inside_answer=bool(msg.get("inside_answer", False)))
        if "mute" in msg:
            m.mute() if msg["mute"] else m.unmute()
        if msg.get("vanish"):
            m.vanish()
        if msg.get("reappear"):
            m.reappear()
        if msg.get("reset"):
            m.reset()
        if msg.get("state"):
            answer["state"] = dataclasses.asdict(m.state)
            answer["commands"] = list(m.commands)
            answer["pin_attempts_used"] = m.pin_attempts_used
            answer["running"] = m.running
        return answer


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``modem`` to ``subparsers`` (the sub-commands of ``ticgw sim``)."""
    p = subparsers.add_parser(
        "modem", help="serve a simulated 27.007 cellular modem on a pseudo-terminal",
        description="Serve a simulated AT modem on a pty; print the pty path.")
    p.add_argument("--link", help="publish the pty under this path (a symlink)")
    p.add_argument("--control", metavar="SOCKET",
                   help="UNIX socket taking JSON-lines control requests")
    p.add_argument("--sim", choices=SIM_STATES, default="READY", help="SIM state")
    p.add_argument("--pin", default="1234", help="the SIM's PIN (default 1234)")
    p.add_argument("--puk", default="12345678", help="the SIM's PUK")
    p.add_argument("--signal", type=int, default=18, help="+CSQ rssi, 0..31 or 99")
    p.add_argument("--tech", choices=TECHS, default="LTE", help="access technology")
    p.add_argument("--reg", type=int, default=1, help="registration <stat> (1 home, 2 searching,"
                   " 3 denied, 5 roaming...)")
    p.add_argument("--operator", default="Orange F", help="operator long name")
    p.add_argument("--dial", choices=DIAL_OUTCOMES, default="connect", help="dial outcome")
    p.add_argument("--dialect", choices=DIALECTS, default="quectel", help="vendor dialect")
    p.add_argument("--guard", type=float, default=1.0, help="+++ guard time in seconds")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    state = dict(sim=args.sim, pin=args.pin, puk=args.puk, signal=args.signal, tech=args.tech,
                 reg=args.reg, operator=args.operator, dial=args.dial, dialect=args.dialect,
                 guard=args.guard)
    stop = threading.Event()

    def on_signal(signum, frame):  # only record the request; the main loop stops
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    modem = PtyModem(link=args.link, **state).start()
    control = ControlServer(modem, args.control).start() if args.control else None
    try:
        print(modem.path, flush=True)
        log.info("modem %s on %s%s", args.dialect, modem.path,
                 " (control %s)" % args.control if args.control else "")
        while not stop.wait(0.5):
            pass
    finally:
        if control is not None:
            control.stop()
        modem.stop()
        for s, h in previous.items():
            signal.signal(s, h)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sim")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
