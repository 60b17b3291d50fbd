"""Firmware packages (issue 10, item 1): build, sign, verify, refuse precisely; the CLI."""
import gzip
import io
import json
import os
import shutil
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from ticgw.cli import main
from ticgw.pak import MODEL, BuildError, PakError, build, inspect, keygen, verify, wheelhouse
from ticgw.pak.build import source_tree
from ticgw.pak.manifest import Manifest, _simple_version, parse_version
from ticgw.pak.sign import sign, verify_signature


def fake_wheel(d, name, version):
    """A tiny valid wheel: a zip with a module and a .dist-info."""
    path = d / ("%s-%s-py3-none-any.whl" % (name, version))
    info = "%s-%s.dist-info" % (name, version)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("%s/__init__.py" % name, "VERSION = %r\n" % version)
        z.writestr(info + "/METADATA", "Metadata-Version: 2.1\nName: %s\nVersion: %s\n"
                   % (name, version))
        z.writestr(info + "/WHEEL", "Wheel-Version: 1.0\nGenerator: test\n"
                   "Root-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(info + "/RECORD", "")
    return path


@pytest.fixture(scope="module")
def keys():
    return keygen()


@pytest.fixture(scope="module")
def other_keys():
    return keygen()


def wheels(tmp_path, version="0.2.0"):
    d = tmp_path / ("wheels-" + version)
    if d.exists():
        return d
    d.mkdir()
    fake_wheel(d, "ticgw", version)
    fake_wheel(d, "tinydep", "1.0")
    return d


def make(tmp_path, keys, version="0.2.0", name=None, **kw):
    out = tmp_path / (name or "ticgw-%s.pak" % version)
    build(out, key=keys[0], wheels_from=wheels(tmp_path, version), **kw)
    return out


def refused(path, keys, code, running="0.1.0", **kw):
    with pytest.raises(PakError) as e:
        verify(path, keys[1], running_version=running, **kw)
    assert e.value.code == code, e.value.message
    assert e.value.french.startswith("Paquet")
    return e.value


def rewrite(src, dst, change):
    """Copy a package, passing each (TarInfo, data) through ``change`` (None drops it)."""
    with tarfile.open(src, "r:gz") as t:
        members = [(m, t.extractfile(m).read()) for m in t.getmembers()]
    with tarfile.open(dst, "w:gz") as t:
        for m, data in members:
            r = change(m, data)
            if r is not None:
                t.addfile(r[0], io.BytesIO(r[1]))
    return dst


def test_build_and_verify(tmp_path, keys):
    pak = make(tmp_path, keys, min_version="0.1.0")
    facts = verify(pak, keys[1], running_version="0.1.0")
    assert facts.version == "0.2.0" and facts.model == MODEL and facts.signature_checked
    assert facts.build_date.endswith("Z")
    assert facts.size == pak.stat().st_size
    import hashlib
    assert facts.sha256 == hashlib.sha256(pak.read_bytes()).hexdigest()
    assert facts.wheels == ["wheels/ticgw-0.2.0-py3-none-any.whl",
                            "wheels/tinydep-1.0-py3-none-any.whl"]
    with tarfile.open(pak) as t:
        assert t.getnames()[:3] == ["manifest.json", "manifest.sig", "requirements.txt"]
        req = t.extractfile("requirements.txt").read().decode().splitlines()
        manifest = json.loads(t.extractfile("manifest.json").read())
    assert req[0].startswith("ticgw==0.2.0 --hash=sha256:")
    assert req[1] == "tinydep==1.0 --hash=sha256:" + facts.members[
        "wheels/tinydep-1.0-py3-none-any.whl"]["sha256"]
    assert manifest["name"] == "ticgw" and manifest["min_version"] == "0.1.0"
    assert not list(tmp_path.glob(".*.tmp"))          # the temporary file is gone
    # the same version again (a reinstall) is accepted; so is an empty key (unchecked)
    assert verify(pak, keys[1], running_version="0.2.0").version == "0.2.0"
    assert not verify(pak, "", running_version=None).signature_checked


def test_sign_and_versions(keys, other_keys):
    sig = sign(b"abc", keys[0])
    assert len(sig) == 64 and len(keys[1]) == 64 and int(keys[1], 16) >= 0
    assert verify_signature(b"abc", sig, keys[1])
    assert not verify_signature(b"abd", sig, keys[1])
    assert not verify_signature(b"abc", sig, other_keys[1])
    with pytest.raises(ValueError):
        verify_signature(b"abc", sig, "12")
    for parse in (parse_version, _simple_version):
        assert parse("0.10.0") > parse("0.9.9") > parse("0.9.9rc1") > parse("0.9.9b2")
        assert parse("1.0") == parse("1.0.0") and parse("1.0.post1") > parse("1.0")
        assert parse("1.0.dev1") < parse("1.0a1")
        with pytest.raises(ValueError):
            parse("1.x")


def test_manifest_round_trip():
    m = Manifest(version="1.2.3", build_date="2026-11-30T12:00:00Z",
                 members={"requirements.txt": {"sha256": "0" * 64, "size": 3}})
    b = m.to_bytes()
    assert Manifest.from_bytes(b).to_bytes() == b
    assert b"\n" == b[-1:] and b" " not in b
    with pytest.raises(PakError) as e:
        Manifest.from_bytes(b.replace(b"1.2.3", b"one"))
    assert e.value.code == "bad-manifest"


def test_refused_wrong_key(tmp_path, keys, other_keys):
    pak = make(tmp_path, keys)
    refused(pak, other_keys, "bad-signature")
    with pytest.raises(PakError) as e:
        verify(pak, "zz" * 32, running_version="0.1.0")
    assert e.value.code == "bad-key"


def test_refused_wrong_signature_and_tampered_manifest(tmp_path, keys):
    pak = make(tmp_path, keys)

    def bad_sig(m, data):
        return (m, bytes([data[0] ^ 1]) + data[1:]) if m.name == "manifest.sig" else (m, data)
    refused(rewrite(pak, tmp_path / "sig.pak", bad_sig), keys, "bad-signature")

    def relax(m, data):     # a manifest changed after signing
        if m.name == "manifest.json":
            data = data.replace(b'"min_version":"0"', b'"min_version":"0.0"')
            m.size = len(data)
        return m, data
    e = refused(rewrite(pak, tmp_path / "man.pak", relax), keys, "bad-signature")
    assert "signature invalid" in e.message and "signature invalide" in e.french

    def no_sig(m, data):
        return None if m.name == "manifest.sig" else (m, data)
    refused(rewrite(pak, tmp_path / "nosig.pak", no_sig), keys, "missing-signature")

    def no_manifest(m, data):
        return None if m.name == "manifest.json" else (m, data)
    refused(rewrite(pak, tmp_path / "noman.pak", no_manifest), keys, "missing-manifest")


def test_refused_tampered_member(tmp_path, keys):
    pak = make(tmp_path, keys)

    def tamper(m, data):
        if m.name.startswith("wheels/tinydep"):
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        return m, data
    e = refused(rewrite(pak, tmp_path / "t.pak", tamper), keys, "member-mismatch")
    assert "wheels/tinydep-1.0-py3-none-any.whl" in e.message and "sha256" in e.message

    def grow(m, data):
        if m.name == "requirements.txt":
            data += b"evil==1\n"
            m.size = len(data)
        return m, data
    e = refused(rewrite(pak, tmp_path / "g.pak", grow), keys, "member-mismatch")
    assert "bytes" in e.message

    with tarfile.open(pak, "r:gz") as t:
        items = [(m, t.extractfile(m).read()) for m in t.getmembers()]
    with tarfile.open(tmp_path / "x.pak", "w:gz") as t:
        for m, data in items:
            t.addfile(m, io.BytesIO(data))
        info = tarfile.TarInfo("wheels/evil-1.0-py3-none-any.whl")
        info.size = 3
        t.addfile(info, io.BytesIO(b"bad"))
    refused(tmp_path / "x.pak", keys, "unlisted-member")

    def drop(m, data):
        return None if m.name.startswith("wheels/tinydep") else (m, data)
    refused(rewrite(pak, tmp_path / "d.pak", drop), keys, "missing-member")


def test_refused_truncated_and_not_a_package(tmp_path, keys):
    pak = make(tmp_path, keys)
    data = pak.read_bytes()
    for cut in (len(data) // 2, len(data) - 4, 20):
        short = tmp_path / ("short%d.pak" % cut)
        short.write_bytes(data[:cut])
        e = refused(short, keys, "truncated")
        assert "truncated" in e.message and "tronqué" in e.french
    text = tmp_path / "text.pak"
    text.write_text("hello, not a package\n")
    e = refused(text, keys, "not-a-package")
    assert "not a gzip file" in e.message
    gz = tmp_path / "gz.pak"
    gz.write_bytes(gzip.compress(b"not a tar at all " * 100))
    e = refused(gz, keys, "not-a-package")
    assert "not a tar archive" in e.message
    empty = tmp_path / "empty.pak"
    empty.write_bytes(b"")
    refused(empty, keys, "not-a-package")
    refused(tmp_path / "absent.pak", keys, "unreadable")


@pytest.mark.parametrize("name,kind,code", [
    ("../evil", tarfile.REGTYPE, "unsafe-path"),
    ("/etc/passwd", tarfile.REGTYPE, "unsafe-path"),
    ("wheels/../../evil", tarfile.REGTYPE, "unsafe-path"),
    ("wheels/link", tarfile.SYMTYPE, "member-type"),
    ("wheels/hard", tarfile.LNKTYPE, "member-type"),
    ("wheels/dev", tarfile.CHRTYPE, "member-type"),
    ("wheels/fifo", tarfile.FIFOTYPE, "member-type"),
])
def test_refused_escaping_member(tmp_path, keys, name, kind, code):
    pak = make(tmp_path, keys)
    with tarfile.open(pak, "r:gz") as t:
        items = [(m, t.extractfile(m).read()) for m in t.getmembers()]
    bad = tmp_path / "bad.pak"
    with tarfile.open(bad, "w:gz") as t:
        info = tarfile.TarInfo(name)
        info.type = kind
        if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
            info.linkname = "/etc/passwd"
        data = b"x" if kind == tarfile.REGTYPE else b""
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
        for m, d in items:
            t.addfile(m, io.BytesIO(d))
    e = refused(bad, keys, code)
    assert repr(name) in e.message


def test_refused_wrong_model(tmp_path, keys):
    pak = make(tmp_path, keys, model="ticgw-other")
    e = refused(pak, keys, "wrong-model")
    assert "'ticgw-other'" in e.message and "modèle" in e.french
    assert verify(pak, keys[1], running_version="0.1.0", model="ticgw-other")


def test_downgrade_refused_then_allowed(tmp_path, keys):
    old = make(tmp_path, keys, version="0.0.9")
    e = refused(old, keys, "downgrade", running="0.1.0")
    assert "older than the running 0.1.0" in e.message and "interdit" in e.french
    allowed = make(tmp_path, keys, version="0.0.9", name="allowed.pak",
                   downgrade_allowed_from=["0.1.0"])
    assert verify(allowed, keys[1], running_version="0.1.0").version == "0.0.9"
    refused(allowed, keys, "downgrade", running="0.1.1")       # only from the versions named


def test_min_version(tmp_path, keys):
    pak = make(tmp_path, keys, version="0.3.0", min_version="0.2.0")
    e = refused(pak, keys, "min-version", running="0.1.0")
    assert "0.2.0" in e.message
    assert verify(pak, keys[1], running_version="0.2.0")


def test_build_checks(tmp_path, keys):
    from ticgw.pak.build import BuildError
    with pytest.raises(BuildError):       # the version asked is not the wheel's
        build(tmp_path / "x.pak", key=keys[0], version="9.9", wheels_from=wheels(tmp_path))
    with pytest.raises(BuildError):
        build(tmp_path / "x.pak", key=b"not a key", wheels_from=tmp_path)
    assert not (tmp_path / "x.pak").exists()


def test_cli(tmp_path, capsys):
    assert main(["pak", "keygen", "--out", str(tmp_path / "k")]) == 0
    out = capsys.readouterr().out
    public = (tmp_path / "k" / "ticgw-pak.pub").read_text().strip()
    assert "BIN_PublicKey=" + public in out
    assert (tmp_path / "k" / "ticgw-pak.key").stat().st_mode & 0o777 == 0o600
    assert main(["pak", "keygen", "--out", str(tmp_path / "k")]) == 1    # never overwrites
    capsys.readouterr()

    pak = tmp_path / "p.pak"
    assert main(["pak", "build", "--key", str(tmp_path / "k" / "ticgw-pak.key"),
                 "--out", str(pak), "--wheels", str(wheels(tmp_path))]) == 0
    assert "ticgw 0.2.0" in capsys.readouterr().out

    assert main(["pak", "verify", str(pak), "--public-key", public,
                 "--running", "0.1.0"]) == 0
    assert capsys.readouterr().out.startswith("OK: ticgw 0.2.0")

    other = keygen()[1]
    assert main(["pak", "verify", str(pak), "--public-key", other]) == 1
    out = capsys.readouterr().out
    assert "REFUSED (bad-signature)" in out and "signature invalide" in out

    assert main(["pak", "verify", str(pak), "--public-key", public,
                 "--running", "0.3"]) == 1
    assert "REFUSED (downgrade)" in capsys.readouterr().out

    assert main(["pak", "info", str(pak)]) == 0
    out = capsys.readouterr().out
    assert "version:" in out and "0.2.0" in out and "wheels/tinydep-1.0-py3-none-any.whl" in out
    assert "sha256:" in out

    junk = tmp_path / "junk"
    junk.write_text("x")
    assert main(["pak", "info", str(junk)]) == 1
    assert "REFUSED (not-a-package)" in capsys.readouterr().out


def test_inspect_skips_signature(tmp_path, keys, other_keys):
    pak = make(tmp_path, keys, model="elsewhere")
    facts = inspect(pak)
    assert facts.model == "elsewhere" and not facts.signature_checked


# Real builds: pip builds the ticgw wheel from a copy of the tree; the dependencies' wheels come
# from a wheelhouse kept in the virtual environment, so only the first run fetches them.

@pytest.fixture(scope="session")
def house(tmp_path_factory):
    d = Path(sys.prefix) / "wheelhouse"
    if not os.access(sys.prefix, os.W_OK):
        d = tmp_path_factory.getbasetemp().parent / "wheelhouse"
    return wheelhouse.ensure(d)


@pytest.fixture(scope="session")
def tree(tmp_path_factory):
    """A copy of the source tree to build from: the tests check nothing is written into it."""
    d = tmp_path_factory.mktemp("tree") / "ticgw"
    shutil.copytree(source_tree(), d, ignore=shutil.ignore_patterns(
        ".*", "build", "dist", "*.egg-info", "var", "__pycache__", "*.pyc"))
    return d


def listing(d):
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


def wheel_text(pak, member, name):
    with tarfile.open(pak) as t:
        data = t.extractfile(member).read()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return z.read(name).decode()


@pytest.mark.parametrize("version", ["0.1.1", "0.2.0"])
def test_build_a_version_from_the_tree(tmp_path, keys, house, tree, version):
    before = listing(tree)
    pak = tmp_path / "p.pak"
    manifest = build(pak, key=keys[0], version=version, source=tree, wheels_from=house)
    assert manifest.version == version
    assert listing(tree) == before                  # nothing written into the tree
    assert not (tree / "build").exists() and not list(tree.glob("*.egg-info"))
    facts = verify(pak, keys[1], running_version="0.1.0")
    ours = "wheels/ticgw-%s-py3-none-any.whl" % version
    assert facts.version == version and ours in facts.wheels
    assert sorted(set(facts.wheels) - {ours}) == sorted(
        "wheels/" + w.name for w in house.glob("*.whl"))
    meta = wheel_text(pak, ours, "ticgw-%s.dist-info/METADATA" % version)
    assert "\nVersion: %s\n" % version in meta and "\nName: ticgw\n" in meta
    assert '__version__ = "%s"' % version in wheel_text(pak, ours, "ticgw/__init__.py")
    assert (tree / "ticgw" / "__init__.py").read_text().count('"%s"' % version) == 0


def test_build_refuses_a_bad_version(tmp_path, keys, house):
    with pytest.raises(BuildError) as e:
        build(tmp_path / "x.pak", key=keys[0], version="1.x", wheels_from=house)
    assert "invalid version: '1.x'" in str(e.value)
    src = tmp_path / "src"                          # a tree whose version pip cannot set
    (src / "ticgw").mkdir(parents=True)
    (src / "pyproject.toml").write_text('[project]\nname = "ticgw"\nversion = "1"\n')
    (src / "ticgw" / "__init__.py").write_text("VERSION = '1'\n")
    with pytest.raises(BuildError) as e:
        build(tmp_path / "x.pak", key=keys[0], version="1.2", source=src, wheels_from=house)
    assert "no __version__" in str(e.value)
    assert not (tmp_path / "x.pak").exists()


def test_cli_build_version(tmp_path, keys, house, capsys):
    key = tmp_path / "k.pem"
    key.write_bytes(keys[0])
    pak = tmp_path / "p.pak"
    assert main(["pak", "build", "--key", str(key), "--out", str(pak),
                 "--wheelhouse", str(house), "--version", "0.4.0"]) == 0
    assert "ticgw 0.4.0" in capsys.readouterr().out
    assert "wheels/ticgw-0.4.0-py3-none-any.whl" in inspect(pak).wheels
    assert main(["pak", "build", "--key", str(key), "--out", str(pak),      # not the wheel's
                 "--wheels", str(wheels(tmp_path)), "--version", "0.3.0"]) == 1
    assert "version 0.3.0 asked, the ticgw wheel is 0.2.0" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["pak", "build", "--key", str(key), "--wheels", str(tmp_path),
              "--wheelhouse", str(house)])
    assert "not allowed with" in capsys.readouterr().err


def test_wheelhouse_has_no_ticgw_wheel(house):
    names = [w.name for w in house.glob("*.whl")]
    assert any(n.startswith("cryptography-") for n in names)
    assert not [n for n in names if n.lower().startswith("ticgw-")]


def fake_source(d, *deps):
    d.mkdir(exist_ok=True)
    (d / "pyproject.toml").write_text('[project]\nname = "fake"\nversion = "0"\n'
                                      'dependencies = %s\n' % json.dumps(list(deps)))
    return d


def test_wheelhouse_reused_then_rebuilt(tmp_path, monkeypatch):
    src, d = fake_source(tmp_path / "src", "six==1.16.0"), tmp_path / "house"
    assert wheelhouse.ensure(d, source=src) == d
    assert [w.name for w in d.glob("*.whl")] == ["six-1.16.0-py2.py3-none-any.whl"]
    stamp = d / wheelhouse.STAMP
    first = stamp.stat().st_mtime_ns, stamp.read_text()

    def no_pip(*args):
        raise AssertionError("pip ran again")
    with monkeypatch.context() as m:
        m.setattr(wheelhouse, "run_pip", no_pip)
        assert wheelhouse.ensure(d, source=src) == d        # the same list: reused
    assert (stamp.stat().st_mtime_ns, stamp.read_text()) == first

    fake_source(src, "six==1.17.0")                         # another list: rebuilt
    assert wheelhouse.ensure(d, source=src) == d
    assert [w.name for w in d.glob("*.whl")] == ["six-1.17.0-py2.py3-none-any.whl"]
    assert stamp.read_text() != first[1] and "six==1.17.0" in stamp.read_text()

    fake_source(src, "six>=1 <2")                           # pip fails: the old one stays
    with pytest.raises(BuildError) as e:
        wheelhouse.ensure(d, source=src)
    assert "pip wheel failed" in str(e.value) and "Invalid requirement" in str(e.value)
    assert [w.name for w in d.glob("*.whl")] == ["six-1.17.0-py2.py3-none-any.whl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["house", "house.lock", "src"]

    other = tmp_path / "other"                              # not a wheelhouse: left alone
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(BuildError):
        wheelhouse.ensure(other, source=src)
    assert listing(other) == ["notes.txt"]


def test_wheelhouse_never_holds_ticgw(tmp_path):
    whl = fake_wheel(tmp_path, "ticgw", "0.2.0")
    src = fake_source(tmp_path / "src", "ticgw @ " + whl.as_uri())
    with pytest.raises(BuildError) as e:
        wheelhouse.ensure(tmp_path / "house", source=src)
    assert "ticgw-0.2.0-py3-none-any.whl" in str(e.value)
    assert not (tmp_path / "house").exists()


def test_wheelhouse_built_once_by_concurrent_callers(tmp_path, monkeypatch):
    src, d = fake_source(tmp_path / "src", "six==1.16.0"), tmp_path / "house"
    runs = []
    real = wheelhouse.run_pip

    def counting(*args):
        runs.append(args)
        real(*args)
    monkeypatch.setattr(wheelhouse, "run_pip", counting)
    results, errors = [], []

    def call():
        try:
            results.append(wheelhouse.ensure(d, source=src))
        except Exception as e:      # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [d] * 4 and len(runs) == 1
