"""A gateway's data dir set up for simulations: the demo, the benchmarks and the tests."""
from __future__ import annotations

from pathlib import Path

from ticgw.config import ConfigStore

#: Environment a gateway process needs to open the simulators' ``ticsim://`` ports.
SERIAL_HANDLERS = {"TICGW_SERIAL_HANDLERS": "sim"}


def configure(data_dir: Path, ports: dict[int, str], **keys) -> ConfigStore:
    """Write the configuration files of ``data_dir``: ``ports`` as TIC_Port[n], ``keys`` as
    themselves (``DAQ_Period=0``...)."""
    store = ConfigStore(data_dir)
    store.ensure_files()
    changes = {"TIC_Port[%d]" % n: url for n, url in ports.items()}
    changes.update({k: str(v) for k, v in keys.items()})
    store.update(changes, by="setup")
    return store
