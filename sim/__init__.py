"""Simulators for ticgw: TIC meters of every family (frame generators, pseudo-terminal server,
``ticsim://`` pyserial URL handler) and the demo helpers.

``register()`` makes ``serial.serial_for_url("ticsim://LINKY?mode=standard")`` work.
"""
from __future__ import annotations


def register() -> None:
    """Add this package to pyserial's URL handler packages (once), enabling ``ticsim://``."""
    import serial

    if "sim" not in serial.protocol_handler_packages:
        serial.protocol_handler_packages.append("sim")
