"""`python -m services.modem`: the modem service (Procfile)."""
import sys

from services.runtime import main

from .service import ModemService

if __name__ == "__main__":
    sys.exit(main(ModemService))
