"""`python -m services.uplink`: the uplink service (Procfile)."""
import os
import sys
from pathlib import Path

from services.runtime import setup_logging
from ticgw.config import ConfigStore

from .service import UplinkService


def main() -> int:
    log = setup_logging("uplink")
    data_dir = Path(os.environ.get("TICGW_DATA", "var/data"))
    store = ConfigStore(data_dir)
    for problem in store.problems:
        log.error("configuration: %s (the last good value stays in force)", problem)
    return UplinkService(store.settings, store, data_dir).run()


if __name__ == "__main__":
    sys.exit(main())
