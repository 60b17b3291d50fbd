"""`python -m services.acquisition`: the acquisition service (Procfile)."""
import sys

from services.runtime import load_configuration, setup_logging

from .service import AcquisitionService


def main() -> int:
    data_dir, store = load_configuration(setup_logging("acquisition"))
    return AcquisitionService(store.settings, data_dir).run()


if __name__ == "__main__":
    sys.exit(main())
