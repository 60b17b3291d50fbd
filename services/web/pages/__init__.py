"""The page modules: each ``register(app, web)`` adds its routes (the manual's pages, 10 to 12)."""
from __future__ import annotations

import importlib

#: The page modules, in menu order.
MODULES = ("home", "network", "installation", "supervision", "update_page", "maintenance",
           "system")


def register_all(app, web) -> None:
    for name in MODULES:
        importlib.import_module("%s.%s" % (__name__, name)).register(app, web)
