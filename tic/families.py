"""Meter family identification from the groups of a frame.

The ladder (reference `tic-protocol.md` section 4): the address label says the generation
(ADSC: Linky standard, ADCO: historic "Bleu" or Linky historic, ADS: CJE/ICE/PME-PMI), marker
labels refine it (JAUNE: CJE, CONTRAT: ICE, PAPP: CBEMM evolution ICC, IINST1/ADIRn: three-phase),
and the type code in the address (characters 5-6 of the 12 digits) settles Linky and the ADS
families.
"""
from __future__ import annotations

from dataclasses import dataclass

from .codec import HISTORIC, STANDARD

CBEMM, CBEMM_ICC, CBETM, CJE, ICE, ICE_4Q, PME_PMI, LINKY, UNKNOWN = (
    "CBEMM", "CBEMM-ICC", "CBETM", "CJE", "ICE", "ICE-4Q", "PME-PMI", "LINKY", "UNKNOWN")

#: Linky type codes in ADCO/ADSC (NOI-CPT_54E section 2.2, as transcribed).
LINKY_TYPES = frozenset({60, 61, 62, 63, 64, 65, 67, 68, 70, 71, 75, 76})
#: Type codes in ADS (capfile lexicon): 10 CJE, 07 ICE 2Q, 34 ICE 4Q, 36 PME-PMI.
ADS_TYPES = {10: CJE, 7: ICE, 34: ICE_4Q, 36: PME_PMI}

_THREE_PHASE_MARKERS = ("IINST1", "IINST2", "IINST3", "ADIR1", "ADIR2", "ADIR3", "IMAX1", "PPOT",
                        "IRMS2", "URMS2", "SINSTS1")

_LINKY_STANDARD_MARKERS = ("VTIC", "EAST", "SINSTS", "NGTF", "LTARF", "STGE", "PRM", "EASF01",
                           "URMS1", "IRMS1")


@dataclass(frozen=True, slots=True)
class Identity:
    family: str
    mode: str | None          # historic | standard
    serial: str | None        # ADCO, ADSC or ADS
    phases: int | None        # 1 or 3 when the labels tell
    short_frame: bool = False  # CBETM overload short frame (ADIRn, no ISOUSC)

    def to_dict(self) -> dict:
        return {"family": self.family, "mode": self.mode, "serial": self.serial,
                "phases": self.phases, "short_frame": self.short_frame}


def type_code(address: str | None) -> int | None:
    """The two type digits of a 12-digit meter address, or None."""
    if address and len(address) == 12 and address.isdigit():
        return int(address[4:6])
    return None


def identify(values: dict[str, str], mode: str | None = None) -> Identity:
    """The family of the meter that sent these label -> value pairs (valid groups only)."""
    labels = values.keys()
    phases = 3 if any(m in labels for m in _THREE_PHASE_MARKERS) else (
        1 if ("IINST" in labels or "IRMS1" in labels) else None)
    if "ADSC" in labels:
        return Identity(LINKY, mode or STANDARD, values["ADSC"], phases)
    if mode == STANDARD and any(l in labels for l in _LINKY_STANDARD_MARKERS):
        # Only a Linky speaks standard mode with these labels; its ADSC group may be damaged.
        return Identity(LINKY, mode, None, phases)
    if "JAUNE" in labels:
        return Identity(CJE, mode, values.get("ADS"), phases)
    if "CONTRAT" in labels:
        four_q = type_code(values.get("ADS")) == 34 or any(l.startswith("ERN") for l in labels)
        return Identity(ICE_4Q if four_q else ICE, mode, values.get("ADS"), phases)
    if "ADS" in labels:
        fam = ADS_TYPES.get(type_code(values["ADS"]), PME_PMI)
        return Identity(fam, mode, values["ADS"], phases)
    if "ADCO" in labels:
        adco = values["ADCO"]
        mode = mode or HISTORIC
        short = ("ISOUSC" not in labels and any(l in labels for l in ("ADIR1", "ADIR2", "ADIR3"))) \
            or ("ISOUSC" not in labels and "IINST1" in labels and "OPTARIF" not in labels)
        if type_code(adco) in LINKY_TYPES:
            return Identity(LINKY, mode, adco, phases, short)
        if phases == 3:
            return Identity(CBETM, mode, adco, 3, short)
        if "PAPP" in labels:
            return Identity(CBEMM_ICC, mode, adco, 1)
        if "IINST" in labels or "OPTARIF" in labels:
            return Identity(CBEMM, mode, adco, 1)
        return Identity(UNKNOWN, mode, adco, phases)  # "veille": the frame holds only ADCO
    return Identity(UNKNOWN, mode, None, phases)
