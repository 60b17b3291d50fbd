"""Where the bus lives: the broker's two endpoints and one command endpoint per service.

Defaults are ``ipc://<run dir>/bus-xsub``, ``ipc://<run dir>/bus-xpub`` and
``ipc://<run dir>/<service>.cmd``; the run dir comes from the argument, else ``$TICGW_RUN``, else
``var/run``, and is created if missing. Any endpoint may be overridden (``{"xsub": ...}``, or the
configuration's names ``Bus_Xsub``, ``Bus_Acquisition``...). A ``tcp://`` endpoint uses CURVE:
every process of the gateway shares one Z85 keypair (:class:`CurveKeys`); servers admit only that
public key. The bus knows no service by name: callers pass the names they may override
(``ticgw.gateway`` passes the registry's, and reads the configuration).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_RUN_DIR = "var/run"

#: Path limit of an AF_UNIX socket (ipc://) on Linux, terminating NUL excluded.
IPC_PATH_MAX = 107


@dataclass(frozen=True)
class CurveKeys:
    """The gateway's shared CURVE keypair, 40-character Z85 text each."""
    public: str
    secret: str

    def __repr__(self) -> str:          # never print the secret
        return "CurveKeys(public=%r, secret='****')" % self.public


def is_tcp(endpoint: str) -> bool:
    return endpoint.startswith("tcp://")


def run_dir(path=None) -> Path:
    """The run dir (argument, $TICGW_RUN, ``var/run``), created if missing."""
    p = Path(path if path is not None else os.environ.get("TICGW_RUN") or DEFAULT_RUN_DIR)
    p.mkdir(parents=True, exist_ok=True)
    return p


def _norm(name: str) -> str:
    n = name.strip().lower()
    return n[4:] if n.startswith("bus_") else n


@dataclass(frozen=True)
class Endpoints:
    run_dir: Path
    xsub: str                        # the broker binds it; publishers connect
    xpub: str                        # the broker binds it; subscribers connect
    commands: dict = field(default_factory=dict)   # service -> its ROUTER endpoint
    curve: CurveKeys | None = None

    def command(self, service: str) -> str:
        try:
            return self.commands[service]
        except KeyError:
            ep = "ipc://%s/%s.cmd" % (self.run_dir, service)
            self.commands[service] = ep
            return ep

    def keys_for(self, endpoint: str) -> CurveKeys | None:
        """The keys a socket on ``endpoint`` needs (None for ipc://); error if missing."""
        if not is_tcp(endpoint):
            return None
        if self.curve is None:
            raise ValueError("%s is tcp://, which needs CURVE keys (Bus_CurvePublicKey, "
                             "Bus_CurveSecretKey)" % endpoint)
        return self.curve

    def all(self) -> dict:
        return {"xsub": self.xsub, "xpub": self.xpub, **self.commands}


def resolve(run=None, overrides: dict | None = None, curve: CurveKeys | None = None,
            services=None) -> Endpoints:
    """Endpoints from the run dir and optional overrides (empty values are ignored).

    ``services``: the names whose command endpoint may be overridden (and is checked now);
    None accepts any name. Any other service gets ``ipc://<run dir>/<name>.cmd`` when asked."""
    rd = run_dir(run).resolve()
    over = {_norm(k): v for k, v in (overrides or {}).items() if v}
    if services is None:
        services = [k for k in over if k not in ("xsub", "xpub")]
    unknown = set(over) - {"xsub", "xpub", *services}
    if unknown:
        raise ValueError("unknown bus endpoint(s): %s" % ", ".join(sorted(unknown)))
    eps = {"xsub": over.get("xsub") or "ipc://%s/bus-xsub" % rd,
           "xpub": over.get("xpub") or "ipc://%s/bus-xpub" % rd}
    commands = {s: over.get(s) or "ipc://%s/%s.cmd" % (rd, s) for s in services}
    for name, ep in {**eps, **commands}.items():
        if ep.startswith("ipc://") and len(ep) - 6 > IPC_PATH_MAX:
            raise ValueError("ipc path of %s is longer than %d characters: %s (use a shorter "
                             "run dir)" % (name, IPC_PATH_MAX, ep))
    result = Endpoints(rd, eps["xsub"], eps["xpub"], commands, curve)
    for ep in result.all().values():
        result.keys_for(ep)         # tcp:// without keys fails here, at start
    return result
