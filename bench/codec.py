"""Decode throughput: ticgw's FrameDecoder against python-teleinfo 1.3.1, on the same bytes.

python-teleinfo (PyPI `teleinfo`, demikl/python-teleinfo) reads one character at a time through a
vendor object; it is given an in-memory reader here so both sides decode the same stream from
memory. It validates historic checksums only and cannot split standard-mode (HT) groups, so on a
standard stream it returns empty frames: its figure there is framing speed, not decoding.
"""
from __future__ import annotations

import logging
import time

from tic.codec import HISTORIC, STANDARD, FrameDecoder, encode_frame

N_FRAMES = 3000


def historic_stream(n: int) -> tuple[bytes, int]:
    frames = []
    hchc, hchp = 723392, 1065703
    for i in range(n):
        hchp += 7
        frames.append(encode_frame([
            ("ADCO", "021528603314"), ("OPTARIF", "HC.."), ("ISOUSC", "45"),
            ("HCHC", "%09d" % hchc), ("HCHP", "%09d" % hchp), ("PTEC", "HP.."),
            ("IINST", "%03d" % (i % 40)), ("IMAX", "042"), ("PAPP", "%05d" % (i % 9000)),
            ("HHPHC", "D"), ("MOTDETAT", "000000")], HISTORIC))
    return b"".join(frames), n


def standard_frame(i: int, east: int, east_value: int | None = None) -> bytes:
    """A Linky standard frame (38 groups, ~870 bytes); `i` moves the clock and the currents,
    `east` the indexes; EAST shows `east_value` when given (the latency benchmark numbers its
    frames there)."""
    s = i % 60
    return encode_frame([
        ("ADSC", "041876012345"), ("VTIC", "02"), ("DATE", "", "H2501222229%02d" % s),
        ("NGTF", "     TEMPO      "), ("LTARF", "    HP  BLEU    "),
        ("EAST", "%09d" % (east if east_value is None else east_value)),
        ("EASF01", "%09d" % (east // 2)), ("EASF02", "%09d" % (east - east // 2)),
        ("EASF03", "000000000"), ("EASF04", "000000000"), ("EASF05", "000000000"),
        ("EASF06", "000000000"), ("EASF07", "000000000"), ("EASF08", "000000000"),
        ("EASF09", "000000000"), ("EASF10", "000000000"), ("EASD01", "%09d" % east),
        ("EASD02", "000000000"), ("EASD03", "000000000"), ("EASD04", "000000000"),
        ("IRMS1", "%03d" % (i % 30)), ("URMS1", "232"), ("PREF", "12"), ("PCOUP", "12"),
        ("SINSTS", "%05d" % (i % 9000)), ("SMAXSN", "04230", "H250122061012"),
        ("SMAXSN-1", "05120", "H250121193000"), ("CCASN", "01830", "H250122223000"),
        ("CCASN-1", "01790", "H250122220000"), ("UMOY1", "231", "H250122222500"),
        ("STGE", "013A0501"), ("MSG1", "PAS DE          MESSAGE         "),
        ("PRM", "12345678901234"), ("RELAIS", "000"), ("NTARF", "02"), ("NJOURF", "00"),
        ("NJOURF+1", "00"), ("PJOURF+1", "00004001 06004002 22004001 NONUTILE NONUTILE "
                                        "NONUTILE NONUTILE NONUTILE NONUTILE NONUTILE NONUTILE")],
        STANDARD)


def standard_stream(n: int) -> tuple[bytes, int]:
    east = 12345678
    frames = []
    for i in range(n):
        east += 3
        frames.append(standard_frame(i, east))
    return b"".join(frames), n


def bench_ticgw(stream: bytes, chunk: int = 4096) -> tuple[float, int, int]:
    d = FrameDecoder()
    t0 = time.perf_counter()
    n = 0
    groups = 0
    for i in range(0, len(stream), chunk):
        for frame in d.feed(stream[i:i + chunk]):
            groups += len(frame.values())  # label -> value, as python-teleinfo returns
            n += 1
    dt = time.perf_counter() - t0
    assert groups == d.stats.groups_ok
    return dt, n, groups


def bench_teleinfo(stream: bytes, n_frames: int) -> tuple[float, int, int]:
    from teleinfo.base_vendor import BASE_vendor
    from teleinfo.parser import Parser

    class MemoryReader(BASE_vendor):
        def __init__(self, data: str):
            self._it = iter(data)

        def read_char(self):
            return next(self._it)

    text = stream.decode("ascii")
    t0 = time.perf_counter()
    # The parser consumes the first STX at construction, then resynchronises on the next one:
    # it decodes n - 1 frames of the stream.
    parser = Parser(MemoryReader(text))
    got = groups = 0
    for _ in range(n_frames - 1):
        try:
            frame = parser.get_frame()
        except (StopIteration, RuntimeError):
            break
        got += 1
        groups += len(frame)
    dt = time.perf_counter() - t0
    return dt, got, groups


def main() -> None:
    logging.getLogger("teleinfo").setLevel(logging.CRITICAL)  # it logs every standard frame
    print("== codec: decode throughput, %d frames per stream, interleaved, best of 5 ==" % N_FRAMES)
    print("%-10s %-16s %10s %8s %10s %12s" % ("stream", "decoder", "frames/s", "MB/s",
                                              "frames", "groups ok"))
    for name, make in (("historic", historic_stream), ("standard", standard_stream)):
        stream, n = make(N_FRAMES)
        rows = {}
        runs = {"ticgw": [], "teleinfo 1.3.1": []}
        for _ in range(5):  # interleaved, best of 5: the machine is shared and noisy
            runs["ticgw"].append(bench_ticgw(stream))
            runs["teleinfo 1.3.1"].append(bench_teleinfo(stream, n))
        for label, results in runs.items():
            dt, frames, groups = min(results, key=lambda r: r[0])
            rows[label] = frames / dt
            print("%-10s %-16s %10.0f %8.2f %10d %12d" % (name, label, frames / dt,
                                                          len(stream) / dt / 1e6, frames, groups))
        print("%-10s ratio ticgw/teleinfo: %.1fx frames/s" % (
            name, rows["ticgw"] / rows["teleinfo 1.3.1"]))


if __name__ == "__main__":
    main()
