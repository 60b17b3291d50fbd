"""The recovery ladder (issue 9, item 5): what to try when the link will not come back.

Each failure in a row climbs one step: redial (the next connection simply dials again), radio
off and on (``AT+CFUN=0`` then ``=1``), module reset (``AT+CFUN=1,1``), and resets from then on.
A success (the data link up again) goes back to the bottom. Steps are counted per day
(``<state>/modem_recovery.json``, so a restart does not reset the count); at the daily cap the
ladder stops, the service raises an alarm and holds until the next day or a new configuration:
a gateway must not loop faster than the network's own back-off.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from ticgw.files import write_atomic

STEPS = ("redial", "radio", "reset")
#: The journal's row for each step.
ROWS = {"redial": "Modem : nouvelle tentative de connexion",
        "radio": "Modem : radio coupée puis rallumée (AT+CFUN=0/1)",
        "reset": "Modem : redémarrage du module (AT+CFUN=1,1)"}
CAPPED_ROW = "Modem : limite quotidienne de %d relances atteinte, modem en attente"


class Ladder:
    def __init__(self, state_dir: Path, cap: int, clock=time.time):
        self.path = Path(state_dir) / "modem_recovery.json"
        self.cap = cap
        self.clock = clock
        try:
            self.data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            self.data = {}

    def _today(self) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime(self.clock()))

    @property
    def used_today(self) -> int:
        return int(self.data.get("count", 0)) if self.data.get("day") == self._today() else 0

    def next_step(self) -> str | None:
        """The step to take now (recorded), or None at the daily cap."""
        if self.used_today >= self.cap:
            return None
        climb = int(self.data.get("climb", 0))
        step = STEPS[min(climb, len(STEPS) - 1)]
        self.data = {"day": self._today(), "count": self.used_today + 1, "climb": climb + 1}
        self._save()
        return step

    def succeeded(self) -> None:
        if self.data.get("climb"):
            self.data["climb"] = 0
            self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(self.data).encode())
