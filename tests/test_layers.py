"""The import contract: layers import downward only (DESIGN section 12).

From the ground up: the bus; the TIC library and the gateway's shared ground (registry,
configuration, file formats, journal, clock), which know nothing of each other; the state
charts; the services and the simulators, which know nothing of each other either; the command
line; the benchmarks. Tests may import anything; nothing imports the tests.

Every import counts: module-level, inside functions, relative, and ``importlib.import_module``
with a literal name.
"""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: (layer, package prefixes), lowest first. Packages in one layer may not import each other.
LAYERS = (
    (0, ("bus",)),
    (1, ("tic",)),
    (1, ("ticgw",)),            # ticgw.cli is taken out below
    (2, ("statecharts",)),
    (3, ("services",)),
    (3, ("sim",)),
    (4, ("ticgw.cli",)),
    (5, ("bench",)),
)
PACKAGES = ("bus", "tic", "ticgw", "statecharts", "services", "sim", "bench")


def group_of(module: str):
    """(layer, group name) of one of our modules, None for anything else (third party)."""
    best = None
    for layer, prefixes in LAYERS:
        for p in prefixes:
            if module == p or module.startswith(p + "."):
                if best is None or len(p) > len(best[1]):
                    best = (layer, p)
    if best is None and (module == "tests" or module.startswith("tests.")):
        return (99, "tests")
    return best


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path):
    """(line, imported module) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:             # `from pkg import module`
                yield node.lineno, "%s.%s" % (target, alias.name)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                yield node.lineno, node.args[0].value


def sources():
    for pkg in PACKAGES:
        yield from sorted((REPO / pkg).rglob("*.py"))


def violations():
    out = []
    for path in sources():
        me = group_of(module_name(path))
        for line, target in imports_of(path):
            other = group_of(target)
            if other is None or other[1] == me[1]:
                continue
            if other[0] > me[0] or (other[0] == me[0] and other[1] != me[1]):
                out.append("%s:%d: %s (layer %d) imports %s (layer %d, %s)" % (
                    path.relative_to(REPO), line, me[1], me[0], target, other[0], other[1]))
    return out


def test_layers_import_downward_only():
    found = violations()
    assert not found, "upward or sideways imports:\n" + "\n".join(found)


@pytest.mark.parametrize("source,target,bad", [
    ("bus", "ticgw.config", True), ("services", "sim", True), ("sim", "services.uplink", True),
    ("tic", "ticgw.files", True), ("ticgw", "ticgw.cli", True), ("bench", "tests.x", True),
    ("services", "tic.codec", False), ("ticgw.cli", "sim.demo", False),
    ("statecharts", "ticgw.registry", False), ("ticgw", "bus.messages", False),
])
def test_the_contract_itself(source, target, bad):
    """The rule catches what it must (a check that cannot fail would prove nothing)."""
    me, other = group_of(source), group_of(target)
    upward = other[0] > me[0] or (other[0] == me[0] and other[1] != me[1])
    assert upward == bad


def test_imports_are_found_everywhere(tmp_path):
    f = REPO / "bus" / "_contract_probe.py"
    f.write_text("def late():\n    from ticgw import config\n    import importlib\n"
                 "    importlib.import_module('sim.meters')\nfrom . import loop\n")
    try:
        found = list(imports_of(f))
    finally:
        f.unlink()
    names = [t for _, t in found]
    assert "ticgw" in names and "ticgw.config" in names and "sim.meters" in names
    assert "bus" in names and "bus.loop" in names
