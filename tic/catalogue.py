"""Label catalogue per meter family: description, unit, length, horodate flag, default action.

Facts come from ``/work/shared/reference/tic-protocol.md`` (sections 2 and 3) and the sources it
names: the MOP-CPT_007E transcription for the Compteurs Bleus (CBEMM, CBEMM-ICC, CBETM), the
NOI-CPT_54E transcription for Linky standard mode, the Watteco TIC codec field tables for CJE, ICE
(general, period ``p`` and previous period ``p1`` tables) and PME-PMI, and the tic2json PME-PMI
lexer for the PME-PMI label spellings. The family names and the CBEMM-ICC description follow the
WebdynTIC manual (``/work/shared/reference/000_50f5e9f383eef938.txt`` section 10.3.1). No code was
taken from those projects, only the facts (label names, lengths, units).

Values are always the raw TIC text; units are for display only. Where the reference does not
confirm a meaning or a unit, the description says so ("non confirmé") and the unit is left empty.
ICE and PME-PMI values carry their own unit suffix (``…kWh``, ``…kW``); the unit given here is the
one announced by that suffix.

Families
--------
``FAMILIES`` lists the nine family names used in definition file names (``<site>_TIC_<family>.ini``).
``LINKY`` covers both modes: ``labels("LINKY", "historic")`` is the union of the single-phase
(CBEMM-ICC) and three-phase (CBETM) historic sets, ``labels("LINKY")`` or
``labels("LINKY", "standard")`` the Linky standard set. ``UNKNOWN`` has no catalogue (``{}``):
its definition file is built from the labels actually read, with :func:`describe` filling in what
it can.

Default action policy (action codes of the definition files, DESIGN.md section 6)
--------------------------------------------------------------------------------
* ``1`` parameter (only written to the parameters file): identity, contract and configuration
  labels that change rarely: ADCO, ADSC, ADS, OPTARIF, ISOUSC, HHPHC, PREF, PCOUP, VTIC, PRM,
  NGTF, CONTRAT, MODE, APPLI, KDC, KDCD, the ICE subscribed powers PS*, the CJE PSOUSC/PSOUSP,
  the PME-PMI TRAME, MESURES1/2, TARIFDYN, CONFIG, PS.
* ``2`` min/max/mean: currents, powers and voltages that move all the time: IINST, IINST1..3,
  PAPP, IRMS1..3, URMS1..3, UMOY1..3, SINSTS, SINSTS1..3, SINSTI, PA1MN, PA10MN, PREA1MN,
  PREA10MN, U10MN.
* ``4`` instant value: energy indexes (BASE, HCHC, HCHP, EJP*, BBR*, GAZ, AUTRE, EAST, EASF*,
  EASD*, EAIT, ERQ*, EA, ERP, the ICE period indexes, ENERG, the PME-PMI energies);
  **max/peak values** (IMAX*, PMAX, SMAXSN*, SMAXIN*, PMAXC/PMAXP, PMAX_s/_i), load-curve points
  (CCASN*, CCAIN*, already averaged by the meter), mean powers PA1..6 and their dates, period
  boundaries, TDYN* markers, CAFp, PEJP (a countdown: an alarm per change would fire every
  minute), NJOURF, NJOURF+1, mobile-peak start/end DPM1..3/FPM1..3, TGPHI, the composite CJE
  labels, and every label the catalogue does not know.
* ``8`` instant value + alarm on change: tariff period and status labels whose change matters:
  PTEC, LTARF, NTARF, DEMAIN, ADPS, ADIR1..3, MOTDETAT, PPOT (a phase lost), STGE, RELAIS,
  PTCOUR, PTCOUR1/2, PREAVIS, PREAVIS1/2, ETATDYN1/2.
* ``0`` off: the meter clock alone (DATE, DATECOUR: the gateway stamps every row itself), the
  messages MSG1/MSG2, and the 98-character day profiles PJOURF+1 and PPOINTE.

Variants handled by :func:`describe` (after an exact look-up, family first, then every family):
ISKRA meters' ``_`` for ``-`` (``SMAXSN_1``, ``CCASN_1``…), early Linky ``SINST1`` (for
``SINSTS``) and ``SMAXN*`` (for ``SMAXSN*``), then a case-insensitive match.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = [
    "LabelInfo",
    "FAMILIES",
    "FAMILY_DESCRIPTIONS",
    "HISTORIC_LINKY_SET",
    "HORODATE_LABELS",
    "ACTIONS",
    "UNITS",
    "labels",
    "describe",
]


@dataclass(frozen=True, slots=True)
class LabelInfo:
    label: str
    description: str
    unit: str
    length: int | None
    horodate: bool
    action: int


FAMILIES: tuple[str, ...] = (
    "CBEMM",
    "CBEMM-ICC",
    "CBETM",
    "CJE",
    "ICE",
    "ICE-4Q",
    "PME-PMI",
    "LINKY",
    "UNKNOWN",
)

FAMILY_DESCRIPTIONS: dict[str, str] = {
    "CBEMM": "Compteur Bleu monophasé",
    "CBEMM-ICC": "Compteur Bleu monophasé (évolution ICC)",
    "CBETM": "Compteur Bleu triphasé",
    "CJE": "Compteur Jaune électronique",
    "ICE": "Compteur Interface Clientèle Emeraude",
    "ICE-4Q": "Compteur Interface Clientèle Emeraude à quatre quadrants",
    "PME-PMI": "Compteur PME-PMI",
    "LINKY": "Compteur Linky",
    "UNKNOWN": "Compteur non reconnu",
}

#: Valid action codes of a definition file.
ACTIONS: tuple[int, ...] = (0, 1, 2, 4, 8)

#: Every unit used by the catalogue ("" = none). "dal" (decalitre) is the unit of the GAZ/AUTRE
#: indexes; "VAh" and "kvar" appear in PME-PMI / ICE values.
UNITS: frozenset[str] = frozenset(
    {"", "Wh", "VA", "A", "V", "kVA", "W", "VArh", "kWh", "kvarh", "kW", "kvar", "VAh",
     "min", "%", "dal"}
)

HISTORIC = "historic"
STANDARD = "standard"

#: Standard-mode labels that carry a horodate (tic-protocol.md section 3, "Horodate").
HORODATE_LABELS: frozenset[str] = frozenset(
    {
        "DATE",
        "SMAXSN", "SMAXSN1", "SMAXSN2", "SMAXSN3",
        "SMAXSN-1", "SMAXSN1-1", "SMAXSN2-1", "SMAXSN3-1",
        "SMAXIN", "SMAXIN-1",
        "CCASN", "CCASN-1", "CCAIN", "CCAIN-1",
        "UMOY1", "UMOY2", "UMOY3",
        "DPM1", "DPM2", "DPM3", "FPM1", "FPM2", "FPM3",
    }
)


def _e(label: str, description: str, unit: str = "", length: int | None = None,
       action: int = 4, horodate: bool = False) -> LabelInfo:
    return LabelInfo(label, description, unit, length, horodate, action)


# --------------------------------------------------------------------------------------------
# Historic Compteurs Bleus (tic-protocol.md 2.1). One master list in emission order; each family
# keeps the labels it may send. ADIR1..3 only come in CBETM short frames (where they lead the
# frame); they are listed last so that the long-frame labels keep their positions.
_CBE_MASTER: tuple[LabelInfo, ...] = (
    _e("ADCO", "Adresse du compteur", "", 12, 1),
    _e("OPTARIF", "Option tarifaire", "", 4, 1),
    _e("ISOUSC", "Intensité souscrite", "A", 2, 1),
    _e("BASE", "Index option Base", "Wh", 9, 4),
    _e("HCHC", "Index heures creuses", "Wh", 9, 4),
    _e("HCHP", "Index heures pleines", "Wh", 9, 4),
    _e("EJPHN", "Index EJP heures normales", "Wh", 9, 4),
    _e("EJPHPM", "Index EJP heures de pointe mobile", "Wh", 9, 4),
    _e("BBRHCJB", "Index Tempo heures creuses jours bleus", "Wh", 9, 4),
    _e("BBRHPJB", "Index Tempo heures pleines jours bleus", "Wh", 9, 4),
    _e("BBRHCJW", "Index Tempo heures creuses jours blancs", "Wh", 9, 4),
    _e("BBRHPJW", "Index Tempo heures pleines jours blancs", "Wh", 9, 4),
    _e("BBRHCJR", "Index Tempo heures creuses jours rouges", "Wh", 9, 4),
    _e("BBRHPJR", "Index Tempo heures pleines jours rouges", "Wh", 9, 4),
    _e("PEJP", "Préavis début EJP (30 min)", "min", 2, 4),
    _e("GAZ", "Index gaz (concentrateur de téléreport)", "dal", 7, 4),
    _e("AUTRE", "Index autre fluide (concentrateur de téléreport)", "dal", 7, 4),
    _e("PTEC", "Période tarifaire en cours", "", 4, 8),
    _e("DEMAIN", "Couleur du lendemain (Tempo)", "", 4, 8),
    _e("IINST", "Intensité instantanée", "A", 3, 2),
    _e("IINST1", "Intensité instantanée phase 1", "A", 3, 2),
    _e("IINST2", "Intensité instantanée phase 2", "A", 3, 2),
    _e("IINST3", "Intensité instantanée phase 3", "A", 3, 2),
    _e("ADPS", "Avertissement de dépassement de puissance souscrite", "A", 3, 8),
    _e("IMAX", "Intensité maximale appelée", "A", 3, 4),
    _e("IMAX1", "Intensité maximale appelée phase 1", "A", 3, 4),
    _e("IMAX2", "Intensité maximale appelée phase 2", "A", 3, 4),
    _e("IMAX3", "Intensité maximale appelée phase 3", "A", 3, 4),
    _e("PMAX", "Puissance maximale triphasée atteinte", "W", 5, 4),
    _e("PAPP", "Puissance apparente", "VA", 5, 2),
    _e("HHPHC", "Horaire heures pleines / heures creuses", "", 1, 1),
    _e("MOTDETAT", "Mot d'état du compteur", "", 6, 8),
    _e("PPOT", "Présence des potentiels", "", 2, 8),
    _e("ADIR1", "Avertissement de dépassement d'intensité phase 1", "A", 3, 8),
    _e("ADIR2", "Avertissement de dépassement d'intensité phase 2", "A", 3, 8),
    _e("ADIR3", "Avertissement de dépassement d'intensité phase 3", "A", 3, 8),
)

_CBE_INDEXES = ("BASE", "HCHC", "HCHP", "EJPHN", "EJPHPM", "BBRHCJB", "BBRHPJB", "BBRHCJW",
                "BBRHPJW", "BBRHCJR", "BBRHPJR")
_CBEMM_ICC_SET = frozenset(
    ("ADCO", "OPTARIF", "ISOUSC") + _CBE_INDEXES
    + ("PEJP", "PTEC", "DEMAIN", "IINST", "ADPS", "IMAX", "PAPP", "HHPHC", "MOTDETAT")
)
# The plain CBEMM has no PAPP (its absence tells it from the ICC evolution); GAZ and AUTRE come
# only with a "concentrateur de téléreport".
_CBEMM_SET = (_CBEMM_ICC_SET - {"PAPP"}) | {"GAZ", "AUTRE"}
_CBETM_SET = frozenset(
    ("ADCO", "OPTARIF", "ISOUSC") + _CBE_INDEXES
    + ("PEJP", "PTEC", "DEMAIN", "IINST1", "IINST2", "IINST3", "IMAX1", "IMAX2", "IMAX3",
       "PMAX", "PAPP", "HHPHC", "MOTDETAT", "PPOT", "ADIR1", "ADIR2", "ADIR3")
)
#: Labels a Linky in historic mode may send: the CBEMM-ICC set (single phase) or the CBETM set
#: (three phase), with ADCO = the meter's ADSC.
HISTORIC_LINKY_SET: frozenset[str] = _CBEMM_ICC_SET | _CBETM_SET

_CBETM_OVERRIDES = {
    "ISOUSC": _e("ISOUSC", "Intensité souscrite par phase", "A", 2, 1),
}


def _subset(master: tuple[LabelInfo, ...], keep: frozenset[str],
            overrides: dict[str, LabelInfo] | None = None) -> dict[str, LabelInfo]:
    overrides = overrides or {}
    return {i.label: overrides.get(i.label, i) for i in master if i.label in keep}


# --------------------------------------------------------------------------------------------
# CJE (tic-protocol.md 2.3; layout from the Watteco CJE table). Composite values separated by ':',
# not confirmed on a real meter, so no length and no unit.
_CJE: tuple[LabelInfo, ...] = (
    _e("JAUNE", "Date, heure, période tarifaire et mesures (format composite)", "", None, 4),
    _e("ENERG", "Energie, six registres (format non confirmé)", "", None, 4),
    _e("PERCC", "Période en cours, jj:mm:hh:cg (non confirmé)", "", None, 4),
    _e("PMAXC", "Puissances maximales, période en cours, 4 postes (non confirmé)", "", None, 4),
    _e("TDEPA", "Durées de dépassement, 4 postes (non confirmé)", "", None, 4),
    _e("PERCP", "Période précédente, jj:mm:hh:cg (non confirmé)", "", None, 4),
    _e("PMAXP", "Puissances maximales, période précédente, 4 postes (non confirmé)", "", None, 4),
    _e("PSOUSC", "Puissances souscrites, 4 postes", "", None, 1),
    _e("PSOUSP", "Puissances souscrites, 4 postes, jeu P (non confirmé)", "", None, 1),
    _e("FCOU", "Donnée FCOU, hh:mn:dd (signification non confirmée)", "", None, 4),
)

# --------------------------------------------------------------------------------------------
# ICE 2 quadrants (tic-protocol.md 2.4; order and units from the Watteco ICE tables; lengths
# from the ASCII formats quoted in the reference, unit suffix included).
_ICE_GENERAL: tuple[LabelInfo, ...] = (
    _e("CONTRAT", "Contrat (option tarifaire)", "", None, 1),
    _e("DATECOUR", "Date et heure du compteur", "", 17, 0),
    _e("DATE", "Date et heure du compteur (ICE v2.4)", "", 17, 0),
    _e("EA", "Energie active", "kWh", 10, 4),
    _e("ERP", "Energie réactive positive", "kvarh", 12, 4),
    _e("PTCOUR", "Période tarifaire en cours", "", None, 8),
    _e("PREAVIS", "Préavis de période tarifaire", "", None, 8),
    _e("MODE", "Mode du compteur", "", None, 1),
    *(
        entry
        for n in range(1, 7)
        for entry in (
            _e(f"DATEPA{n}", f"Date de la puissance active moyenne {n}", "", 17, 4),
            _e(f"PA{n}", f"Puissance active moyenne {n}", "kW", 7, 4),
        )
    ),
    _e("KDC", "Coefficient KDC (signification non confirmée)", "%", 4, 1),
    _e("KDCD", "Coefficient KDCD (signification non confirmée)", "%", 4, 1),
    _e("TGPHI", "Tangente phi", "", 8, 4),
    *(
        _e(f"PS{poste}", f"Puissance souscrite poste {poste}", "kW", 7, 1)
        for poste in ("P", "PM", "HPH", "HPD", "HCH", "HCD", "HPE", "HCE", "JA", "HH", "HD",
                      "HM", "DSM", "SCM")
    ),
    _e("PA1MN", "Puissance active moyenne 1 minute", "kW", None, 2),
    _e("PA10MN", "Puissance active moyenne 10 minutes", "kW", None, 2),
    _e("PREA1MN", "Puissance réactive moyenne 1 minute (signée)", "kvar", None, 2),
    _e("PREA10MN", "Puissance réactive moyenne 10 minutes (signée)", "kvar", None, 2),
    _e("U10MN", "Tension moyenne 10 minutes", "V", 7, 2),
    _e("APPLI", "Application (les données suivantes concernent l'injection)", "", None, 1),
)

# Tariff posts of the period tables, in the Watteco order.
_ICE_POSTES = ("P", "PM", "HCE", "HCH", "HH", "HCD", "HD", "JA", "HPE", "HPH", "HPD", "SCM",
               "HM", "DSM")


def _ice_period(suffix: str, name: str, negative: bool) -> tuple[LabelInfo, ...]:
    """Labels of one ICE billing period: ``suffix`` "p" (current) or "p1" (previous)."""
    out = [
        _e(f"DEBUT{suffix}", f"Début de la {name}", "", 17, 4),
        _e(f"FIN{suffix}", f"Fin de la {name}", "", 17, 4),
        _e(f"CAF{suffix}", f"CAF, {name} (signification non confirmée)", "", None, 4),
        _e(f"DATEEA{suffix}", f"Date des index d'énergie active, {name}", "", 17, 4),
    ]
    out += [_e(f"EA{suffix}{p}", f"Energie active, {name}, poste {p}", "kWh", None, 4)
            for p in _ICE_POSTES]
    out.append(_e(f"DATEERP{suffix}", f"Date des index d'énergie réactive positive, {name}",
                  "", 17, 4))
    out += [_e(f"ERP{suffix}{p}", f"Energie réactive positive, {name}, poste {p}", "kvarh",
               None, 4) for p in _ICE_POSTES]
    if negative:
        out.append(_e(f"DATEERN{suffix}", f"Date des index d'énergie réactive négative, {name}",
                      "", 17, 4))
        out += [_e(f"ERN{suffix}{p}", f"Energie réactive négative, {name}, poste {p}", "kvarh",
                   None, 4) for p in _ICE_POSTES]
    return tuple(out)


_ICE = (_ICE_GENERAL + _ice_period("p", "période en cours", False)
        + _ice_period("p1", "période précédente", False))
# ICE-4Q: the ICE set plus the negative reactive energies (tic-protocol.md 2.5, mostly unconfirmed).
_ICE_4Q = (_ICE_GENERAL + _ice_period("p", "période en cours", True)
           + _ice_period("p1", "période précédente", True))

# --------------------------------------------------------------------------------------------
# PME-PMI (tic-protocol.md 2.7; spellings from the tic2json lexer, units from the Watteco table).
# "_s" = soutirage (drawn), "_i" = injection. "mesures 2" = the second metering set.


def _pme_dyn(n: int) -> tuple[LabelInfo, ...]:
    return (
        _e(f"ETATDYN{n}", f"Etat de la tarification dynamique (mesures {n})", "", None, 8),
        _e(f"PREAVIS{n}", f"Préavis de tarification dynamique (mesures {n})", "", None, 8),
        *(_e(f"TDYN{n}{k}", f"Tarification dynamique {n}, repère {k} (non confirmé)", "", None, 4)
          for k in ("CD", "CF", "FD", "FF")),
    )


_PME_PMI: tuple[LabelInfo, ...] = (
    _e("TRAME", "Type de trame (palier 2013)", "", None, 1),
    _e("ADS", "Adresse du compteur", "", 12, 1),
    _e("MESURES1", "Contrat (mesures 1)", "", None, 1),
    _e("DATE", "Date et heure du compteur", "", 17, 0),
    _e("EA_s", "Energie active soutirée", "Wh", None, 4),
    _e("ER+_s", "Energie réactive positive soutirée", "VArh", None, 4),
    _e("ER-_s", "Energie réactive négative soutirée", "VArh", None, 4),
    _e("EAPP_s", "Energie apparente soutirée", "VAh", None, 4),
    _e("EA_i", "Energie active injectée", "Wh", None, 4),
    _e("ER+_i", "Energie réactive positive injectée", "VArh", None, 4),
    _e("ER-_i", "Energie réactive négative injectée", "VArh", None, 4),
    _e("EAPP_i", "Energie apparente injectée", "VAh", None, 4),
    _e("PTCOUR1", "Période tarifaire en cours (mesures 1)", "", None, 8),
    _e("TARIFDYN", "Tarification dynamique", "", None, 1),
    *_pme_dyn(1),
    _e("MODE", "Mode du compteur", "", None, 1),
    _e("CONFIG", "Configuration du compteur", "", None, 1),
    *(
        entry
        for n in range(1, 7)
        for entry in (
            _e(f"DATEPA{n}", f"Date de la puissance active moyenne {n}", "", None, 4),
            _e(f"PA{n}_s", f"Puissance active moyenne {n} soutirée", "kW", None, 4),
            _e(f"PA{n}_i", f"Puissance active moyenne {n} injectée", "kW", None, 4),
        )
    ),
    _e("DebP", "Début de la période en cours", "", None, 4),
    _e("EAP_s", "Energie active soutirée, période en cours", "kWh", None, 4),
    _e("EAP_i", "Energie active injectée, période en cours", "kWh", None, 4),
    _e("ER+P_s", "Energie réactive positive soutirée, période en cours", "kvarh", None, 4),
    _e("ER-P_s", "Energie réactive négative soutirée, période en cours", "kvarh", None, 4),
    _e("ER+P_i", "Energie réactive positive injectée, période en cours", "kvarh", None, 4),
    _e("ER-P_i", "Energie réactive négative injectée, période en cours", "kvarh", None, 4),
    _e("DebP-1", "Début de la période précédente", "", None, 4),
    _e("FinP-1", "Fin de la période précédente", "", None, 4),
    _e("EaP-1_s", "Energie active soutirée, période précédente", "kWh", None, 4),
    _e("EaP-1_i", "Energie active injectée, période précédente", "kWh", None, 4),
    _e("ER+P-1_s", "Energie réactive positive soutirée, période précédente", "kvarh", None, 4),
    _e("ER-P-1_s", "Energie réactive négative soutirée, période précédente", "kvarh", None, 4),
    _e("ER+P-1_i", "Energie réactive positive injectée, période précédente", "kvarh", None, 4),
    _e("ER-P-1_i", "Energie réactive négative injectée, période précédente", "kvarh", None, 4),
    # PS and PMAX_* carry their unit in the value (kVA or kW).
    _e("PS", "Puissance souscrite (unité dans la valeur)", "", None, 1),
    _e("PREAVIS", "Préavis", "", None, 8),
    _e("PA1MN", "Puissance active moyenne 1 minute", "kW", None, 2),
    _e("PMAX_s", "Puissance maximale soutirée (unité dans la valeur)", "", None, 4),
    _e("PMAX_i", "Puissance maximale injectée (unité dans la valeur)", "", None, 4),
    _e("TGPHI_s", "Tangente phi, soutirage", "", None, 4),
    _e("TGPHI_i", "Tangente phi, injection", "", None, 4),
    _e("MESURES2", "Contrat (mesures 2)", "", None, 1),
    _e("PTCOUR2", "Période tarifaire en cours (mesures 2)", "", None, 8),
    *_pme_dyn(2),
    _e("DebP_2", "Début de la période en cours (mesures 2)", "", None, 4),
    _e("EaP_s2", "Energie active soutirée, période en cours (mesures 2)", "kWh", None, 4),
    _e("DebP-1_2", "Début de la période précédente (mesures 2)", "", None, 4),
    _e("FinP-1_2", "Fin de la période précédente (mesures 2)", "", None, 4),
    _e("EaP-1_s2", "Energie active soutirée, période précédente (mesures 2)", "kWh", None, 4),
)

# --------------------------------------------------------------------------------------------
# Linky standard mode (tic-protocol.md section 3), in emission order.
_LINKY_STANDARD: tuple[LabelInfo, ...] = (
    _e("ADSC", "Adresse secondaire du compteur", "", 12, 1),
    _e("VTIC", "Version de la TIC", "", 2, 1),
    _e("DATE", "Date et heure courantes", "", 0, 0, True),
    _e("NGTF", "Nom du calendrier tarifaire fournisseur", "", 16, 1),
    _e("LTARF", "Libellé tarif fournisseur en cours", "", 16, 8),
    _e("EAST", "Energie active soutirée totale", "Wh", 9, 4),
    *(_e(f"EASF{n:02d}", f"Energie active soutirée fournisseur, index {n:02d}", "Wh", 9, 4)
      for n in range(1, 11)),
    *(_e(f"EASD{n:02d}", f"Energie active soutirée distributeur, index {n:02d}", "Wh", 9, 4)
      for n in range(1, 5)),
    _e("EAIT", "Energie active injectée totale", "Wh", 9, 4),
    *(_e(f"ERQ{n}", f"Energie réactive quadrant {n}", "VArh", 9, 4) for n in range(1, 5)),
    *(_e(f"IRMS{n}", f"Courant efficace phase {n}", "A", 3, 2) for n in range(1, 4)),
    *(_e(f"URMS{n}", f"Tension efficace phase {n}", "V", 3, 2) for n in range(1, 4)),
    _e("PREF", "Puissance apparente de référence", "kVA", 2, 1),
    _e("PCOUP", "Puissance apparente de coupure", "kVA", 2, 1),
    _e("SINSTS", "Puissance apparente instantanée soutirée", "VA", 5, 2),
    *(_e(f"SINSTS{n}", f"Puissance apparente instantanée soutirée phase {n}", "VA", 5, 2)
      for n in range(1, 4)),
    _e("SMAXSN", "Puissance apparente max. soutirée n", "VA", 5, 4, True),
    *(_e(f"SMAXSN{n}", f"Puissance apparente max. soutirée n phase {n}", "VA", 5, 4, True)
      for n in range(1, 4)),
    _e("SMAXSN-1", "Puissance apparente max. soutirée n-1", "VA", 5, 4, True),
    *(_e(f"SMAXSN{n}-1", f"Puissance apparente max. soutirée n-1 phase {n}", "VA", 5, 4, True)
      for n in range(1, 4)),
    _e("SINSTI", "Puissance apparente instantanée injectée", "VA", 5, 2),
    _e("SMAXIN", "Puissance apparente max. injectée n", "VA", 5, 4, True),
    _e("SMAXIN-1", "Puissance apparente max. injectée n-1", "VA", 5, 4, True),
    _e("CCASN", "Point n de la courbe de charge active soutirée", "W", 5, 4, True),
    _e("CCASN-1", "Point n-1 de la courbe de charge active soutirée", "W", 5, 4, True),
    _e("CCAIN", "Point n de la courbe de charge active injectée", "W", 5, 4, True),
    _e("CCAIN-1", "Point n-1 de la courbe de charge active injectée", "W", 5, 4, True),
    *(_e(f"UMOY{n}", f"Tension moyenne phase {n}", "V", 3, 2, True) for n in range(1, 4)),
    _e("STGE", "Registre de statuts", "", 8, 8),
    *(
        entry
        for n in range(1, 4)
        for entry in (
            _e(f"DPM{n}", f"Début pointe mobile {n}", "", 2, 4, True),
            _e(f"FPM{n}", f"Fin pointe mobile {n}", "", 2, 4, True),
        )
    ),
    _e("MSG1", "Message court", "", 32, 0),
    _e("MSG2", "Message ultra court", "", 16, 0),
    _e("PRM", "Point de référence mesure (PRM)", "", 14, 1),
    _e("RELAIS", "Etat des relais virtuels", "", 3, 8),
    _e("NTARF", "Numéro de l'index tarifaire en cours", "", 2, 8),
    _e("NJOURF", "Numéro du jour en cours, calendrier fournisseur", "", 2, 4),
    _e("NJOURF+1", "Numéro du prochain jour, calendrier fournisseur", "", 2, 4),
    _e("PJOURF+1", "Profil du prochain jour, calendrier fournisseur", "", 98, 0),
    _e("PPOINTE", "Profil du prochain jour de pointe", "", 98, 0),
)

# --------------------------------------------------------------------------------------------
# Tables and indexes.

_LINKY_HISTORIC_KEY = "LINKY/historic"
_LINKY_STANDARD_KEY = "LINKY/standard"

_TABLES: dict[str, dict[str, LabelInfo]] = {
    "CBEMM": _subset(_CBE_MASTER, _CBEMM_SET),
    "CBEMM-ICC": _subset(_CBE_MASTER, _CBEMM_ICC_SET),
    "CBETM": _subset(_CBE_MASTER, _CBETM_SET, _CBETM_OVERRIDES),
    "CJE": {i.label: i for i in _CJE},
    "ICE": {i.label: i for i in _ICE},
    "ICE-4Q": {i.label: i for i in _ICE_4Q},
    "PME-PMI": {i.label: i for i in _PME_PMI},
    _LINKY_HISTORIC_KEY: _subset(_CBE_MASTER, HISTORIC_LINKY_SET),
    _LINKY_STANDARD_KEY: {i.label: i for i in _LINKY_STANDARD},
}

# Tables searched, in this order, by describe() once the family's own tables gave nothing. The
# first table holding a label wins: Linky standard (the most common meter), then the historic
# single-phase set (generic ISOUSC), three-phase, the rest.
_SEARCH_ORDER = ("LINKY/standard", "CBEMM-ICC", "CBETM", "CBEMM", "ICE-4Q", "PME-PMI", "CJE")

_FAMILY_KEYS: dict[str, tuple[str, ...]] = {
    "LINKY": (_LINKY_STANDARD_KEY, _LINKY_HISTORIC_KEY),
    "UNKNOWN": (),
    **{f: (f,) for f in FAMILIES if f not in ("LINKY", "UNKNOWN")},
}


def _build_global() -> dict[str, LabelInfo]:
    index: dict[str, LabelInfo] = {}
    for key in _SEARCH_ORDER:
        for label, info in _TABLES[key].items():
            index.setdefault(label, info)
    return index


_GLOBAL: dict[str, LabelInfo] = _build_global()


def _build_casefold() -> dict[str, LabelInfo]:
    # Case-insensitive fallback; a folded spelling shared by two different labels is left out.
    index: dict[str, LabelInfo] = {}
    clash: set[str] = set()
    for label, info in _GLOBAL.items():
        key = label.casefold()
        if key in index and index[key].label != label:
            clash.add(key)
        index[key] = info
    for key in clash:
        del index[key]
    return index


_CASEFOLD: dict[str, LabelInfo] = _build_casefold()

# Early Linky "G1 pilote" spellings (hekmon/linkytic PR 44, quoted in tic-protocol.md section 3).
_EARLY_LINKY = {"SINST1": "SINSTS"}


def _variants(label: str) -> list[str]:
    """Other spellings under which ``label`` may be catalogued, most likely first."""
    names = [label]
    if "_" in label:
        # ISKRA: SMAXSN_1, CCASN_1, CCAIN_1, SMAXIN_1, SMAXSN1_1...
        names.append(label.replace("_", "-"))
    out: list[str] = []
    for name in names:
        early = "SMAXSN" + name[5:] if name.startswith("SMAXN") else _EARLY_LINKY.get(name)
        for cand in (name, early):
            if cand and cand != label and cand not in out:
                out.append(cand)
    return out


# --------------------------------------------------------------------------------------------
# Public API.


def labels(family: str, mode: str | None = None) -> dict[str, LabelInfo]:
    """The labels a meter of ``family`` may send, ordered as the meter sends them.

    ``mode`` only matters for ``LINKY``: ``"historic"`` gives the historic set (union of the
    single- and three-phase sets), ``"standard"`` or ``None`` the standard set. The other families
    have a single mode and ignore it. ``UNKNOWN`` gives ``{}``. A new dict is returned each call.
    Raises ``ValueError`` for a family or mode that does not exist.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown meter family {family!r}")
    if mode not in (None, HISTORIC, STANDARD):
        raise ValueError(f"unknown TIC mode {mode!r}")
    if family == "UNKNOWN":
        return {}
    if family == "LINKY":
        key = _LINKY_HISTORIC_KEY if mode == HISTORIC else _LINKY_STANDARD_KEY
    else:
        key = family
    return dict(_TABLES[key])


def describe(label: str, family: str | None = None) -> LabelInfo:
    """What the catalogue knows about ``label``; never raises.

    Looks in ``family`` first (both modes for ``LINKY``), then in every family, then under the
    known variant spellings, then case-insensitively. A label found through a variant keeps the
    spelling it was given. An unknown label gives ``LabelInfo(label, "", "", None, False, 4)``.
    """
    if not isinstance(label, str):
        label = "" if label is None else str(label)
    keys = _FAMILY_KEYS.get(family, ()) if isinstance(family, str) else ()
    tables = [_TABLES[k] for k in keys] + [_GLOBAL]
    for name in [label] + _variants(label):
        for table in tables:
            info = table.get(name)
            if info is not None:
                return info if name == label else dataclasses.replace(info, label=label)
    folded = _CASEFOLD.get(label.casefold())
    if folded is not None:
        return dataclasses.replace(folded, label=label)
    return LabelInfo(label, "", "", None, False, 4)
