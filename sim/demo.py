"""`make demo`: a whole gateway on simulated parts, in var/demo/.

Three simulated meters of different families (CBEMM-ICC and CBETM in historic mode, a Linky in
standard mode) served on pseudo-terminals, a simulated LTE modem (its SIM asks for PIN 1234) that
every connection goes through (*Modem* mode), the demo remote server (FTP, Web Services, NTP), the
bus broker and the gateway's services, launched by honcho from Procfile.demo. The demo samples
every 20 s and connects to the server every 2 minutes, so that files show up quickly.

Watch it from another terminal:
    .venv/bin/ticgw bus --run var/demo/run tap
    .venv/bin/ticgw bus --run var/demo/run call uplink connect
    ls var/demo/server/DATA        (or http://127.0.0.1:8081/)
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ticgw.config import ConfigStore
from ticgw.config.password import DEFAULT_PASSWORD_HASH
from ticgw.pak import keygen

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "var" / "demo"
PORTS = {"ftp": 2121, "http": 8081, "ntp": 12300}

#: What Procfile.demo runs beside the gateway (``ticgw procfile`` writes it): three meters of
#: different families on ptys, and the demo remote server.
DEMO_PROCESSES = (
    ("meter1", "ticgw sim meter --family CBEMM-ICC --seed 1 --overload-every 90 "
               "--link $TICGW_RUN/ttyTIC1"),
    ("meter2", "ticgw sim meter --family CBETM --seed 2 --overload-every 150 "
               "--link $TICGW_RUN/ttyTIC2"),
    ("meter3", "ticgw sim meter --family LINKY --mode standard --seed 3 "
               "--link $TICGW_RUN/ttyTIC3"),
    ("modemsim", "ticgw sim modem --sim PIN --pin 1234 --tech LTE --signal 18 "
                 "--link $TICGW_RUN/ttyMODEM --control $TICGW_RUN/modem.ctl"),
    ("server", "ticgw sim server --root $TICGW_DEMO_SERVER --command-file "
               "sim/demo_files/WEBDYN_CMD.csv --ftp-port $TICGW_DEMO_FTP_PORT --http-port "
               "$TICGW_DEMO_HTTP_PORT --ntp-port $TICGW_DEMO_NTP_PORT --user demo "
               "--password demo"),
)


def key_path(demo: Path = DEMO) -> Path:
    """The demo's package signing key (``sim.demo_update`` signs with it)."""
    return Path(demo) / "keys" / "ticgw-pak.key"


def demo_public_key(demo: Path) -> str:
    """The demo's signing key pair, made once; the public half (its ``BIN_PublicKey``)."""
    key, public = key_path(demo), key_path(demo).with_suffix(".pub")
    if not (key.exists() and public.exists()):
        key.parent.mkdir(parents=True, exist_ok=True)
        private_pem, public_hex = keygen()
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(private_pem)
        public.write_text(public_hex + "\n")
    return public.read_text().strip()


def prepare(demo: Path = DEMO, ports: dict | None = None, **settings) -> dict[str, str]:
    """Create the demo's data, run and server dirs and its configuration; return the
    environment honcho needs."""
    ports = dict(PORTS, **(ports or {}))
    data, run, server = demo / "data", demo / "run", demo / "server"
    # the demo runs the tree: releases a `sim.demo_update` of an earlier run installed go
    shutil.rmtree(data / "releases", ignore_errors=True)
    for d in (data, run, server):
        d.mkdir(parents=True, exist_ok=True)
    store = ConfigStore(data)
    store.ensure_files()
    changes = {
        "DAQ_Period": "0", "DAQ_PeriodSec": "20", "TIC_LostDelay": "30",
        "Connection_PeriodMin": "2",
        "FTP_Server": "127.0.0.1", "FTP_Port": str(ports["ftp"]),
        "FTP_Login": "demo", "FTP_Password": "demo",
        "NTP_Server1": "127.0.0.1:%d" % ports["ntp"], "NTP_Server2": "",
        "WebService_Enable": "1", "WebService_Url": "http://127.0.0.1:%d/" % ports["http"],
        # through the simulated modem: the manual's example subscription (section 9)
        "Connection_Mode": "modem", "Modem_Port": str(run / "ttyMODEM"), "SIM_Pin": "1234",
        "GPRS_Number": "*99***1#", "GPRS_Apn": "m2minetnat", "GPRS_Login": "sfr",
        "GPRS_Password": "sfr",
        # the factory password (the page asks for a new one at the first login)
        "Web_PasswordHash": DEFAULT_PASSWORD_HASH,
        # packages signed with the demo's own key (sim.demo_update builds them)
        "BIN_PublicKey": demo_public_key(demo),
    }
    for n in (1, 2, 3):
        changes["TIC_Port[%d]" % n] = str(run / ("ttyTIC%d" % n))
    changes.update({k: str(v) for k, v in settings.items()})
    store.update(changes)
    env = dict(os.environ)
    env.update(TICGW_DATA=str(data), TICGW_RUN=str(run), TICGW_DEMO_SERVER=str(server),
               TICGW_DEMO_FTP_PORT=str(ports["ftp"]), TICGW_DEMO_HTTP_PORT=str(ports["http"]),
               TICGW_DEMO_NTP_PORT=str(ports["ntp"]), PYTHONUNBUFFERED="1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def honcho_command(env: dict) -> list[str]:
    honcho = shutil.which("honcho", path=env["PATH"])
    return [honcho, "start", "-f", str(ROOT / "Procfile.demo"), "-d", str(ROOT)]


def main() -> int:
    env = prepare()
    print("ticgw demo: data in %s, bus in %s, server files in %s" % (
        env["TICGW_DATA"], env["TICGW_RUN"], env["TICGW_DEMO_SERVER"]))
    store = ConfigStore(Path(env["TICGW_DATA"]))
    print("the web page:       http://%s/  (factory login %s / high: the page asks for a new "
          "password at the first login)" % (store.settings.web_listen, store.settings.web_user))
    print("watch the bus:      .venv/bin/ticgw bus --run %s tap" % env["TICGW_RUN"])
    print("connect now:        .venv/bin/ticgw bus --run %s call uplink connect" % env["TICGW_RUN"])
    print("delivered files:    http://127.0.0.1:%s/" % env["TICGW_DEMO_HTTP_PORT"])
    print("update through /BIN: .venv/bin/python -m sim.demo_update   (--broken: rolled back)")
    cmd = honcho_command(env)
    os.chdir(ROOT)
    os.execve(cmd[0], cmd, env)


if __name__ == "__main__":
    sys.exit(main())
