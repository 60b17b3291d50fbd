"""`python -m services.web`: the web service (Procfile, through ticgw.launch)."""
import sys

from services.runtime import main

from .service import WebService

if __name__ == "__main__":
    sys.exit(main(WebService))
