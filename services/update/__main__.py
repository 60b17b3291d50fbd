"""`python -m services.update`: the update service (Procfile, through ticgw.launch)."""
import sys

from services.runtime import main

from .service import UpdateService

if __name__ == "__main__":
    sys.exit(main(UpdateService))
