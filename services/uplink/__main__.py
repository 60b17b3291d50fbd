"""`python -m services.uplink`: the uplink service (Procfile)."""
import sys

from services.runtime import main

from .service import UplinkService

if __name__ == "__main__":
    sys.exit(main(UplinkService))
