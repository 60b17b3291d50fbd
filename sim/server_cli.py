"""``ticgw sim server``: the demo remote server (FTP, Web Services, NTP) until SIGINT/SIGTERM.

    ticgw sim server --root var/server --ftp-port 2121 --http-port 8081 --ntp-port 12300

``add_parser(subparsers)`` adds ``server`` to the sub-commands of ``ticgw sim``. The server
itself (and pyftpdlib) is imported only when the command runs.
"""
from __future__ import annotations

import argparse

DESCRIPTION = ("Run the demo remote server: FTP with the /CONFIG /DEF /DATA /ALARM /CMD /LOG /BIN "
               "tree, the Web Services (initialisation.php, confirm.php) and a file listing over "
               "HTTP, and an NTP responder.")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a port number: %r" % text) from None
    if not 0 <= value < 65536:
        raise argparse.ArgumentTypeError("port out of range: %d" % value)
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", required=True, help="directory holding the server's files")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--ftp-port", type=_port, default=2121, help="FTP port (default 2121)")
    p.add_argument("--http-port", type=_port, default=8081,
                   help="Web Services / listing port (default 8081)")
    p.add_argument("--ntp-port", type=_port, default=12300, help="NTP port (default 12300)")
    p.add_argument("--user", default="ticgw", help="FTP user (default ticgw)")
    p.add_argument("--password", default="ticgw", help="FTP password (default ticgw)")
    p.add_argument("--command-file", metavar="PATH",
                   help="put a copy of this command file in /CMD at start (e.g. WEBDYN_CMD.csv)")
    p.add_argument("--ntp-offset", type=float, default=0.0,
                   help="seconds added to the time the NTP responder gives (default 0)")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``server`` to ``subparsers`` (the sub-commands of ``ticgw sim``)."""
    p = subparsers.add_parser("server", help="run the demo remote server (FTP, HTTP, NTP)",
                              description=DESCRIPTION)
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from .server import run as run_server

    return run_server(args)
