"""`python -m services.acquisition`: the acquisition service (Procfile).

``TICGW_SERIAL_HANDLERS``: extra pyserial URL handler packages, comma-separated, for ports
named by URL (``sim`` gives the simulators' ``ticsim://``); pyserial's own handlers (socket://,
rfc2217://...) need nothing.
"""
import os
import sys

import serial

from services.runtime import main

from .service import AcquisitionService


def add_url_handlers(spec: str | None) -> None:
    for package in (spec or "").split(","):
        package = package.strip()
        if package and package not in serial.protocol_handler_packages:
            serial.protocol_handler_packages.append(package)


if __name__ == "__main__":
    add_url_handlers(os.environ.get("TICGW_SERIAL_HANDLERS"))
    sys.exit(main(AcquisitionService))
