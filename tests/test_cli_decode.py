"""`ticgw decode` as a user runs it: a file or stdin in, JSON lines out, counters on stderr."""
import json
import subprocess
import sys
from pathlib import Path

CAPTURES = Path(__file__).parent / "fixtures" / "captures"


def run(args, stdin=None):
    return subprocess.run([sys.executable, "-m", "ticgw.cli", "decode", *args], input=stdin,
                          capture_output=True, timeout=60)


def test_decode_file():
    r = run([str(CAPTURES / "linky_standard_base_mono_hekmon.bin")])
    assert r.returncode == 0
    frames = [json.loads(l) for l in r.stdout.decode().splitlines()]
    assert len(frames) == 1
    f = frames[0]
    assert f["mode"] == "standard" and f["family"] == "LINKY" and f["complete"]
    assert set(f["groups"][0]) == {"label", "horodate", "value", "checksum", "checksum_ok"}
    date = next(g for g in f["groups"] if g["label"] == "DATE")
    assert date["value"] == "" and len(date["horodate"]) == 13
    assert all(g["checksum_ok"] for g in f["groups"])
    assert f["errors"] == []
    assert b"1 frames (1 complete, 1 valid" in r.stderr


def test_decode_stdin_with_errors_and_fixed_mode():
    data = (CAPTURES / "linky_standard_tri_corrupt_tinfo_replay.bin").read_bytes()
    r = run(["--mode", "standard", "-"], stdin=b"noise" + data)
    assert r.returncode == 0
    frames = [json.loads(l) for l in r.stdout.decode().splitlines()]
    bad = [g for f in frames for g in f["groups"] if not g["checksum_ok"]]
    assert len(bad) == 12 and all(g.get("error") for g in bad)
    assert b"12 invalid" in r.stderr and b"5 bytes skipped" in r.stderr


def test_decode_historic_mode_rejects_standard_groups():
    data = (CAPTURES / "linky_standard_base_mono_hekmon.bin").read_bytes()
    r = run(["--mode", "historic"], stdin=data)
    f = json.loads(r.stdout.decode().splitlines()[0])
    assert not any(g["checksum_ok"] for g in f["groups"])
    assert all("separator HT in historic mode" in g["error"] for g in f["groups"])
