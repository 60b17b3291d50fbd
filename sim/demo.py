"""`make demo`: a whole gateway on simulated parts, in var/demo/.

Three simulated meters of different families (CBEMM-ICC and CBETM in historic mode, a Linky in
standard mode) served on pseudo-terminals, the bus broker and the gateway's services, launched by
honcho from Procfile.demo. The demo samples every 30 s so that records show up quickly.

Watch it from another terminal:  .venv/bin/ticgw bus tap --run var/demo/run
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ticgw.config import ConfigStore

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "var" / "demo"

DEMO_SETTINGS = {
    "DAQ_Period": "0",
    "DAQ_PeriodSec": "30",
    "TIC_LostDelay": "20",
}


def prepare(demo: Path = DEMO) -> dict[str, str]:
    """Create the demo's data and run dirs and configuration; return the environment to use."""
    data, run = demo / "data", demo / "run"
    data.mkdir(parents=True, exist_ok=True)
    run.mkdir(parents=True, exist_ok=True)
    store = ConfigStore(data)
    store.ensure_files()
    changes = dict(DEMO_SETTINGS)
    for n in (1, 2, 3):
        changes["TIC_Port[%d]" % n] = str(run / ("ttyTIC%d" % n))
    store.update(changes)
    env = dict(os.environ)
    env.update(TICGW_DATA=str(data), TICGW_RUN=str(run), PYTHONUNBUFFERED="1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def main() -> int:
    env = prepare()
    print("ticgw demo: data in %s, bus in %s" % (env["TICGW_DATA"], env["TICGW_RUN"]))
    print("watch the bus:  .venv/bin/ticgw bus tap --run %s" % env["TICGW_RUN"])
    honcho = shutil.which("honcho", path=env["PATH"])
    os.chdir(ROOT)
    os.execve(honcho, [honcho, "start", "-f", "Procfile.demo"], env)


if __name__ == "__main__":
    sys.exit(main())
