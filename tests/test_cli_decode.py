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


def _long_stream() -> bytes:
    """Historic and standard frames, > 3 read blocks of `ticgw decode`: clean ones (the fast
    path), values to escape in JSON, duplicated labels, a bad checksum, an interrupted frame,
    noise between frames, and a meter address that changes under the same labels."""
    from tic.codec import HISTORIC, STANDARD, encode_frame, encode_group

    frames = []
    for i in range(400):
        adco = "021528603314" if i % 50 else "021564012345"  # type 64 (a Linky) now and then
        frames.append(encode_frame([
            ("ADCO", adco), ("OPTARIF", "HC.."), ("ISOUSC", "45"), ("HCHC", "%09d" % i),
            ("PTEC", "HP.."), ("IINST", "%03d" % (i % 40)), ("PAPP", "%05d" % (i * 7))],
            HISTORIC))
        frames.append(encode_frame([
            ("ADSC", "041876012345"), ("VTIC", "02"), ("DATE", "", "H250122%06d" % i),
            ("EAST", "%09d" % i), ("SMAXSN", "%05d" % i, "E250122061012"),
            ("MSG1", ["PAS DE MESSAGE", 'A "QUOTE"', "BACK\\SLASH", "{0} %s"][i % 4])],
            STANDARD))
        if i % 37 == 0:
            frames.append(b"\x02" + encode_group("ADCO", "021528603314", mode=HISTORIC)
                          + encode_group("PAPP", "00100", mode=HISTORIC, corrupt_checksum=True)
                          + encode_group("PAPP", "00200", mode=HISTORIC) + b"\x03")
        if i % 41 == 0:
            frames.append(b"noise" + encode_frame([("ADCO", "021528603314")])[:-1] + b"\x04")
    return b"".join(frames)


def _expected_lines(data: bytes) -> list[str]:
    """The frames of the whole stream decoded at once, each through json.dumps (the format's
    definition; `ticgw decode` writes most frames through a template)."""
    from tic.codec import FrameDecoder
    from ticgw.cli.decode import frame_json

    dec = FrameDecoder()
    frames = dec.feed(data) + dec.flush()
    return [json.dumps(frame_json(f), ensure_ascii=False) for f in frames]


def test_long_stream_across_read_blocks_is_the_one_block_decode(tmp_path):
    from ticgw.cli.decode import CHUNK

    data = _long_stream()
    assert len(data) > 3 * CHUNK
    path = tmp_path / "long.bin"
    path.write_bytes(data)
    expected = _expected_lines(data)
    assert len(expected) > 800
    for r in (run([str(path)]), run(["-"], stdin=data)):
        assert r.returncode == 0
        assert r.stdout.decode().splitlines() == expected
    assert {json.loads(l)["family"] for l in expected} == {"CBEMM-ICC", "LINKY", "UNKNOWN"}
    assert b"821 frames (811 complete, 800 valid, 10 interrupted" in r.stderr
    assert b"11 invalid (11 checksum)" in r.stderr


def test_line_format_is_pinned():
    """Keys in order, json.dumps's default separators, a null horodate in historic mode."""
    r = run([str(CAPTURES / "cbemm_icc_hc_tinfo_replay.bin")])
    line = r.stdout.decode().splitlines()[0]
    assert line.startswith('{"mode": "historic", "family": "CBEMM-ICC", "complete": true, '
                           '"groups": [{"label": "ADCO", "horodate": null, "value": "')
    assert line.endswith('"checksum_ok": true}], "errors": []}')


def test_renderer_matches_json_dumps_frame_by_frame():
    """The template path and the general path write the same text, whatever the frame."""
    from tic.codec import FrameDecoder
    from ticgw.cli.decode import LineRenderer, frame_json

    render = LineRenderer().line
    dec = FrameDecoder()
    n = 0
    data = _long_stream()
    for i in range(0, len(data), 1000):
        for f in dec.feed(data[i:i + 1000]):
            assert render(f) == json.dumps(frame_json(f), ensure_ascii=False) + "\n"
            n += 1
    assert n > 800


def test_decode_imports_only_what_it_needs():
    """`ticgw decode` builds its own parser only: no bus, no simulators at start-up."""
    code = ("import sys; from ticgw.cli import main; main(['decode', sys.argv[1]]); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('zmq', 'bus', 'sim', 'services', 'statecharts', 'msgpack')), file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code, str(CAPTURES / "cbetm_base_openhab.bin")],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr.decode().splitlines()[-1] == "[]"


def test_help_lists_every_command():
    r = subprocess.run([sys.executable, "-m", "ticgw.cli", "--help"], capture_output=True,
                       timeout=60)
    assert r.returncode == 0
    for command in ("decode", "config", "statecharts", "bus", "procfile", "sim"):
        assert "\n    %s " % command in r.stdout.decode()
