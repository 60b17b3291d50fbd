"""Where the gateway lives: its data dir, its run dir and its bus endpoints.

The data dir (configuration, spool, state) comes from the argument, else ``$TICGW_DATA``, else
``var/data``; the run dir (bus sockets, task lock) from the argument, else ``$TICGW_RUN``, else
``var/run``. The bus endpoints are the ipc:// defaults of the run dir unless the configuration
sets a ``Bus_*`` key (``tcp://`` needs the CURVE keys, checked when the configuration loads).
"""
from __future__ import annotations

import os
from pathlib import Path

from bus import endpoints as eps

from . import registry

DEFAULT_DATA_DIR = "var/data"


def data_dir(path=None) -> Path:
    return Path(path if path is not None else os.environ.get("TICGW_DATA") or DEFAULT_DATA_DIR)


def endpoints(settings, run=None) -> eps.Endpoints:
    """The bus endpoints a configuration asks for (``Bus_Xsub``, ``Bus_<Service>``, CURVE)."""
    over = {"xsub": settings.bus_xsub, "xpub": settings.bus_xpub}
    for spec in registry.SERVICES:
        try:
            over[spec.name] = settings.get(spec.config_key)
        except KeyError:        # registered after the configuration was loaded: no key yet
            over[spec.name] = ""
    pub, sec = settings.bus_curve_public_key, settings.bus_curve_secret_key
    curve = eps.CurveKeys(pub, sec) if pub and sec else None
    return eps.resolve(run, over, curve, services=registry.names())


def endpoints_from_environment(run=None, data=None) -> eps.Endpoints:
    """The endpoints of the gateway whose data dir is ``data`` (``$TICGW_DATA``): from its
    configuration when it has one, else the ipc:// defaults of the run dir. For the broker and
    the ``ticgw bus`` tools, which have no settings of their own."""
    directory = data_dir(data)
    if (directory / "config").is_dir():
        from .config import ConfigStore

        return endpoints(ConfigStore(directory).settings, run)
    return eps.resolve(run, services=registry.names())
