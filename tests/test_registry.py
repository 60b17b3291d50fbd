"""The registry of services is the one place that names them: the Procfiles, the charts, the
Bus_* keys and the bus declarations follow it."""
import importlib
import subprocess
import sys

from bus import messages
from bus.testing import REPO
from services.runtime import Service
from ticgw import registry
from ticgw.config import BY_NAME


def test_the_procfiles_are_written_from_the_registry():
    r = subprocess.run([sys.executable, "-m", "ticgw.cli", "procfile", "--check"],
                       capture_output=True, text=True, cwd=str(REPO), timeout=60)
    assert r.returncode == 0, "run `ticgw procfile`:\n" + r.stdout + r.stderr
    lines = (REPO / "Procfile").read_text().splitlines()
    assert lines[1] == "bus: ticgw bus broker"
    assert lines[2:] == ["%s: python -m ticgw.launch %s" % (s.name, s.module)
                         for s in registry.BUILTIN]


def test_every_entry_is_a_service_with_its_declarations():
    for spec in registry.BUILTIN:
        module = importlib.import_module(spec.module + ".service")
        classes = [c for c in vars(module).values()
                   if isinstance(c, type) and issubclass(c, Service) and c is not Service]
        assert [c.name for c in classes] == [spec.name]
        assert spec.config_key in BY_NAME
        assert spec.name in messages.SERVICES
        for c in spec.commands:
            assert messages.lookup_command(spec.name, c.method) is c
        for chart in spec.charts:
            assert chart in registry.charts()
    assert registry.restart_order() [:len(registry.BUILTIN)] == tuple(
        s.name for s in registry.BUILTIN)
