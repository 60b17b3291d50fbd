"""`python -m sim.demo_update`: update the running demo through /BIN, as a server operator would.

It builds a package of this tree (a new version, signed with the demo's key, which
``make demo`` made and whose public half is the demo's ``BIN_PublicKey``), puts it in the demo
server's /BIN, drops a command file ``UPDATE;<package>;<sha256>`` in /CMD and asks for a
connection. The connection fetches the package, checks it and hands it to the update service,
which installs it and restarts the gateway into it; ``ticgw bus ... call update status``
shows the version. ``--broken`` builds a release whose acquisition never becomes
operational: it is rolled back by itself after ``BIN_HealthTimeout``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ticgw import files
from ticgw.config import ConfigStore
from ticgw.pak import build, parse_version, wheelhouse
from ticgw.pak.build import copy_source, source_tree

from . import demo

#: What ``--broken`` does to the acquisition of the copy it builds.
BROKEN_MARK = "    def initialise(self)"
BROKEN_LINE = ("        raise RuntimeError(\"built broken on purpose by sim.demo_update "
               "--broken\")\n")


def next_version(running: str) -> str:
    """The running version with its last release number one higher: 0.1.0 -> 0.1.1."""
    release = str(parse_version(running)).split("+")[0]
    parts = [p for p in release.split(".") if p.isdigit()]
    parts[-1] = str(int(parts[-1]) + 1)
    return ".".join(parts)


def running_version(env: dict) -> str:
    r = subprocess.run([sys.executable, "-m", "ticgw.cli", "bus", "--run", env["TICGW_RUN"],
                        "call", "update", "status"], capture_output=True, text=True, env=env,
                       timeout=30)
    if r.returncode == 0:
        return json.loads(r.stdout)["version"]
    raise SystemExit("the update service does not answer (is `make demo` running?)\n%s"
                     % (r.stderr or r.stdout))


def broken_source(tmp: Path) -> Path:
    """A copy of the tree whose acquisition raises at every initialisation."""
    tree = copy_source(source_tree(), tmp / "src")
    path = tree / "services" / "acquisition" / "service.py"
    text = path.read_text()
    if BROKEN_MARK not in text:
        # the acquisition uses the runtime's initialise: add one that fails
        text = text.replace("    def on_start(self)", "    def initialise(self):\n"
                            + BROKEN_LINE + "\n    def on_start(self)", 1)
    else:
        head, _, rest = text.partition(BROKEN_MARK)
        signature, _, body = rest.partition("\n")
        text = head + BROKEN_MARK + signature + "\n" + BROKEN_LINE + body
    path.write_text(text)
    return tree


def publish(package: Path, server: Path, site: str) -> str:
    """Put ``package`` in the server's /BIN and the UPDATE command in /CMD; its sha256."""
    digest = hashlib.sha256(package.read_bytes()).hexdigest()
    (server / "CMD").mkdir(parents=True, exist_ok=True)
    command = "1;UPDATE;%s;%s\r\n" % (package.name, digest)
    files.write_atomic(server / "CMD" / files.command_name(site), command.encode("ascii"))
    return digest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.demo_update", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("--version", help="version to build (default: the running one plus one)")
    p.add_argument("--broken", action="store_true",
                   help="a release whose acquisition never becomes operational (rolled back)")
    p.add_argument("--demo", default=str(demo.DEMO), help="the demo's directory")
    p.add_argument("--no-connect", action="store_true", help="do not ask for a connection")
    args = p.parse_args(argv)
    base = Path(args.demo)
    env = dict(os.environ, TICGW_DATA=str(base / "data"), TICGW_RUN=str(base / "run"))
    version = args.version or next_version(running_version(env))
    server = base / "server"
    package = server / "BIN" / ("ticgw-%s%s.pak" % (version, "-broken" if args.broken else ""))
    package.parent.mkdir(parents=True, exist_ok=True)
    wheels = wheelhouse.ensure(Path(sys.prefix) / "wheelhouse")
    with tempfile.TemporaryDirectory(prefix="ticgw-demo-update-") as tmp:
        source = broken_source(Path(tmp)) if args.broken else None
        build(package, key=demo.key_path(base), version=version, wheels_from=wheels,
              source=source)
    site = ConfigStore(base / "data").settings.site
    digest = publish(package, server, site)
    print("%s: ticgw %s, sha256 %s, with UPDATE in %s"
          % (package, version, digest, server / "CMD" / files.command_name(site)))
    if not args.no_connect:
        subprocess.run([sys.executable, "-m", "ticgw.cli", "bus", "--run", env["TICGW_RUN"],
                        "call", "uplink", "connect", "reason=command"], env=env, timeout=30)
        print("a connection fetches it; then watch: .venv/bin/ticgw bus --run %s tap update."
              % env["TICGW_RUN"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
