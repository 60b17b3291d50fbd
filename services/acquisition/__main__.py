"""`python -m services.acquisition`: the acquisition service (Procfile)."""
import os
import sys
from pathlib import Path

from services.runtime import setup_logging
from ticgw.config import ConfigStore, describe

from .service import AcquisitionService


def main() -> int:
    log = setup_logging("acquisition")
    data_dir = Path(os.environ.get("TICGW_DATA", "var/data"))
    store = ConfigStore(data_dir)
    for problem in store.problems:
        log.error("configuration: %s (the last good value stays in force)", problem)
    settings = store.settings
    log.info("data dir %s, site %s", data_dir, settings.site_id)
    for line in describe(settings):
        log.debug("config %s", line)
    return AcquisitionService(settings, data_dir).run()


if __name__ == "__main__":
    sys.exit(main())
