"""Pure parsers of AT answers (3GPP TS 27.007 and vendor variants) and the tables they need.

Every parser takes the information lines of one answer (a list of str, as returned by
``AtChannel.command``; a URC's ``line`` wrapped in a list works too) and looks for its own
prefix, so stray lines do not disturb it. A parser whose answer line is missing raises
ValueError; the ones whose result is naturally optional (ICCID, PIN attempts) return None.

Access technology (``<AcT>`` of +CREG/+CGREG/+CEREG/+COPS), per 27.007: 0 GSM, 1 GSM compact,
2 UTRAN, 3 GSM w/EGPRS, 4 UTRAN w/HSDPA, 5 UTRAN w/HSUPA, 6 UTRAN w/HSDPA+HSUPA, 7 E-UTRAN,
8 EC-GSM-IoT (A/Gb mode), 9 E-UTRAN (NB-S1 mode, i.e. NB-IoT), 10 E-UTRAN connected to a 5GCN,
11 NR connected to a 5GCN, 12 NG-RAN, 13 E-UTRA-NR dual connectivity.
LTE-M (Cat-M1, eMTC) has no value of its own in 27.007: standard firmwares (SIMCom SIM7000,
u-blox SARA-R4) report it as 7 (E-UTRAN), indistinguishable from LTE Cat-1/4 by AcT alone.
Quectel BG95/BG96 report Cat-M1 as **8**, which 27.007 defines as EC-GSM-IoT (a 2G variant),
and NB-IoT as 9. ``ACT_NAMES`` follows 27.007 (8 -> "2G"); ``act_name(8, dialect="quectel")``
gives "LTE-M". The simulator follows the same rule per dialect.
"""
from __future__ import annotations

import re

# -- CME errors -----------------------------------------------------------------------------------

#: +CME ERROR codes (27.007 §9.2 and common vendor codes): code -> English meaning.
CME: dict[int, str] = {
    0: "phone failure",
    1: "no connection to phone",
    2: "phone-adaptor link reserved",
    3: "operation not allowed",
    4: "operation not supported",
    5: "PH-SIM PIN required",
    6: "PH-FSIM PIN required",
    7: "PH-FSIM PUK required",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    14: "SIM busy",
    15: "SIM wrong",
    16: "incorrect password",
    17: "SIM PIN2 required",
    18: "SIM PUK2 required",
    20: "memory full",
    21: "invalid index",
    22: "not found",
    23: "memory failure",
    24: "text string too long",
    25: "invalid characters in text string",
    26: "dial string too long",
    27: "invalid characters in dial string",
    30: "no network service",
    31: "network timeout",
    32: "network not allowed - emergency calls only",
    40: "network personalization PIN required",
    41: "network personalization PUK required",
    42: "network subset personalization PIN required",
    43: "network subset personalization PUK required",
    44: "service provider personalization PIN required",
    45: "service provider personalization PUK required",
    46: "corporate personalization PIN required",
    47: "corporate personalization PUK required",
    50: "incorrect parameters",
    100: "unknown",
    103: "illegal MS",
    106: "illegal ME",
    107: "GPRS services not allowed",
    111: "PLMN not allowed",
    112: "location area not allowed",
    113: "roaming not allowed in this location area",
    132: "service option not supported",
    133: "requested service option not subscribed",
    134: "service option temporarily out of order",
    148: "unspecified GPRS error",
    149: "PDP authentication failure",
    150: "invalid mobile class",
    515: "please wait, init or command processing in progress",
}

#: Codes where trying the same thing again cannot help (a person, the SIM or the subscription
#: must change first). Every other code, known or not, is "transient".
CME_HELD: frozenset[int] = frozenset({
    4, 5, 6, 7, 10, 11, 12, 13, 15, 16, 17, 18, 20, 21, 22, 24, 25, 26, 27,
    40, 41, 42, 43, 44, 45, 46, 47, 50,
    103, 106, 107, 111, 112, 113, 132, 133, 149, 150,
})

#: Verbose texts some firmwares use instead of the 27.007 wording, normalised (see norm_text).
_CME_ALIASES: dict[str, int] = {
    "simnotinserted": 10,
    "nosim": 10,
    "simnotpresent": 10,
    "incorrectpin": 16,
    "wrongpassword": 16,
    "passwordincorrect": 16,
    "simpinrequested": 11,
    "simpukrequested": 12,
    "simisbusy": 14,
    "unknownerror": 100,
    "roamingnotallowed": 113,
    "serviceoptionnotsubscribed": 133,
    "userauthenticationfailed": 149,
}


def norm_text(text: str) -> str:
    """Lowercase alphanumerics only: "SIM not inserted" -> "simnotinserted"."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


_CME_BY_TEXT: dict[str, int] = {norm_text(m): c for c, m in CME.items()}
_CME_BY_TEXT.update(_CME_ALIASES)


def cme_from_text(text: str) -> int | None:
    """The code of a +CME ERROR argument, numeric ("10") or verbose ("SIM not inserted")."""
    t = text.strip().strip('"').strip()
    if t.isdigit():
        return int(t)
    return _CME_BY_TEXT.get(norm_text(t))


def cme_meaning(code: int | None, text: str = "") -> str:
    """English meaning of a code; the modem's own text (or "CME error <n>") when unknown."""
    if code is not None and code in CME:
        return CME[code]
    if text and not text.strip().isdigit():
        return text.strip()
    return "CME error %s" % code if code is not None else "error"


def cme_class(code: int | None) -> str:
    """"held" (retrying cannot help) or "transient" (unknown codes included)."""
    return "held" if code in CME_HELD else "transient"


# -- fields ---------------------------------------------------------------------------------------

def split_fields(text: str) -> list[tuple[str, bool]]:
    """Comma-separated fields of an answer's value, quotes honoured: [(value, was_quoted)]."""
    out: list[tuple[str, bool]] = []
    cur: list[str] = []
    quoted = inq = False
    for ch in text:
        if inq:
            if ch == '"':
                inq = False
            else:
                cur.append(ch)
        elif ch == '"':
            inq = quoted = True
        elif ch == ",":
            out.append(("".join(cur).strip() if not quoted else "".join(cur), quoted))
            cur, quoted = [], False
        else:
            cur.append(ch)
    out.append(("".join(cur).strip() if not quoted else "".join(cur), quoted))
    return out


def fields(text: str) -> list[str]:
    """Values of split_fields, quotes removed."""
    return [v for v, _ in split_fields(text)]


def _value(line: str, prefix: str) -> str | None:
    """The text after "<prefix>:" when ``line`` starts with it (case-insensitive), else None."""
    s = line.strip()
    if s.upper().startswith(prefix.upper() + ":"):
        return s[len(prefix) + 1:].strip()
    return None


def _find(lines, prefixes: tuple[str, ...]) -> tuple[str, str] | None:
    for line in lines:
        for p in prefixes:
            v = _value(line, p)
            if v is not None:
                return p, v
    return None


def _int(text: str) -> int | None:
    t = text.strip()
    return int(t) if re.fullmatch(r"-?\d+", t) else None


# -- signal ---------------------------------------------------------------------------------------

def parse_csq(lines) -> tuple[int | None, int | None]:
    """``+CSQ: <rssi>,<ber>`` -> (rssi 0..31 or None for 99, ber 0..7 or None for 99).

    None for 99 ("not known or not detectable") so that ``rssi >= 10`` can never be true for
    an unknown signal."""
    found = _find(lines, ("+CSQ",))
    if found is None:
        raise ValueError("no +CSQ line in %r" % (lines,))
    f = fields(found[1])
    rssi = _int(f[0]) if f else None
    ber = _int(f[1]) if len(f) > 1 else None
    if rssi is None:
        raise ValueError("bad +CSQ line: %r" % found[1])
    return (None if rssi == 99 else rssi), (None if ber in (None, 99) else ber)


def rssi_dbm(rssi: int | None) -> int | None:
    """dBm of a +CSQ rssi: 0 -> -113 (or less), 31 -> -51 (or more), None/99 -> None."""
    if rssi is None or rssi == 99 or not 0 <= rssi <= 31:
        return None
    return -113 + 2 * rssi


def parse_cesq(lines) -> dict:
    """``+CESQ: <rxlev>,<ber>,<rscp>,<ecno>,<rsrq>,<rsrp>`` (27.007 §8.69) -> a dict of the
    lower bounds of the reported ranges, None where unknown (99 for rxlev/ber, 255 others):
    rsrq_db (-20 + idx/2, idx 0..34), rsrp_dbm (-141 + idx, idx 0..97), rxlev_dbm
    (-111 + idx, 0..63), rscp_dbm (-121 + idx, 0..96), ecno_db (-24.5 + idx/2, 0..49)."""
    found = _find(lines, ("+CESQ",))
    if found is None:
        raise ValueError("no +CESQ line in %r" % (lines,))
    f = [_int(x) for x in fields(found[1])]
    if len(f) < 6:
        raise ValueError("bad +CESQ line: %r" % found[1])
    rxlev, ber, rscp, ecno, rsrq, rsrp = f[:6]

    def ok(v, hi):
        return v is not None and 0 <= v <= hi

    return {
        "rxlev_dbm": -111 + rxlev if ok(rxlev, 63) else None,
        "ber": ber if ok(ber, 7) else None,
        "rscp_dbm": -121 + rscp if ok(rscp, 96) else None,
        "ecno_db": -24.5 + ecno / 2 if ok(ecno, 49) else None,
        "rsrq_db": -20 + rsrq / 2 if ok(rsrq, 34) else None,
        "rsrp_dbm": -141 + rsrp if ok(rsrp, 97) else None,
    }


# -- registration ---------------------------------------------------------------------------------

#: <stat> of +CREG/+CGREG/+CEREG. Values >= 6 (SMS only, emergency only, ...) and unknown ones
#: count as not registered.
REG_STATES: dict[int, str] = {
    0: "not registered",
    1: "registered, home network",
    2: "searching",
    3: "registration denied",
    4: "unknown",
    5: "registered, roaming",
    6: "registered for SMS only, home network",
    7: "registered for SMS only, roaming",
    8: "emergency services only",
    9: "registered for CSFB not preferred, home network",
    10: "registered for CSFB not preferred, roaming",
}
REGISTERED = frozenset({1, 5})
REG_PREFIXES = ("+CREG", "+CGREG", "+CEREG", "+C5GREG")


def registration_is_solicited(line: str) -> bool | None:
    """Guess the form of a +CxREG line by its shape: True for the read answer
    ``<n>,<stat>[,...]``, False for the URC ``<stat>[,<lac>,...]``, None if not such a line.

    The read form has a bare integer second field; the URC form has one field only, or a quoted
    (or empty) location code second. A URC whose location code is unquoted and all digits
    would be mistaken: AtChannel does not rely on the shape alone (see at.py)."""
    found = _find([line], REG_PREFIXES)
    if found is None:
        return None
    sf = split_fields(found[1])
    if len(sf) < 2:
        return False
    second, quoted = sf[1]
    return (not quoted) and bool(re.fullmatch(r"\d{1,2}", second))


def parse_registration(lines, solicited: bool | None = None) -> tuple[int, int | None]:
    """(stat, act) of +CREG/+CGREG/+CEREG, read form (``<n>,<stat>[,<lac>,<ci>[,<AcT>]]``) or
    URC form (``<stat>[,<lac>,<ci>[,<AcT>]]``). ``solicited``: True for the read form, False
    for the URC form (pass False for a Urc's line), None to guess by shape."""
    for line in lines:
        if _find([line], REG_PREFIXES) is None:
            continue
        value = _find([line], REG_PREFIXES)[1]
        form = registration_is_solicited(line) if solicited is None else solicited
        f = fields(value)
        base = 1 if form else 0
        if len(f) <= base:
            raise ValueError("bad registration line: %r" % line)
        stat = _int(f[base])
        if stat is None:
            raise ValueError("bad registration line: %r" % line)
        act = _int(f[base + 3]) if len(f) > base + 3 else None
        return stat, act
    raise ValueError("no registration line in %r" % (lines,))


def is_registered(stat: int | None) -> bool:
    return stat in REGISTERED


# -- operator -------------------------------------------------------------------------------------

#: <AcT> -> technology family (27.007; see the module doc for LTE-M).
ACT_NAMES: dict[int, str] = {
    0: "2G", 1: "2G", 2: "3G", 3: "2G", 4: "3G", 5: "3G", 6: "3G", 7: "LTE",
    8: "2G", 9: "NB-IoT", 10: "LTE", 11: "5G", 12: "5G", 13: "5G",
}
#: Vendor departures from ACT_NAMES: Quectel BG95/BG96 use 8 for LTE Cat-M1 (eMTC).
ACT_NAMES_BY_DIALECT: dict[str, dict[int, str]] = {
    "quectel": {8: "LTE-M"},
}


def act_name(act: int | None, dialect: str | None = None) -> str | None:
    """Technology name of an AcT value ("2G", "3G", "LTE", "LTE-M", "NB-IoT", "5G")."""
    if act is None:
        return None
    special = ACT_NAMES_BY_DIALECT.get((dialect or "").lower(), {})
    return special.get(act, ACT_NAMES.get(act))


def parse_cops(lines) -> tuple[str | None, int | None]:
    """``+COPS: <mode>[,<format>,<oper>[,<AcT>]]`` -> (operator, act); (None, None) for a bare
    ``+COPS: <mode>`` (not registered)."""
    found = _find(lines, ("+COPS",))
    if found is None:
        raise ValueError("no +COPS line in %r" % (lines,))
    f = fields(found[1])
    oper = f[2].strip() if len(f) > 2 and f[2].strip() else None
    act = _int(f[3]) if len(f) > 3 else None
    return oper, act


# -- SIM ------------------------------------------------------------------------------------------

def parse_cpin(lines) -> str:
    """``+CPIN: <code>`` -> "READY", "SIM PIN", "SIM PUK", "SIM PIN2", "PH-SIM PIN", ...
    (upper case, spaces normalised)."""
    found = _find(lines, ("+CPIN",))
    if found is None:
        raise ValueError("no +CPIN line in %r" % (lines,))
    return " ".join(found[1].strip().strip('"').upper().split())


_ICCID_PREFIXES = ("+QCCID", "+CCID", "^ICCID", "+ICCID", "ICCID", "!ICCID", "^SCID", "+CICCID")


def _clean_iccid(text: str) -> str | None:
    t = text.strip().strip('"').strip().upper()
    t = t.rstrip("F")
    if re.fullmatch(r"\d{18,22}", t):
        return t
    return None


def parse_iccid(lines) -> str | None:
    """ICCID digits from +CCID / +QCCID / ^ICCID / ICCID: / bare digits (trailing F padding
    removed); None when no line holds one."""
    for line in lines:
        for p in _ICCID_PREFIXES:
            v = _value(line, p)
            if v is not None:
                got = _clean_iccid(fields(v)[0] if v else "")
                if got:
                    return got
        got = _clean_iccid(line)
        if got:
            return got
    return None


def iccid_from_crsm(lines) -> str | None:
    """ICCID from ``+CRSM: <sw1>,<sw2>,"<hex>"`` (READ BINARY of EF_ICCID, answer to
    ``AT+CRSM=176,12258,0,0,10``): each byte's nibbles swapped, F padding dropped. None unless
    sw1 is 144 (0x90, success) and the data are BCD digits."""
    found = _find(lines, ("+CRSM",))
    if found is None:
        return None
    f = fields(found[1])
    if len(f) < 3 or _int(f[0]) != 144:
        return None
    data = f[2].strip().upper()
    if len(data) % 2 or not re.fullmatch(r"[0-9A-F]+", data):
        return None
    swapped = "".join(data[i + 1] + data[i] for i in range(0, len(data), 2))
    return _clean_iccid(swapped)


def parse_pin_attempts(lines) -> int | None:
    """PIN (SIM PIN1) attempts left, from Quectel ``+QPINC: "SC",<pin>,<puk>``, SIMCom
    ``+SPIC: <pin>,<puk>,<pin2>,<puk2>`` or u-blox ``+UPINCNT: <pin>,<pin2>,<puk>,<puk2>``;
    None when no such line."""
    for line in lines:
        v = _value(line, "+QPINC")
        if v is not None:
            f = fields(v)
            if len(f) >= 2 and f[0].strip().upper() == "SC":
                return _int(f[1])
            continue
        for p in ("+SPIC", "+UPINCNT", "+CPINR"):
            v = _value(line, p)
            if v is not None:
                f = fields(v)
                if p == "+CPINR":  # 27.007 +CPINR: <code>,<retries>,<default retries>
                    if len(f) >= 2 and f[0].strip().upper() == "SIM PIN":
                        return _int(f[1])
                    break
                return _int(f[0]) if f else None
    return None


def parse_puk_attempts(lines) -> int | None:
    """PUK attempts left from the same vendor answers (None when not reported)."""
    for line in lines:
        v = _value(line, "+QPINC")
        if v is not None:
            f = fields(v)
            if len(f) >= 3 and f[0].strip().upper() == "SC":
                return _int(f[2])
            continue
        v = _value(line, "+SPIC")
        if v is not None:
            f = fields(v)
            return _int(f[1]) if len(f) > 1 else None
        v = _value(line, "+UPINCNT")
        if v is not None:
            f = fields(v)
            return _int(f[2]) if len(f) > 2 else None
    return None


def parse_plain(lines) -> str | None:
    """First non-empty line, stripped (answers of +CGMI/+CGMM/+CGMR/+CGSN/+CIMI, with an
    optional "+CGMx: " prefix removed as some firmwares add it)."""
    for line in lines:
        s = line.strip()
        if not s:
            continue
        m = re.match(r"^\+(CGMI|CGMM|CGMR|CGSN|GMI|GMM|GMR|GSN|CIMI)\s*:\s*(.*)$", s, re.I)
        if m:
            s = m.group(2).strip().strip('"')
        return s
    return None


#: Quectel's +QCSQ system modes that carry LTE measurements (LTE, LTE-M, NB-IoT).
QCSQ_LTE_MODES = ("LTE", "CAT-M1", "CAT-NB1", "EMTC", "NBIOT")


def parse_qcsq(lines) -> dict:
    """Quectel ``+QCSQ: "<sysmode>",<rssi>,<rsrp>,<sinr>,<rsrq>`` on an LTE-family mode ->
    {rssi_dbm, rsrp_dbm, sinr_db, rsrq_db}; SINR comes in fifths of a dB from -20 dB (0..250 for
    -20..+30 dB), as Quectel's EC2x/EG9x manuals give it. {} for another mode, NOSERVICE or no
    such line: the other modes' fields are not these quantities."""
    found = _find(lines, ("+QCSQ",))
    if found is None:
        return {}
    f = fields(found[1])
    if not f or f[0].strip().strip('"').upper() not in QCSQ_LTE_MODES or len(f) < 5:
        return {}
    rssi, rsrp, sinr, rsrq = (_int(x) for x in f[1:5])
    if None in (rssi, rsrp, sinr, rsrq):
        return {}
    return {"rssi_dbm": rssi, "rsrp_dbm": rsrp, "sinr_db": sinr / 5.0 - 20.0, "rsrq_db": rsrq}
