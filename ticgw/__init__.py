"""ticgw: an open-source gateway for French electricity meters (TIC)."""

__version__ = "0.1.0"
