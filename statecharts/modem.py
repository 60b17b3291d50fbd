"""The cellular modem: the manual's *Supervision > Modem* page (10.4.1) and the WAN phase of a
connection in *Modem* mode."""

NAME = "modem"
DOC = """
The modem service's worker talks AT to the module (services/modem/at.py) and reports facts; the
machine decides. The manual's *Etat du modem* is *Standby* (no data link), *Initialisation*
(getting there) or *Connecté*; each state below says which (`MANUAL`), and how ModemManager would
name it (`MM`), so the page reads the same whatever drives the modem.

- `starting`: before the service starts the module's dialogue (`start`).
- `probing`: AT until the module answers, echo off, verbose errors, identity (type, IMEI). No
  answer: `no_answer` (*Type de modem inconnu*).
- `sim_check`: the SIM's state (+CPIN?), its identifier (ICCID) and, where the module tells, the
  PIN attempts left. READY goes on; SIM PIN goes to `pin_entry`; SIM PUK to `sim_puk`; no SIM or
  a SIM failure to `sim_error`.
- `pin_entry`: the configured PIN, sent at most once per value and per power-up, never with one
  attempt left (pin_guard.py). Refused: `pin_refused`; not sent (no PIN configured, or the guard
  says no): `sim_pin`.
- `registering`: the network registration (+CEREG, +CGREG, +CREG) until registered; denied:
  `registration_denied`; still searching at the deadline: `no_network`.
- `standby` (*Standby*): registered, no data link; the signal, technology and registration are
  looked at from time to time (`poll`). `connect` starts the data link.
- `attaching`: the PDP context with the APN (+CGDCONT, +CGAUTH when a login is set).
- `dialing`: ATD with `GPRS_Number`; CONNECT goes to `connected`; the network refusing the APN
  or the authentication (a CME error retrying cannot help, pppd's "we failed to authenticate")
  to `access_refused`; anything else to `dial_refused`.
- `connected` (*Connecté*): the data link is up (pppd on a device; simulated after CONNECT on a
  pseudo-terminal). A dropped carrier or a lost registration goes to `recovering`.
- `disconnecting`: the link is hung up (+++ then ATH where modem-control lines do not exist).
- `recovering`: one step of the recovery ladder (redial, radio off and on, modem reset), within
  a daily cap; at the cap, an alarm and `held` until the next day (UTC; then `retry`) or a new
  configuration.

Failure states are *held* (retrying cannot help: `sim_error`, `sim_pin`, `sim_puk`,
`pin_refused`, `access_refused`; they wait for a new configuration) or *transient* (`retry` after a capped
backoff): `no_answer` probes again (nothing can be sent to a module that does not answer);
`no_network`, `registration_denied` and `dial_refused` climb the recovery ladder. The modem vanishing from
its port (`gone`) goes to `no_answer` from any state.
"""

STATES = (
    "starting",
    {"name": "probing", "on_enter": "probe"},
    {"name": "sim_check", "on_enter": "check_sim"},
    {"name": "pin_entry", "on_enter": "enter_pin"},
    {"name": "registering", "on_enter": "register"},
    {"name": "standby", "on_enter": "supervise"},
    {"name": "attaching", "on_enter": "attach"},
    {"name": "dialing", "on_enter": "dial"},
    {"name": "connected", "on_enter": "link_up"},
    {"name": "disconnecting", "on_enter": "hang_up"},
    {"name": "recovering", "on_enter": "recover"},
    {"name": "no_answer", "on_enter": "failed"},
    {"name": "sim_error", "on_enter": "failed"},
    {"name": "sim_pin", "on_enter": "failed"},
    {"name": "sim_puk", "on_enter": "failed"},
    {"name": "pin_refused", "on_enter": "failed"},
    {"name": "registration_denied", "on_enter": "failed"},
    {"name": "no_network", "on_enter": "failed"},
    {"name": "dial_refused", "on_enter": "failed"},
    {"name": "access_refused", "on_enter": "failed"},
    {"name": "held", "on_enter": "failed"},
)
INITIAL = "starting"

#: Failures that retrying cannot help: they wait for a new configuration (the service restarts).
HELD = ("sim_error", "sim_pin", "sim_puk", "pin_refused", "access_refused", "held")
#: Failures retried after a capped backoff.
TRANSIENT = ("no_answer", "no_network", "registration_denied", "dial_refused")

_ANY = [s["name"] if isinstance(s, dict) else s for s in STATES]
_WORKING = ["probing", "sim_check", "pin_entry", "registering", "attaching", "dialing",
            "disconnecting", "recovering"]

TRANSITIONS = (
    {"trigger": "start", "source": "starting", "dest": "probing"},
    {"trigger": "answered", "source": "probing", "dest": "sim_check"},
    {"trigger": "silent", "source": "probing", "dest": "no_answer"},
    {"trigger": "sim_ready", "source": ["sim_check", "pin_entry"], "dest": "registering"},
    {"trigger": "pin_needed", "source": "sim_check", "dest": "pin_entry"},
    {"trigger": "pin_withheld", "source": "pin_entry", "dest": "sim_pin"},
    {"trigger": "pin_wrong", "source": "pin_entry", "dest": "pin_refused"},
    {"trigger": "puk_needed", "source": ["sim_check", "pin_entry"], "dest": "sim_puk"},
    {"trigger": "sim_missing", "source": ["sim_check", "pin_entry"], "dest": "sim_error"},
    {"trigger": "registered", "source": "registering", "dest": "standby"},
    {"trigger": "denied", "source": "registering", "dest": "registration_denied"},
    {"trigger": "searching", "source": "registering", "dest": "no_network"},
    {"trigger": "poll", "source": "standby", "dest": None, "after": "supervise"},
    {"trigger": "unregistered", "source": "standby", "dest": "registering"},
    {"trigger": "connect", "source": "standby", "dest": "attaching"},
    {"trigger": "attached", "source": "attaching", "dest": "dialing"},
    {"trigger": "dial_failed", "source": ["attaching", "dialing"], "dest": "dial_refused"},
    {"trigger": "access_denied", "source": ["attaching", "dialing"], "dest": "access_refused"},
    {"trigger": "carrier", "source": "dialing", "dest": "connected"},
    {"trigger": "poll", "source": "connected", "dest": None, "after": "watch_link"},
    {"trigger": "link_lost", "source": "connected", "dest": "recovering"},
    {"trigger": "disconnect", "source": ["connected", "attaching", "dialing"],
     "dest": "disconnecting"},
    {"trigger": "hung_up", "source": "disconnecting", "dest": "standby"},
    {"trigger": "disconnect", "source": [s for s in _ANY if s not in (
        "connected", "attaching", "dialing")], "dest": None},
    {"trigger": "recovered", "source": "recovering", "dest": "probing"},
    {"trigger": "capped", "source": "recovering", "dest": "held"},
    {"trigger": "retry", "source": ["no_answer", "held"], "dest": "probing"},
    {"trigger": "retry", "source": [s for s in TRANSIENT if s != "no_answer"],
     "dest": "recovering"},
    {"trigger": "gone", "source": _ANY, "dest": "no_answer"},
    {"trigger": "fault", "source": _WORKING + ["standby", "connected"], "dest": "recovering"},
    {"trigger": "fault", "source": list(TRANSIENT) + list(HELD) + ["starting"], "dest": None},
)
TIMEOUTS = {"standby": "poll", "connected": "poll", "no_answer": "retry", "no_network": "retry",
            "held": "retry",
            "registration_denied": "retry", "dial_refused": "retry",
            "probing": "silent", "registering": "searching", "dialing": "dial_failed",
            "attaching": "dial_failed", "disconnecting": "hung_up", "recovering": "recovered"}
FAULT = "fault"

#: The manual's *Etat du modem* for each state.
MANUAL = {"standby": "Standby", "connected": "Connecté"}
MANUAL.update({s: "Initialisation" for s in _ANY if s not in MANUAL})

#: ModemManager's MMModemState name, and its failed reason where it has one.
MM = {"starting": ("unknown", None), "probing": ("initializing", None), "sim_check": ("initializing", None),
      "pin_entry": ("locked", None), "registering": ("searching", None),
      "standby": ("registered", None), "attaching": ("connecting", None),
      "dialing": ("connecting", None), "connected": ("connected", None),
      "disconnecting": ("disconnecting", None), "recovering": ("enabling", None),
      "no_answer": ("failed", "unknown"), "sim_error": ("failed", "sim-missing"),
      "sim_pin": ("locked", None), "sim_puk": ("locked", None),
      "pin_refused": ("locked", None), "registration_denied": ("failed", "unknown"),
      "no_network": ("searching", None), "dial_refused": ("registered", None),
      "access_refused": ("registered", None),
      "held": ("failed", "unknown")}
