"""`python -m services.uplink`: the uplink service (Procfile)."""
import sys

from services.runtime import load_configuration, setup_logging

from .service import UplinkService


def main() -> int:
    data_dir, store = load_configuration(setup_logging("uplink"))
    return UplinkService(store.settings, store, data_dir).run()


if __name__ == "__main__":
    sys.exit(main())
