"""``python -m ticgw.launch MODULE [ARGS...]``: start a service from the release that runs now.

The Procfile starts every service through this launcher, and a service that restarts itself
re-executes it (``$TICGW_LAUNCH``): it plays the part of a bootloader. It belongs to the base
install, like the bus broker, and never changes with a package. Before it executes the service
(same process, same pid, so honcho sees no change) it:

- finishes a rollback a power cut interrupted (the record says ``rolling_back``);
- before a new release's first service, runs its configuration migrations, once;
- counts the starts of a release not committed yet: each start of the update service takes
  one of its tries, and when none is left the release is rolled back here, without it. A
  release that cannot even start its update service cannot roll itself back;
- runs ``<releases>/current/venv/bin/python -P -m MODULE`` (by way of the link, ``-P`` so the
  working directory never shadows the release's code), or the base interpreter when no
  release is installed or the link names an incomplete one.

Standard library only, and nothing else of ticgw but :mod:`ticgw.release` (layout, record,
configs, moves) and :mod:`ticgw.files`.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ticgw.release import configs, layout, moves, record
from ticgw.release.layout import BASE, Releases

#: The service whose starts count a new release's tries (it holds the install machine).
COUNTING_MODULE = "services.update"


def _say(text: str) -> None:
    print("launch: %s" % text, file=sys.stderr, flush=True)


def settle(releases: Releases, module: str, data: Path | None = None) -> str | None:
    """Bring the record and the link to a state a service may start in; the release to run."""
    if not releases.path.is_dir():
        return BASE
    data = data if data is not None else configs.data_dir()
    with releases.lock():
        rec = record.load(releases.path / layout.RECORD)
        current = releases.current()
        if rec.state == "rolling_back":
            _said(moves.roll_back(releases, rec, data,
                                  rec.reason or "Retour arrière interrompu, repris"))
        elif (rec.state in ("switching", "verifying") and current is not BASE
              and current == rec.release):
            rec = moves.first_start(releases, rec, data)
            if rec.state == "rolled_back":
                _said(rec)
            elif module == COUNTING_MODULE:
                rec.tries_left -= 1
                if rec.tries_left < 0:
                    _said(moves.roll_back(releases, rec, data,
                                          "La version %s n'a pas démarré (%d essais)"
                                          % (rec.version, record.TRIES)))
                else:
                    record.save(releases.path / layout.RECORD, rec)
        name = releases.current()
        if not releases.is_complete(name):
            _say("release %s is incomplete: starting the base install" % name)
            return BASE
        return name


def _said(rec) -> None:
    _say("rolled back to %s: %s" % (rec.from_release or "the base install", rec.reason))


def command(releases: Releases, name: str | None, module: str, args: list) -> tuple[list, dict]:
    """The argv and environment a service runs with."""
    env = dict(os.environ)
    base = env.setdefault("TICGW_BASE_PYTHON", sys.executable)
    env["TICGW_LAUNCH"] = json.dumps([base, "-m", "ticgw.launch", module, *args])
    if name is BASE:
        env.pop("TICGW_RELEASE", None)
        return [base, "-m", module, *args], env
    env.pop("PYTHONPATH", None)
    env["TICGW_RELEASE"] = name
    python = str(releases.python(name, through_link=True))
    return [python, "-P", "-m", module, *args], env


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        print("usage: python -m ticgw.launch MODULE [ARGS...]", file=sys.stderr)
        return 2
    module, args = argv[0], argv[1:]
    releases = Releases(layout.root())
    try:
        name = settle(releases, module)
    except Exception as e:              # a read-only or full disk: start all the same
        _say("cannot settle the releases (%s: %s): starting what the link names" % (
            type(e).__name__, e))
        name = releases.current()
        name = name if releases.is_complete(name) else BASE
    cmd, env = command(releases, name, module, args)
    os.execve(cmd[0], cmd, env)
    return 127                        # not reached


if __name__ == "__main__":
    sys.exit(main())
