"""The SIM's PIN can never be locked by the gateway (issue 9, item 4).

A wrong PIN retried until the SIM wants its PUK is what users of other gateways complain about
most. The configured PIN is sent:

- at most once per value and per power-up of the module;
- never again after a refusal, until the configuration holds another value;
- never when the module says only one attempt is left (the installer types it on the page).

What was sent is on disk (``<state>/modem_pin.json``) *before* the PIN goes out: killed between
the two, the next start finds "sent, outcome unknown"; a SIM still asking for its PIN then means
the PIN was refused (or never arrived), and it is not sent again. Only a hash of the PIN is kept.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ticgw.files import write_atomic


def _key(pin: str) -> str:
    return hashlib.sha256(("ticgw-pin:" + pin).encode()).hexdigest()[:16]


class PinGuard:
    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / "modem_pin.json"
        try:
            self.data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            self.data = {}

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(self.data, sort_keys=True).encode())

    def may_send(self, pin: str, power_up: str, attempts_left: int | None) -> str | None:
        """None if the PIN may be sent now, else why not (English, for the log and status)."""
        if not pin:
            return "no PIN configured (SIM_Pin)"
        entry = self.data.get(_key(pin))
        if entry is not None and entry.get("outcome") == "refused":
            return "this PIN was refused: it is not sent again until SIM_Pin changes"
        if entry is not None and entry.get("power_up") == power_up:
            return "this PIN was already sent since the module started"
        if entry is not None and entry.get("outcome") is None:
            return ("this PIN was sent and its outcome is unknown (the service stopped): "
                    "it is taken as refused")
        if attempts_left is not None and attempts_left <= 1:
            return "only %d attempt left: the PIN is not sent" % attempts_left
        return None

    def sending(self, pin: str, power_up: str) -> None:
        """Recorded before the PIN is sent."""
        self.data[_key(pin)] = {"power_up": power_up, "outcome": None}   # others are kept
        self._save()

    def outcome(self, pin: str, accepted: bool) -> None:
        entry = self.data.setdefault(_key(pin), {})
        entry["outcome"] = "accepted" if accepted else "refused"
        self._save()

    def unknown_outcome_means_refused(self, pin: str) -> None:
        """A SIM still asking for its PIN after a send whose outcome was never recorded."""
        entry = self.data.get(_key(pin))
        if entry is not None and entry.get("outcome") is None:
            self.outcome(pin, accepted=False)
