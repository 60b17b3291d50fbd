"""Does the server's DEF directory hold a definition file? As far as the gateway knows: the
*Supervision > Compteurs* page shows a name in red when the ``_daq.ini`` file names it but the
server's DEF directory lacks it (manual 10.4.2).

What the gateway knows of the server comes from the uplink's state (``<data>/state``):

- ``sync.json`` (services/uplink/sync.py, :class:`Marks`): under ``"def"``, every definition file
  the server held at a connection's definitions phase (downloaded, uploaded, or seen unchanged).
  At each such phase a local file the server lacks is uploaded and a file the server has that
  the daq file names is fetched, so after it a name the daq file gives is marked exactly when
  the server has it;
- ``config_checked`` (services/uplink/service.py ``_mark_config_checked``): when the last
  connection that synced the configuration and definition files ended.

Before any such connection the answer is unknown, never red; a daq file changed since that
connection may name a file no connection looked for yet: unknown too.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.uplink.sync import Marks

#: Written by the uplink after each connection that synced configuration and definitions.
CHECKED_FILE = "config_checked"

PRESENT, MISSING, NEVER, STALE = "present", "missing", "never", "stale"


@dataclass(frozen=True)
class ServerDefs:
    checked: float | None           # end of the last connection that synced the definitions
    names: frozenset                # the definition files the server held at the syncs


def read(state_dir) -> ServerDefs:
    """What the uplink's state says of the server's DEF directory (disk work)."""
    state_dir = Path(state_dir)
    try:
        checked = float((state_dir / CHECKED_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        checked = None
    marks = Marks(state_dir).data.get("def") or {}
    return ServerDefs(checked, frozenset(marks if isinstance(marks, dict) else ()))


def state_of(name: str, server: ServerDefs, named_at: float | None = None) -> str | None:
    """PRESENT, MISSING (the red name), NEVER (no connection synced the definitions yet) or
    STALE (the daq file changed at ``named_at``, after that connection); None without a name."""
    if not name:
        return None
    if name in server.names:
        return PRESENT
    if server.checked is None:
        return NEVER
    if named_at is not None and named_at > server.checked:
        return STALE
    return MISSING
