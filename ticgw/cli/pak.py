"""`ticgw pak`: make a signing key, build, verify and describe firmware packages (`.pak`)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from ticgw import __version__
from ticgw.pak import MODEL, BuildError, PakError, build, inspect, keygen, verify, wheelhouse

KEY_FILE = "ticgw-pak.key"
PUBLIC_FILE = "ticgw-pak.pub"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "pak", help="firmware packages: keygen, build, verify, info",
        description="Signed firmware packages (.pak): a gzip'd tar with the ticgw wheel, the "
                    "wheels it needs, a hash-locked requirements file and a manifest signed "
                    "with Ed25519.")
    sub = p.add_subparsers(dest="pak_command", metavar="ACTION")
    k = sub.add_parser("keygen", help="make an Ed25519 signing key pair",
                       description="Write %s (private, PEM, mode 0600: keep it off the "
                                   "gateways) and %s (the public key, 64 hex digits, for "
                                   "BIN_PublicKey) in DIR; print the public key."
                                   % (KEY_FILE, PUBLIC_FILE))
    k.add_argument("--out", metavar="DIR", default=".", help="directory (default: .)")
    k.set_defaults(func=run_keygen)
    b = sub.add_parser("build", help="build a signed package of this tree",
                       description="Build ticgw's wheel from a copy of this tree (at "
                                   "--version), and the wheels of its runtime dependencies "
                                   "(or take them from --wheels or --wheelhouse), and write a "
                                   "signed .pak.")
    b.add_argument("--key", metavar="FILE", required=True, help="private key (PEM)")
    b.add_argument("--out", metavar="FILE", help="output (default: ticgw-VERSION.pak)")
    b.add_argument("--version", metavar="VERSION",
                   help="the version to build (default: the tree's, %s)" % __version__)
    w = b.add_mutually_exclusive_group()
    w.add_argument("--wheels", metavar="DIR", help="take prebuilt wheels from DIR (offline)")
    w.add_argument("--wheelhouse", metavar="DIR",
                   help="take the dependencies' wheels from the wheelhouse at DIR, made (or "
                        "remade if the dependencies changed) by pip when needed")
    b.add_argument("--min-version", default="0",
                   help="the oldest running version it may replace (default: any)")
    b.add_argument("--allow-downgrade-from", metavar="VERSION", action="append", default=[],
                   help="a newer running version it may replace anyway (repeatable)")
    b.add_argument("--model", default=MODEL, help="target model (default: %s)" % MODEL)
    b.set_defaults(func=run_build)
    v = sub.add_parser("verify", help="check a package as a gateway would",
                       description="Check FILE: archive, members, signature, model, versions. "
                                   "Exit 0 if this gateway may install it, 1 with the reason.")
    v.add_argument("file", metavar="FILE")
    v.add_argument("--public-key", metavar="HEX", required=True,
                   help="Ed25519 public key, 64 hex digits (BIN_PublicKey)")
    v.add_argument("--running", metavar="VERSION", default=__version__,
                   help="the running version (default: %s)" % __version__)
    v.add_argument("--model", default=MODEL, help="this gateway's model (default: %s)" % MODEL)
    v.set_defaults(func=run_verify)
    i = sub.add_parser("info", help="print a package's manifest and facts",
                       description="Print the manifest and the facts (size, SHA-256) of FILE; "
                                   "the signature is not checked (use verify).")
    i.add_argument("file", metavar="FILE")
    i.set_defaults(func=run_info)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_keygen(args, out=None) -> int:
    out = out or sys.stdout
    d = Path(args.out)
    d.mkdir(parents=True, exist_ok=True)
    key, pub = d / KEY_FILE, d / PUBLIC_FILE
    if key.exists():
        print("%s exists: not overwritten" % key, file=out)
        return 1
    private_pem, public_hex = keygen()
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    pub.write_text(public_hex + "\n")
    print("private key: %s\npublic key:  %s (%s)\nBIN_PublicKey=%s"
          % (key, pub, "set it as BIN_PublicKey", public_hex), file=out)
    return 0


def run_build(args, out=None) -> int:
    out = out or sys.stdout
    target = Path(args.out) if args.out else None
    try:
        tmp_target = target or Path("ticgw-build.pak.part")
        wheels_from = args.wheels
        if args.wheelhouse:
            wheels_from = wheelhouse.ensure(args.wheelhouse)
        manifest = build(tmp_target, key=args.key, version=args.version, wheels_from=wheels_from,
                         min_version=args.min_version,
                         downgrade_allowed_from=args.allow_downgrade_from, model=args.model)
        if target is None:
            target = Path("ticgw-%s.pak" % manifest.version)
            os.replace(tmp_target, target)
    except (BuildError, PakError, ValueError, OSError) as e:
        print("build failed: %s" % e, file=out)
        return 1
    facts = inspect(target)
    print("%s: ticgw %s for %s, %d bytes, sha256 %s, %d wheels"
          % (target, facts.version, facts.model, facts.size, facts.sha256, len(facts.wheels)),
          file=out)
    return 0


def run_verify(args, out=None) -> int:
    out = out or sys.stdout
    try:
        facts = verify(args.file, args.public_key, running_version=args.running,
                       model=args.model)
    except PakError as e:
        print("REFUSED (%s): %s\n%s" % (e.code, e.message, e.french), file=out)
        return 1
    print("OK: ticgw %s for %s, built %s, %d bytes, sha256 %s"
          % (facts.version, facts.model, facts.build_date, facts.size, facts.sha256), file=out)
    return 0


def run_info(args, out=None) -> int:
    out = out or sys.stdout
    try:
        facts = inspect(args.file)
    except PakError as e:
        print("REFUSED (%s): %s\n%s" % (e.code, e.message, e.french), file=out)
        return 1
    d = facts.to_dict()
    members = d.pop("members")
    for k, v in d.items():
        print("%-22s %s" % (k + ":", v if not isinstance(v, list) else ", ".join(v) or "-"),
              file=out)
    print("members:", file=out)
    for name, m in members.items():
        print("  %-50s %10d  %s" % (name, m["size"], m["sha256"]), file=out)
    return 0
