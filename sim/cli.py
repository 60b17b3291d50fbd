"""``ticgw sim meter``: serve a simulated meter on a pseudo-terminal until SIGINT/SIGTERM.

    ticgw sim meter --family LINKY --mode standard --seed 3 --link /tmp/tic0 --speed 1

Prints the pty path (the link if given) on stdout, then runs. ``add_parser(subparsers)`` adds
the ``meter`` command to the sub-command action of ``ticgw sim``; ``main(argv)`` runs it
standalone (``python -m sim.cli meter --family CBEMM``).
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from .meters import FAMILIES, Corruption, make_meter, normalise_family
from .pty_meter import PtyMeter

log = logging.getLogger(__name__)


def _family(text: str) -> str:
    try:
        return normalise_family(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _corruption(text: str) -> Corruption:
    try:
        return Corruption.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _speed(text: str) -> float:
    v = float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError("speed must be > 0")
    return v


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``meter`` to ``subparsers`` (the sub-commands of ``ticgw sim``)."""
    p = subparsers.add_parser(
        "meter", help="serve a simulated TIC meter on a pseudo-terminal",
        description="Serve a simulated meter on a pty at its line settings; print the pty path.")
    p.add_argument("--family", required=True, type=_family,
                   help="meter family: %s" % ", ".join(FAMILIES))
    p.add_argument("--mode", choices=("historic", "standard"),
                   help="TIC mode (LINKY only; default historic)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--link", help="publish the pty under this path (a symlink)")
    p.add_argument("--corrupt", type=_corruption, default=Corruption(), metavar="SPEC",
                   help="corruption, e.g. checksum=0.05,lost=0.01,eot=0.02,noise=0.1,parity=0.001")
    p.add_argument("--speed", type=_speed, default=1.0,
                   help="time multiplier of the line (default 1 = real line rate)")
    p.add_argument("--baud", type=int, help="override the meter's line speed")
    p.add_argument("--sep", choices=("SP", "HT"), help="override the separator")
    p.add_argument("--tariff", choices=("BASE", "HC", "EJP", "TEMPO"), help="tariff option")
    p.add_argument("--overload-every", type=_speed, metavar="SECONDS",
                   help="an overload (ADPS, or a CBETM short-frame cycle) every SECONDS of "
                        "simulated time, lasting 30 s")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    kw = {}
    for name, key in (("baud", "baud"), ("sep", "separator"), ("tariff", "tariff")):
        value = getattr(args, name, None)
        if value is not None:
            kw[key] = value
    try:
        meter = make_meter(args.family, args.mode, args.seed, corruption=args.corrupt, **kw)
    except ValueError as e:
        print("ticgw sim meter: %s" % e, file=sys.stderr)
        return 2
    if getattr(args, "overload_every", None):
        meter.schedule_overloads(args.overload_every, duration=30.0)
    stop = threading.Event()

    def on_signal(signum, frame):  # only record the request; the main loop stops
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    server = PtyMeter(meter, link=args.link, speed=args.speed).start()
    try:
        print(server.path, flush=True)
        log.info("serving %s on %s", meter.describe(), server.path)
        while not stop.wait(0.5):
            if not server.running:
                print("ticgw sim meter: writer stopped", file=sys.stderr)
                return 1
    finally:
        server.stop()
        for s, h in previous.items():
            signal.signal(s, h)
        log.info("stopped: %s; injected %s", server.stats.to_dict(), meter.injected.to_dict())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sim")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
