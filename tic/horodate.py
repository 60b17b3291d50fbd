"""Standard-mode horodates and the STGE status register.

Horodate: ``S YYMMDDhhmmss``, 13 characters. S is E (summer, UTC+2) or H (winter, UTC+1);
lowercase e/h means the meter clock runs degraded; a space means no season is known (seen in real
captures on DPM/FPM groups). Sources: tic2json ``src/ticv02.l``, LibTeleinfo, hekmon/linkytic
PR #19 (see ``tic-protocol.md`` section 3).

STGE: 32-bit hex register, bit layout per tic2json ``print_stge_data`` and NextDom, checked against
real values (``tic-protocol.md`` section 3, "STGE bits").
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

_OFFSETS = {"E": 2, "H": 1}


@dataclass(frozen=True, slots=True)
class Horodate:
    season: str          # "E", "H" or " "
    degraded: bool       # lowercase season letter: the meter's clock is in degraded mode
    local: datetime      # naive, meter local time

    @property
    def utc(self) -> datetime | None:
        """UTC time when the season is known, else None."""
        hours = _OFFSETS.get(self.season)
        if hours is None:
            return None
        return (self.local - timedelta(hours=hours)).replace(tzinfo=timezone.utc)


def parse_horodate(text: str) -> Horodate:
    """Parse a 13-character horodate; ValueError if it is not one."""
    if len(text) != 13 or text[0] not in "EeHh " or not text[1:].isdigit():
        raise ValueError("not a horodate: %r" % text)
    s = text[0]
    local = datetime.strptime(text[1:], "%y%m%d%H%M%S")
    return Horodate(season=s.upper() if s != " " else " ", degraded=s in "eh", local=local)


CUT_OFF = ("fermé", "ouvert sur dépassement de puissance", "ouvert sur surtension",
           "ouvert sur délestage", "ouvert sur ordre CPL ou Euridis",
           "ouvert sur surchauffe (courant > Imax)", "ouvert sur surchauffe (courant < Imax)", "?")
TEMPO = ("pas d'annonce", "bleu", "blanc", "rouge")
EURIDIS = {0: "désactivée", 1: "activée sans sécurité", 2: "?", 3: "activée avec sécurité"}
CPL = {0: "New/Unlock", 1: "New/Lock", 2: "Registered", 3: "?"}


def decode_stge(value: str) -> dict:
    """The fields of the STGE register, bit by bit; ValueError on a malformed value."""
    if len(value) != 8:
        raise ValueError("STGE must be 8 hex digits: %r" % value)
    r = int(value, 16)

    def bits(lo: int, n: int) -> int:
        return (r >> lo) & ((1 << n) - 1)

    return {
        "dry_contact_open": bool(bits(0, 1)),
        "cut_off": bits(1, 3),
        "cut_off_text": CUT_OFF[bits(1, 3)],
        "cover_open": bool(bits(4, 1)),
        "overvoltage": bool(bits(6, 1)),
        "overload": bool(bits(7, 1)),
        "producer": bool(bits(8, 1)),
        "negative_active_energy": bool(bits(9, 1)),
        "supplier_tariff": bits(10, 4) + 1,
        "distributor_tariff": bits(14, 2) + 1,
        "clock_degraded": bool(bits(16, 1)),
        "standard_mode": bool(bits(17, 1)),
        "euridis": EURIDIS[bits(19, 2)],
        "cpl_status": CPL[bits(21, 2)],
        "cpl_synchronised": bool(bits(23, 1)),
        "tempo_today": TEMPO[bits(24, 2)],
        "tempo_tomorrow": TEMPO[bits(26, 2)],
        "mobile_peak_notice": bits(28, 2),
        "mobile_peak": bits(30, 2),
    }


def encode_stge(**fields) -> str:
    """Build an STGE value from raw field numbers (for the simulators)."""
    layout = {"dry_contact_open": (0, 1), "cut_off": (1, 3), "cover_open": (4, 1),
              "overvoltage": (6, 1), "overload": (7, 1), "producer": (8, 1),
              "negative_active_energy": (9, 1), "supplier_tariff_index": (10, 4),
              "distributor_tariff_index": (14, 2), "clock_degraded": (16, 1),
              "standard_mode": (17, 1), "euridis": (19, 2), "cpl_status": (21, 2),
              "cpl_synchronised": (23, 1), "tempo_today": (24, 2), "tempo_tomorrow": (26, 2),
              "mobile_peak_notice": (28, 2), "mobile_peak": (30, 2)}
    r = 0
    for name, v in fields.items():
        lo, n = layout[name]
        if not 0 <= int(v) < (1 << n):
            raise ValueError("%s out of range" % name)
        r |= int(v) << lo
    return "%08X" % r
