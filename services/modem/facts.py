"""What is known of the module, its SIM and its network: the *Supervision > Modem* page (manual
10.4.1: type, IMEI, SIM identifier, SIM state, signal 1..31, modem state) and beyond it
(technology with a warning on 2G/3G, operator, registration, LTE signal, PIN attempts)."""
from __future__ import annotations

from dataclasses import dataclass

from . import answers

#: Access technologies the French operators switch off (2G end 2026, 3G 2028-2029).
SUNSET = {"2G": "le réseau 2G s'arrête en France fin 2026",
          "3G": "le réseau 3G s'arrête en France en 2028-2029"}
#: Registration, as the page says it (ModemManager's 3GPP registration names).
REGISTRATION = {0: "idle", 1: "home", 2: "searching", 3: "denied", 4: "unknown", 5: "roaming"}
#: The manual's threshold: a working GPRS link needs a signal of at least 10.
SIGNAL_MIN = 10


@dataclass
class ModemFacts:
    manufacturer: str = ""
    model: str = ""
    revision: str = ""
    imei: str = ""
    iccid: str = ""
    sim: str = ""                  # READY, SIM PIN, SIM PUK, SIM ERROR
    pin_attempts: int | None = None
    rssi: int | None = None        # 0..31; None when the module says 99 (unknown)
    rsrp: float | None = None      # dBm
    rsrq: float | None = None      # dB
    sinr: float | None = None      # dB, where the module's vendor command gives it
    technology: str = ""           # 2G, 3G, LTE, LTE-M, NB-IoT
    operator: str = ""
    registration: str = ""         # home, roaming, searching, denied, not registered, unknown
    link: str = "down"

    @property
    def signal(self) -> int | None:
        return self.rssi

    @property
    def signal_known(self) -> bool:
        return self.rssi is not None

    @property
    def registered(self) -> bool:
        return self.registration in ("home", "roaming")

    @property
    def warning(self) -> str | None:
        return SUNSET.get(self.technology)

    def registration_urc(self, urc) -> None:
        try:
            stat, act = answers.parse_registration([urc.line], solicited=False)
        except ValueError:
            return
        self.set_registration(stat, answers.act_name(act))

    def set_registration(self, stat: int | None, technology: str | None) -> None:
        if stat is not None:
            self.registration = REGISTRATION.get(stat, "not registered")
        if technology:
            self.technology = technology

    def page(self) -> dict:
        """The fields of the *Modem* page, with the manual's names in comments."""
        model = " ".join(p for p in (self.manufacturer, self.model) if p)
        return {
            "type": model or None,                      # Type de modem
            "imei": self.imei or None,                  # Identifiant du modem
            "iccid": self.iccid or None,                # Identifiant de la carte SIM
            "sim": self.sim or None,                    # Etat de la carte SIM
            "signal": self.rssi,                        # Niveau du signal, 1..31 (None: inconnu)
            "signal_text": self.signal_text(),
            "signal_ok": self.rssi is not None and self.rssi >= SIGNAL_MIN,
            "signal_dbm": answers.rssi_dbm(self.rssi) if self.rssi is not None else None,
            "technology": self.technology or None,
            "warning": self.warning,
            "operator": self.operator or None,
            "registration": self.registration or None,
            "rsrp_dbm": self.rsrp, "rsrq_db": self.rsrq, "sinr_db": self.sinr,
            "pin_attempts": self.pin_attempts,
            "revision": self.revision or None,
            "link": self.link,
        }

    def signal_text(self) -> str:
        if self.rssi is None:
            return "inconnu"
        if self.rssi < SIGNAL_MIN:
            return "%d : insuffisant (au moins %d)" % (self.rssi, SIGNAL_MIN)
        return "%d" % self.rssi
