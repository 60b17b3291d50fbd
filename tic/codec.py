"""TIC codec: incremental frame decoder, group validation, and an encoder.

The wire format (Enedis NOI-CPT_02E for historic meters, NOI-CPT_54E for Linky standard mode):

    frame  = STX group* ETX          (EOT instead of ETX: transmission interrupted)
    group  = LF label SEP [horodate SEP] value SEP checksum CR

SEP is SP (historic, checksum "mode 1") or HT (standard, "mode 2"). The checksum is
``(sum(zone) & 0x3F) + 0x20``: mode 1 sums label..value (the last SP excluded), mode 2 sums
label..the HT before the checksum (included). The mode of a group is read from the separator that
precedes its checksum, never guessed by trying both: a group is checked one way only.

The checksum character may itself be a space: nothing here strips whitespace.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat
from operator import itemgetter
from typing import NamedTuple
from zlib import adler32

STX, ETX, EOT, LF, CR, HT, SP = 0x02, 0x03, 0x04, 0x0A, 0x0D, 0x09, 0x20
#: Some faulty meters start groups with SO (0x0E) instead of LF.
SO = 0x0E

HISTORIC = "historic"
STANDARD = "standard"
AUTO = "auto"
MODES = (AUTO, HISTORIC, STANDARD)

SEPARATOR = {HISTORIC: SP, STANDARD: HT}
MODE_OF_SEPARATOR = {SP: HISTORIC, HT: STANDARD}

#: Largest frame accepted before the decoder gives up and resynchronises (a standard frame is
#: about 865 bytes; PJOURF+1 and PPOINTE are 98 characters each).
MAX_FRAME = 8192
#: Longest label and value accepted (Linky PJOURF+1/PPOINTE values are 98 characters).
MAX_LABEL = 16
MAX_VALUE = 128

SEASONS = "EeHh "

_FRAME_MARK = re.compile(rb"[\x02\x03\x04]")
_BAD_CHAR = re.compile(rb"[^\x20-\x7e\t]")
_LABEL_BAD = re.compile(rb"[^\x21-\x7e]")
_DIGITS12 = re.compile(r"\d{12}\Z")

# Byte tables applied before framing. A 7E1 line read by a 7-bit UART never carries bit 7, and
# Linux delivers a byte received with a parity error as NUL (IGNPAR and PARMRK off). A port opened
# 8N1 on a 7E1 line (some USB adapters) carries the parity bit in bit 7: check it, then mask it.
# Both tables map a byte that cannot be right to NUL, so line errors are counted as NULs.
_SEVEN_BIT = bytes(b if b < 0x80 else 0 for b in range(256))
_EIGHT_BIT_EVEN = bytes((b & 0x7F) if bin(b).count("1") % 2 == 0 else 0 for b in range(256))


def checksum(zone: bytes) -> int:
    """The TIC checksum of ``zone`` (already cut to the mode's zone)."""
    return (sum(zone) & 0x3F) + 0x20


class Group(NamedTuple):
    """One information group as received, with its checksum verdict.

    ``error`` is None for a valid group; otherwise a short reason ("checksum", "malformed",
    "invalid character", ...). ``checksum_ok`` is the arithmetic verdict alone.
    (A NamedTuple: the decoder builds one per group, and tuples are the cheapest to build.)
    """

    label: str
    value: str
    horodate: str | None
    checksum: str
    checksum_ok: bool
    mode: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        d = {
            "label": self.label,
            "horodate": self.horodate,
            "value": self.value,
            "checksum": self.checksum,
            "checksum_ok": self.checksum_ok,
        }
        if self.error:
            d["error"] = self.error
        return d


class Frame:
    """A frame: its groups in order, whether it was received whole, and what went wrong.

    Every group is validated when the frame is decoded; on the fast path the Group objects are
    built only when ``groups`` is first read (``values()`` does not need them).
    """

    __slots__ = ("mode", "complete", "errors", "n_bad", "_groups", "_columns")

    def __init__(self, mode: str | None, groups: list[Group] | None, complete: bool,
                 errors: list[str] | None = None, n_bad: int = 0, columns: tuple | None = None):
        self.mode = mode
        self.complete = complete
        self.errors = errors if errors is not None else []
        self.n_bad = n_bad          # groups with an error
        self._groups = groups
        self._columns = columns     # (labels, values, horodates, checksums, oks, errors)

    @property
    def groups(self) -> list[Group]:
        if self._groups is None:
            labels, values, horodates, css, oks, errors = self._columns
            if self.mode == STANDARD:  # the regex gives "" for an absent horodate
                horodates = [h or None for h in horodates]
            self._groups = list(map(_make_group, zip(labels, values, horodates, css, oks,
                                                     repeat(self.mode), errors)))
        return self._groups

    def clean_columns(self) -> tuple | None:
        """``(labels, values, horodates, checksums)``, tuples of strings with one entry per group
        in order, when the frame came whole through the fast path and every group is valid;
        None for any other frame (read ``groups`` then). ``horodates`` is None in historic mode;
        in standard mode an absent horodate is ``""``. For callers that render many frames
        (``ticgw decode``) without building a Group per group."""
        cols = self._columns
        if cols is None or self.n_bad:
            return None
        return cols[0], cols[1], cols[2] if self.mode == STANDARD else None, cols[3]

    @property
    def n_groups(self) -> int:
        """How many groups, without building them."""
        return len(self._groups if self._columns is None else self._columns[0])

    def __repr__(self) -> str:
        return "Frame(mode=%r, complete=%r, errors=%r, groups=%r)" % (
            self.mode, self.complete, self.errors, self.groups)

    @property
    def ok(self) -> bool:
        """Whole, with at least one group, and every group valid."""
        return self.complete and not self.errors and self.n_bad == 0 and bool(
            self._groups if self._columns is None else self._columns[0])

    def valid_groups(self) -> dict[str, Group]:
        """Label -> group, for the groups whose checksum verified (first occurrence wins)."""
        out: dict[str, Group] = {}
        for g in self.groups:
            if g.ok and g.label not in out:
                out[g.label] = g
        return out

    def values(self) -> dict[str, str]:
        """Label -> value of the valid groups (first occurrence wins)."""
        if self._columns is not None and self.n_bad == 0:
            labels, values = self._columns[0], self._columns[1]
            d = dict(zip(labels, values))
            if len(d) == len(labels):
                return d
        return {label: g.value for label, g in self.valid_groups().items()}


@dataclass(slots=True)
class DecoderStats:
    """Counters of everything the decoder saw and dropped."""

    bytes: int = 0
    frames: int = 0              # frames emitted, complete or not
    frames_complete: int = 0     # STX .. ETX
    frames_ok: int = 0           # complete and every group valid
    frames_interrupted: int = 0  # EOT inside a frame
    frames_truncated: int = 0    # new STX before ETX, oversize, or end of input
    groups_ok: int = 0
    groups_bad: int = 0
    checksum_errors: int = 0
    bytes_skipped: int = 0       # outside any frame: noise, the tail of a frame before the first STX
    line_errors: int = 0         # parity errors reported by the line (NUL) or impossible bytes

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}


def parse_group(body: bytes, mode: str = AUTO) -> Group:
    """Decode one group from the bytes between LF and CR (both excluded).

    ``mode`` fixes the expected separator (historic: SP, standard: HT); ``auto`` reads it from
    the byte before the checksum.
    """
    if len(body) < 4:
        return _malformed(body, "malformed: too short")
    cs = body[-1]
    sep = body[-2]
    group_mode = MODE_OF_SEPARATOR.get(sep)
    if group_mode is None:
        return _malformed(body, "malformed: no separator before checksum")
    if mode != AUTO and group_mode != mode:
        return _malformed(body, "separator %s in %s mode" % ("HT" if sep == HT else "SP", mode))
    if group_mode == STANDARD:
        zone = body[:-1]
        fields = body[:-2].split(b"\t")
        if len(fields) == 2:
            label, value = fields
            horodate = None
        elif len(fields) == 3:
            label, hbytes, value = fields
            horodate = hbytes.decode("ascii", "replace")
        else:
            return _malformed(body, "malformed: %d fields" % len(fields))
    else:
        zone = body[:-2]
        label, sp, value = zone.partition(b" ")
        if not sp:
            return _malformed(body, "malformed: no value")
        horodate = None
        if b"\t" in zone:
            return _malformed(body, "malformed: HT in a historic group")
    ok = checksum(zone) == cs
    error = None
    if _BAD_CHAR.search(body[:-1]) or cs < 0x20 or cs > 0x7E:
        error = "invalid character"
    elif not label or len(label) > MAX_LABEL or _LABEL_BAD.search(label):
        error = "malformed: label"
    elif len(value) > MAX_VALUE:
        error = "malformed: value too long"
    elif horodate is not None and not _horodate_ok(horodate):
        error = "malformed: horodate"
    elif not ok:
        error = "checksum"
    return Group(
        label=label.decode("ascii", "replace"),
        value=value.decode("ascii", "replace"),
        horodate=horodate,
        checksum=chr(cs) if cs < 0x80 else "\ufffd",
        checksum_ok=ok,
        mode=group_mode,
        error=error,
    )


def _horodate_ok(h: str) -> bool:
    return len(h) == 13 and h[0] in SEASONS and _DIGITS12.match(h[1:]) is not None


def _malformed(body: bytes, reason: str) -> Group:
    text = body.decode("ascii", "replace")
    label = text.split("\t", 1)[0].split(" ", 1)[0]
    return Group(label=label, value="", horodate=None, checksum="", checksum_ok=False,
                 mode=None, error=reason)




# One well-formed group of each mode, as text: LF, the checksum zone (captured: label SP value
# in mode 1; label HT [horodate HT] value HT in mode 2), the checksum, CR. When the matches tile
# the whole frame, every group is structurally sound and only checksums remain to be verified,
# for all groups at once; anything else takes the careful path, group by group.
_HIST_GROUPS = re.compile(r"\n(([!-~]{1,16}) ([ -~]{0,128})) ([ -_])\r")
_STD_GROUPS = re.compile(r"\n(([!-~]{1,16})\t(?:([EeHh ]\d{12})\t)?([ -~]{0,128})\t)([ -_])\r")


def _tiles(fields: list[tuple], text: str, extra: int) -> bool:
    """Do the matches cover the whole text? Each match is one LF..CR group (no LF or CR can sit
    inside one) of len(zone) + `extra` characters, and matches never overlap: when their lengths
    add up to the text's, nothing lies between or around them."""
    return bool(fields) and \
        sum(map(len, map(_first, fields))) + extra * len(fields) == len(text)


def parse_frame_body(body: bytes, mode: str = AUTO, complete: bool = True) -> Frame:
    """Decode the bytes between STX and ETX (both excluded) into a frame."""
    if complete:
        text = body.decode("latin-1")  # never fails; the patterns admit printable ASCII only
        if b"\t" not in body:
            if mode != STANDARD:
                fields = _HIST_GROUPS.findall(text)
                if _tiles(fields, text, 4):  # LF, SP, checksum, CR around the zone
                    return _clean_frame(body, fields, HISTORIC)
        elif mode != HISTORIC:
            fields = _STD_GROUPS.findall(text)
            if _tiles(fields, text, 3):  # LF, checksum, CR around the zone
                return _clean_frame(body, fields, STANDARD)
    return _parse_groups_slowly(body, mode, complete)


def _clean_frame(body: bytes, fields: list[tuple], mode: str) -> Frame:
    """Checksums of a frame already known to be well formed, all groups at once.

    The patterns capture each group's checksum zone (mode 1: label SP value; mode 2: through the
    HT before the checksum), so the check is sum -> & 0x3F -> + 0x20 -> compare, done with map()
    over C functions: this is the decoder's hot path.
    """
    if mode == HISTORIC:
        zones, labels, values, css = zip(*fields)
        horodates = repeat(None, len(labels))
    else:
        zones, labels, horodates, values, css = zip(*fields)
    # zlib.adler32's low 16 bits are 1 + the byte sum (a zone is far too short for its modulo
    # 65521 to wrap): a faster sum than sum() over bytes. _ADLER_CHECKSUM maps those bits & 0x3F
    # to the checksum character.
    expected = map(_ADLER_CHECKSUM.__getitem__,
                   map((0x3F).__and__, map(adler32, map(str.encode, zones))))
    oks = list(map(str.__eq__, expected, css))
    bad = oks.count(False)
    errors = [None if ok else "checksum" for ok in oks] if bad else repeat(None, len(oks))
    return Frame(mode, None, True, [], bad, (labels, values, horodates, css, oks, errors))


#: The checksum character for each value of (adler32 & 0x3F), i.e. of ((sum + 1) & 0x3F).
_ADLER_CHECKSUM = tuple(chr(((i - 1) & 0x3F) + 0x20) for i in range(64))
_make_group = partial(tuple.__new__, Group)
_first = itemgetter(0)


def _parse_groups_slowly(body: bytes, mode: str, complete: bool) -> Frame:
    errors: list[str] = []
    if SO in body:
        body = body.replace(b"\x0e", b"\n")
    parts = body.split(b"\n")
    if parts[0]:
        errors.append("%d stray bytes before the first group" % len(parts[0]))
    groups: list[Group] = []
    frame_mode = None if mode == AUTO else mode
    for part in parts[1:]:
        end = part.find(b"\r")
        if end < 0:
            if part or complete:
                groups.append(_malformed(part, "malformed: no CR"))
            continue
        if end != len(part) - 1 and part[end + 1:].strip(b"\r"):
            errors.append("stray bytes after group %r" % part[:end][:16].decode("ascii", "replace"))
        g = parse_group(part[:end], frame_mode or AUTO)
        if frame_mode is None and g.mode is not None:
            frame_mode = g.mode
        groups.append(g)
    bad = sum(1 for g in groups if g.error is not None)
    return Frame(mode=frame_mode, groups=groups, complete=complete, errors=errors, n_bad=bad)


class FrameDecoder:
    """Incremental decoder: feed it bytes split anywhere, it yields frames and counts drops.

    >>> d = FrameDecoder()
    >>> [f.values() for f in d.feed(encode_frame([("ADCO", "021528603314")], HISTORIC))]
    [{'ADCO': '021528603314'}]
    """

    def __init__(self, mode: str = AUTO, eight_bit: bool = False, max_frame: int = MAX_FRAME):
        if mode not in MODES:
            raise ValueError("mode must be one of %s" % ", ".join(MODES))
        self.mode = mode
        self.max_frame = max_frame
        self._table = _EIGHT_BIT_EVEN if eight_bit else _SEVEN_BIT
        self._buf = bytearray()
        self._in_frame = False
        self.stats = DecoderStats()

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; return the frames they completed (possibly none)."""
        st = self.stats
        st.bytes += len(data)
        data = data.translate(self._table)
        st.line_errors += data.count(0)
        buf = self._buf
        buf += data
        out: list[Frame] = []
        pos = 0
        n = len(buf)
        while pos < n:
            if not self._in_frame:
                i = buf.find(b"\x02", pos)
                if i < 0:
                    st.bytes_skipped += n - pos
                    pos = n
                    break
                st.bytes_skipped += i - pos
                self._in_frame = True
                pos = i + 1
                continue
            m = _FRAME_MARK.search(buf, pos)
            if m is None:
                if n - pos > self.max_frame:
                    out.append(self._emit(bytes(buf[pos:]), False, "oversize frame dropped"))
                    st.frames_truncated += 1
                    self._in_frame = False
                    pos = n
                break
            i = m.start()
            mark = buf[i]
            body = bytes(buf[pos:i])
            if mark == ETX:
                out.append(self._emit(body, True))
                self._in_frame = False
                pos = i + 1
            elif mark == EOT:
                out.append(self._emit(body, False, "interrupted (EOT)"))
                st.frames_interrupted += 1
                self._in_frame = False
                pos = i + 1
            else:  # STX before ETX: the previous frame lost its end
                out.append(self._emit(body, False, "truncated (STX before ETX)"))
                st.frames_truncated += 1
                pos = i + 1
        del buf[:pos]
        return out

    @property
    def in_frame(self) -> bool:
        """Inside a frame (STX seen, no end yet)."""
        return self._in_frame

    def flush(self) -> list[Frame]:
        """End of input: report a frame left open as truncated."""
        if self._in_frame:
            body = bytes(self._buf)
            self._buf.clear()
            self._in_frame = False
            self.stats.frames_truncated += 1
            return [self._emit(body, False, "truncated (end of input)")]
        self.stats.bytes_skipped += len(self._buf)
        self._buf.clear()
        return []

    def reset(self) -> None:
        """Forget a partial frame (after the line was reopened, for instance)."""
        self._buf.clear()
        self._in_frame = False

    def _emit(self, body: bytes, complete: bool, error: str | None = None) -> Frame:
        frame = parse_frame_body(body, self.mode, complete)
        if error:
            frame.errors.insert(0, error)
        st = self.stats
        st.frames += 1
        bad = frame.n_bad
        n = frame.n_groups
        if bad:
            st.checksum_errors += sum(1 for g in frame.groups if g.error == "checksum")
            st.groups_bad += bad
        st.groups_ok += n - bad
        if complete:
            st.frames_complete += 1
            if not bad and n and not frame.errors:  # Frame.ok, without the property call
                st.frames_ok += 1
        return frame


# --- encoder (simulators and tests) ---------------------------------------------------------

def encode_group(label: str, value: str, horodate: str | None = None, mode: str = HISTORIC,
                 corrupt_checksum: bool = False) -> bytes:
    """One group, LF..CR, with its checksum. A horodate needs standard mode."""
    sep = bytes([SEPARATOR[mode]])
    if horodate is not None:
        if mode != STANDARD:
            raise ValueError("a horodate exists only in standard mode")
        head = label.encode("ascii") + sep + horodate.encode("ascii") + sep + value.encode("ascii")
    else:
        head = label.encode("ascii") + sep + value.encode("ascii")
    cs = checksum(head + sep) if mode == STANDARD else checksum(head)
    if corrupt_checksum:
        cs = 0x20 + ((cs - 0x20 + 1) & 0x3F)
    return b"\n" + head + sep + bytes([cs]) + b"\r"


def encode_frame(groups, mode: str = HISTORIC) -> bytes:
    """A whole frame, STX..ETX, from (label, value) or (label, value, horodate) tuples."""
    parts = [b"\x02"]
    for g in groups:
        label, value = g[0], g[1]
        horodate = g[2] if len(g) > 2 else None
        parts.append(encode_group(label, value, horodate, mode))
    parts.append(b"\x03")
    return b"".join(parts)


def with_parity(data: bytes) -> bytes:
    """The bytes as a 7E1 line looks when read 8N1: the even-parity bit in bit 7."""
    return bytes(b | 0x80 if bin(b).count("1") % 2 else b for b in data)
