"""The AT dialogue of each state of the `modem` machine, run in the modem's worker thread.

Each step returns the machine's trigger (and the reason, for a failure), or raises :class:`Gone`
when the module has vanished from its port. A step reads and writes ``svc.facts`` (what the page
shows); it never touches the machine itself.
"""
from __future__ import annotations

import logging

from . import answers, ppp
from .at import AtChannel, AtError, AtTimeout, ModemGone

log = logging.getLogger("modem.dialogue")

#: Vendor commands for the ICCID and the PIN attempts left, by manufacturer (lower case).
ICCID_COMMANDS = {"quectel": [("AT+QCCID", "+QCCID:")], "simcom": [("AT+CCID", "")],
                  "huawei": [("AT^ICCID?", "^ICCID:")], "sierra": [("AT+ICCID", "ICCID:")]}
PIN_ATTEMPTS = {"quectel": ('AT+QPINC="SC"', "+QPINC:"), "simcom": ("AT+SPIC", "+SPIC:"),
                "u-blox": ("AT+UPINCNT", "+UPINCNT:")}
#: 27.007's own (Rel-8 +CPINR), for the others.
PIN_ATTEMPTS_STANDARD = ('AT+CPINR="SIM PIN"', "+CPINR:")


#: AT tries, a second each, before a module is said not to answer (a booting one answers
#: within a few seconds; the state's own retry comes after a backoff).
PROBE_TRIES = 5


class Gone(Exception):
    """The module does not answer on its port any more (unplugged, powered off)."""


def _channel(svc) -> AtChannel:
    if svc.channel is None or not svc.channel.is_open:
        if not svc.settings.modem_port:
            raise Gone("no modem port configured (Modem_Port)")
        channel = AtChannel(svc.settings.modem_port, opener=svc.opener, on_urc=svc.on_urc)
        try:
            channel.open()
        except (ModemGone, OSError) as e:
            raise Gone("port %s: %s" % (svc.settings.modem_port, e)) from e
        svc.channel = channel
    return svc.channel


def _cmd(svc, cmd: str, expect: str | None = None, timeout: float = 5.0) -> list[str]:
    try:
        return _channel(svc).command(cmd, expect=expect, timeout=timeout)
    except ModemGone as e:
        close(svc)
        raise Gone(str(e)) from e


def _quiet(svc, cmd: str, expect: str | None = None, timeout: float = 5.0) -> list[str]:
    """A command whose refusal changes nothing (an optional feature): [] on an error."""
    try:
        return _cmd(svc, cmd, expect, timeout)
    except AtError:
        return []


def close(svc) -> None:
    if svc.channel is not None:
        try:
            svc.channel.close()
        except OSError:
            pass
        svc.channel = None


# --- the steps -----------------------------------------------------------------------------------

def probe(svc, job):
    """AT until the module answers (it may be booting), echo off, verbose errors, identity."""
    try:
        _channel(svc)
    except Gone as e:
        return "silent", str(e)
    for _ in range(PROBE_TRIES):
        if job.cancelled:
            return None
        try:
            _cmd(svc, "AT", timeout=1.0)
            break
        except AtTimeout:
            continue
        except AtError:
            break                             # an answer, even ERROR: it is there
    else:
        return "silent", "no answer to AT"
    _quiet(svc, "ATE0")
    _quiet(svc, "AT+CMEE=2")
    f = svc.facts
    f.manufacturer = _first(_quiet(svc, "AT+CGMI"))
    f.model = _first(_quiet(svc, "AT+CGMM"))
    f.revision = _first(_quiet(svc, "AT+CGMR"))
    f.imei = _first(_quiet(svc, "AT+CGSN"))
    return "answered"


def check_sim(svc, job):
    f = svc.facts
    for _ in range(5):
        try:
            f.sim = _parsed(answers.parse_cpin, _cmd(svc, "AT+CPIN?", expect="+CPIN:"), "")
            break
        except AtError as e:
            if e.cme in (10, 13, 15):
                f.sim = "SIM ERROR"
                return "sim_missing", e.meaning
            if e.cme == 14:                    # SIM busy just after boot
                job.wait(2.0)
                continue
            raise
    else:
        return "sim_missing", "SIM busy"
    f.pin_attempts = _pin_attempts(svc)
    if f.sim == "READY":
        f.iccid = _iccid(svc) or f.iccid
        return "sim_ready"
    if f.sim == "SIM PIN":
        return "pin_needed"
    if f.sim == "SIM PUK":
        return "puk_needed", "PUK"
    return "sim_missing", f.sim


def enter_pin(svc, job):
    pin = svc.settings.sim_pin
    f = svc.facts
    svc.guard.unknown_outcome_means_refused(pin) if pin else None
    why = svc.guard.may_send(pin, svc.power_up, f.pin_attempts)
    if why is not None:
        return "pin_withheld", why
    svc.guard.sending(pin, svc.power_up)
    try:
        _cmd(svc, 'AT+CPIN="%s"' % pin, timeout=10.0)
    except AtError as e:
        svc.guard.outcome(pin, accepted=False)
        f.pin_attempts = _pin_attempts(svc)
        if _sim_state(svc) == "SIM PUK":
            return "puk_needed", "PUK"
        return "pin_wrong", e.meaning
    svc.guard.outcome(pin, accepted=True)
    for _ in range(10):                         # READY may take a moment
        if _sim_state(svc) == "READY":
            f.sim = "READY"
            f.iccid = _iccid(svc) or f.iccid
            return "sim_ready"
        job.wait(0.5)
    return "pin_wrong", "SIM not ready after its PIN"


def register(svc, job):
    for cmd in ("AT+CEREG=2", "AT+CGREG=2", "AT+CREG=2"):
        _quiet(svc, cmd)
    _quiet(svc, "AT+COPS=3,0")                  # operator names in long form
    while not job.cancelled:
        stat = _registration(svc)
        if stat in (1, 5):
            _signal(svc)
            return "registered"
        if stat == 3:
            return "denied", "registration denied"
        job.wait(1.0)
    return None


def supervise(svc, job):
    stat = _registration(svc)
    _signal(svc)
    if stat is not None and stat not in (1, 5):
        return "unregistered", answers.REG_STATES.get(stat, "not registered")
    return None


def attach(svc, job):
    s = svc.settings
    try:
        for key, value in (("GPRS_Apn", s.gprs_apn), ("GPRS_Login", s.gprs_login),
                           ("GPRS_Password", s.gprs_password)):
            ppp.check_value(key, value)         # nothing that could break out of an AT string
    except ppp.PppConfigError as e:
        return "dial_failed", str(e)
    try:
        _cmd(svc, 'AT+CGDCONT=1,"IP","%s"' % s.gprs_apn, timeout=10.0)
    except AtError as e:
        return _refusal(e, "APN %s : %s" % (s.gprs_apn, e.meaning))
    if s.gprs_login:
        # PAP credentials in the module; the PPP negotiation carries them too (ppp.py)
        _quiet(svc, 'AT+CGAUTH=1,1,"%s","%s"' % (s.gprs_login, s.gprs_password))
    return "attached"


def dial(svc, job):
    """On a device with kernel PPP, pppd dials with its chat script and carries the data (the
    AT channel is closed meanwhile: pppd owns the port); elsewhere (a simulator on a
    pseudo-terminal) the dial stops at CONNECT and the data phase is simulated."""
    if svc.use_ppp:
        return _dial_ppp(svc)
    try:
        line = _channel(svc).dial(svc.settings.gprs_number, timeout=60.0)
    except ModemGone as e:
        close(svc)
        raise Gone(str(e)) from e
    except AtError as e:
        return _refusal(e, e.result if e.cme is None else e.meaning)
    log.info("dialled %s: %s", svc.settings.gprs_number, line)
    return "carrier"


#: CME codes by which the network refuses the subscription's data access (27.007 §9.2): illegal
#: MS/ME, GPRS not allowed, PLMN/area/roaming not allowed, service option not supported or not
#: subscribed, PDP authentication failure. Retrying cannot help: the configuration must change.
ACCESS_REFUSED = frozenset({103, 106, 107, 111, 112, 113, 132, 133, 149})


def _refusal(error: AtError, reason: str):
    """A refused attach or dial: held when the network refuses the access itself
    (ACCESS_REFUSED), else transient (retried, up the recovery ladder)."""
    return ("access_denied" if error.cme in ACCESS_REFUSED else "dial_failed"), reason


def watch_link(svc, job):
    """Connected: the port carries the data; a dropped carrier comes as a URC (NO CARRIER)."""
    return None


def _dial_ppp(svc):
    close(svc)
    link = ppp.PppLink(svc.settings, svc.run_dir / "ppp", log=ppp_log.info)
    svc.ppp = link
    try:
        link.start()
        link.wait_up(75.0)
    except ppp.PppError as e:
        link.stop()
        svc.ppp = None
        if e.status in (11, 19):                # authentication refused either way
            return "access_denied", e.journal
        return "dial_failed", e.journal
    except ppp.PppConfigError as e:
        svc.ppp = None
        return "dial_failed", str(e)
    link.supervise(svc.on_ppp_down)
    return "carrier"


ppp_log = logging.getLogger("modem.ppp")


def hang_up(svc, job):
    if svc.ppp is not None:
        svc.ppp.stop()
        svc.ppp = None
        svc.facts.link = "down"
        return "hung_up"
    try:
        _channel(svc).hangup()
    except ModemGone:
        close(svc)
    except AtError:
        pass
    svc.facts.link = "down"
    return "hung_up"


def recover(svc, job, step: str):
    """One step of the ladder (recovery.py); then the module is probed again."""
    try:
        if step == "radio":
            _quiet(svc, "AT+CFUN=0", timeout=15.0)
            job.wait(5.0)
            _quiet(svc, "AT+CFUN=1", timeout=15.0)
        elif step == "reset":
            _quiet(svc, "AT+CFUN=1,1", timeout=15.0)
            close(svc)
            job.wait(5.0)
        elif svc.channel is not None and svc.channel.in_data_mode:
            svc.channel.hangup()
    except (Gone, ModemGone, AtError) as e:
        log.warning("recovery step %s: %s", step, e)
        close(svc)
    return "recovered"


# --- helpers ---------------------------------------------------------------------------------------

def _first(lines: list[str]) -> str:
    return lines[0].strip() if lines else ""


def _parsed(parser, lines, default):
    """``parser(lines)``, or ``default`` when the answer was missing or malformed."""
    try:
        return parser(lines)
    except ValueError:
        return default


def _sim_state(svc) -> str:
    return _parsed(answers.parse_cpin, _quiet(svc, "AT+CPIN?", expect="+CPIN:"), "")


def _pin_attempts(svc) -> int | None:
    vendor = PIN_ATTEMPTS.get(_vendor(svc), PIN_ATTEMPTS_STANDARD)
    return _parsed(answers.parse_pin_attempts, _quiet(svc, vendor[0], expect=vendor[1]), None)


def _iccid(svc) -> str | None:
    for cmd, prefix in ICCID_COMMANDS.get(_vendor(svc), []) + [("AT+CCID", "")]:
        found = _parsed(answers.parse_iccid, _quiet(svc, cmd, expect=prefix or None), None)
        if found:
            return found
    return _parsed(answers.iccid_from_crsm,
                   _quiet(svc, "AT+CRSM=176,12258,0,0,10", expect="+CRSM:"), None)


def _vendor(svc) -> str:
    m = svc.facts.manufacturer.lower()
    for name in ("quectel", "simcom", "huawei", "sierra", "u-blox"):
        if name in m or (name == "u-blox" and "ublox" in m):
            return name
    return ""


def _registration(svc) -> int | None:
    """Registered for data: EPS (LTE) or GPRS; CS for a 2G-only module."""
    best = None
    for cmd, prefix in (("AT+CEREG?", "+CEREG:"), ("AT+CGREG?", "+CGREG:"),
                        ("AT+CREG?", "+CREG:")):
        stat, act = _parsed(lambda lines: answers.parse_registration(lines, solicited=True),
                            _quiet(svc, cmd, expect=prefix), (None, None))
        if stat is None:
            continue
        if stat in (1, 5):
            svc.facts.set_registration(stat, answers.act_name(act, _vendor(svc)))
            return stat
        if best is None or stat == 3:
            best = stat
    if best is not None:
        svc.facts.set_registration(best, None)
    return best


def _signal(svc) -> None:
    f = svc.facts
    f.rssi, _ = _parsed(answers.parse_csq, _quiet(svc, "AT+CSQ", expect="+CSQ:"), (None, None))
    lte = _parsed(answers.parse_cesq, _quiet(svc, "AT+CESQ", expect="+CESQ:"), {})
    f.rsrp, f.rsrq = lte.get("rsrp_dbm"), lte.get("rsrq_db")
    if _vendor(svc) == "quectel":              # SINR: no standard command has it
        q = answers.parse_qcsq(_quiet(svc, "AT+QCSQ", expect="+QCSQ:"))
        f.sinr = q.get("sinr_db")
        f.rsrp = f.rsrp if f.rsrp is not None else q.get("rsrp_dbm")
        f.rsrq = f.rsrq if f.rsrq is not None else q.get("rsrq_db")
    operator, act = _parsed(answers.parse_cops, _quiet(svc, "AT+COPS?", expect="+COPS:"),
                            (None, None))
    f.operator = operator or ""
    if act is not None:
        f.technology = answers.act_name(act, _vendor(svc)) or f.technology
