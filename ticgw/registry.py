"""The registry of the gateway's services: one entry per service, the one place that names them.

An entry says what a newcomer needs to add a service: its name (bus source, topics ``<name>.*``,
logger), the module ``python -m`` starts, the state machines it runs (charts in
``statecharts/``, beyond the ``activity`` every service runs), the commands it answers and the
topics it publishes beyond the common ones (``bus/messages.py``). The tuple's order is the start
order and the order of a whole-gateway restart.

Everything else derives from here: the bus declarations (:func:`bus.messages.declare`), the command
endpoints and their ``Bus_<Name>`` configuration keys, the list of charts ``ticgw statecharts``
renders, and the ``Procfile`` (``ticgw procfile`` writes it). Adding the modem or the web service
is one entry below plus its package ``services/<name>/``.
"""
from __future__ import annotations

from dataclasses import dataclass

from bus import messages
from bus.messages import Command, topic


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    doc: str
    module: str                         # started as ``python -m <module>``
    charts: tuple[str, ...] = ()        # machines beyond ``activity`` (statecharts/<chart>.py)
    commands: tuple[Command, ...] = ()  # its own commands (status, restart... are common)
    topics: tuple = ()                  # topics it publishes beyond the common ones

    @property
    def config_key(self) -> str:
        """The configuration key of its command endpoint: ``Bus_Acquisition``."""
        return "Bus_" + "".join(part.capitalize() for part in self.name.split("_"))


ACQUISITION = ServiceSpec(
    "acquisition",
    "reads the TIC inputs, detects the meters, samples, raises alarms, fills the spool; "
    "drives the front panel (LEDs and INSTALL button)",
    "services.acquisition",
    charts=("tic_input",),
    commands=(
        Command("acquisition", "detect", "Détection: probe every input again (task lock)", {},
                {"started": "true", "inputs": "input numbers being probed"}),
        Command("acquisition", "seal", "close the current records into upload files", {},
                {"files": "file names made"}),
        Command("acquisition", "pause", "stop writing records (sampling goes on)", {},
                {"paused": "true"}),
        Command("acquisition", "resume", "write records again", {}, {"paused": "false"}),
        Command("acquisition", "details", "the label/value table seen at detection, per input",
                {}, {"inputs": "input number (text) -> summary with 'details' [[label, value]...]"}),
        Command("acquisition", "params", "write the parameters file into the outbox", {},
                {"file": "file name, or None"}),
        Command("acquisition", "button", "the INSTALL button: short press (about 1 s) connects "
                "and deposits the parameters file; long press (about 10 s) restarts the gateway",
                {"press": "short or long"}, {"action": "connect or reboot"}),
        Command("acquisition", "leds", "the front panel's LEDs now", {},
                {"leds": "LED name -> pattern (on, off, fast, slow, flicker)"}),
    ),
    topics=(
        topic("tic.<n>.frame", "one TIC frame decoded on input n",
              {"input": "input number (1-based)", "mode": "historic or standard",
               "complete": "frame had its start and end marks",
               "groups": "[label, value, horodate, checksum_ok] per group",
               "checksum_errors": "groups with a bad checksum", "errors": "decoder errors"},
              ("acquisition",), required=("input",)),
        topic("tic.<n>.detected", "a meter was identified on input n",
              {"input": "input number", "family": "meter family (catalogue)",
               "mode": "historic or standard", "baud": "line speed",
               "serial": "meter serial number", "definition": "definition file used",
               "variables": "labels seen at detection"},
              ("acquisition",), required=("input",)),
        topic("tic.<n>.lost", "no valid frame on input n for the loss delay",
              {"input": "input number", "since": "epoch seconds the meter was declared lost"},
              ("acquisition",), required=("input",)),
        topic("tic.<n>.found", "valid frames again on input n after a loss",
              {"input": "input number", "since": "epoch seconds it had been lost since"},
              ("acquisition",), required=("input",)),
        topic("spool.written", "a record is on disk in the spool",
              {"input": "input number", "count": "records written", "seq": "record sequence",
               "time": "sample time as written in the record", "columns": "the record's values"},
              ("acquisition",)),
        topic("gateway.leds", "the front panel: ACTIVITY and TIC1..TIC3 (manual section 12)",
              {"leds": "LED name -> pattern: on, off, fast (initialisation), slow "
                       "(operational), flicker (traffic)",
               "pulse": "the TIC LED that blinks once for a frame just read, if any"},
              ("acquisition",), required=("leds",)),
    ),
)

MODEM = ServiceSpec(
    "modem",
    "the cellular module, its SIM and signal, and the data link of a connection in Modem mode "
    "(manual 10.4.1)",
    "services.modem",
    charts=("modem",),
    commands=(
        Command("modem", "connect", "bring the data link up (Connexion modem GPRS...); the "
                "reply comes once it is up, or is a refusal saying why it cannot be", {},
                {"state": "Connecté", "signal": "0..31 or None (unknown)",
                 "technology": "2G, 3G, LTE, LTE-M or NB-IoT", "operator": "network name",
                 "rsrp": "dBm", "sinr": "dB, where the module tells it",
                 "warning": "2G/3G switch-off warning, or None"}),
        Command("modem", "disconnect", "hang the data link up (Déconnexion modem...)", {},
                {"state": "Standby"}),
        Command("modem", "history", "the signal over the last 24 hours", {},
                {"points": "[epoch s, signal 0..31 or None, technology] a minute apart"}),
    ),
)

UPLINK = ServiceSpec(
    "uplink",
    "runs connections to the remote server, phase by phase (manual 10.3.2)",
    "services.uplink",
    charts=("connection",),
    commands=(
        Command("uplink", "journal", "the last rows of the Connexion table", {"n": "how many"},
                {"rows": "[date, hour GMT, message] per row"}),
        Command("uplink", "connect", "start a connection (Connexion task)",
                {"reason": "button, install, schedule, alarm, command",
                 "install": "true: also deposit the parameters file (INSTALL button)"},
                {"started": "true"}),
    ),
    topics=(
        topic("connection.phase", "a phase of the uplink connection ended (DESIGN section 5)",
              {"phase": "phase name", "outcome": "ok, nothing or failed",
               "detail": "why, if failed", "files": "files moved in this phase"},
              ("uplink",), required=("phase",)),
    ),
)

UPDATE = ServiceSpec(
    "update",
    "installs firmware packages (.pak): verify, install offline, switch, check, commit or roll "
    "back (manual 10.5, Mise à jour)",
    "services.update",
    charts=("install",),
    commands=(
        Command("update", "verify", "check a package in <data>/firmware and show its facts "
                "before the installer confirms; the reply comes once it is checked",
                {"path": "the package's path (under <data>/firmware)"},
                {"version": "package version", "build_date": "UTC build date",
                 "size": "bytes", "sha256": "SHA-256 of the file", "model": "target model"}),
        Command("update", "install", "install a package (Mise à jour task): with a path, check "
                "it then install it at once (/BIN, UPDATE); without, the verified one (the "
                "installer confirmed); the reply comes once it is checked, the install goes on",
                {"path": "package path (optional)", "sha256": "expected SHA-256 (optional)",
                 "origin": "web, bin or command"},
                {"version": "version being installed", "sha256": "SHA-256 of the package"}),
        Command("update", "discard", "drop a verified package the installer did not confirm",
                {}, {"discarded": "true"}),
    ),
    topics=(
        topic("update.facts", "a package was checked: what a page shows before Valider",
              {"version": "package version", "build_date": "UTC build date", "size": "bytes",
               "sha256": "SHA-256 of the file", "model": "target model",
               "from_version": "the running version"}, ("update",), required=("version",)),
        topic("update.progress", "how far an install is",
              {"step": "vérification, extraction, environnement, installation, contrôle, "
                       "basculement, redémarrage, contrôle de santé",
               "percent": "0..100", "version": "version being installed"},
              ("update",), required=("step",)),
        topic("update.outcome", "the final outcome of an install (also journaled)",
              {"state": "committed, rolled_back or failed", "version": "package version",
               "from_version": "version before", "reason": "why, if not committed"},
              ("update",), required=("state",)),
    ),
)

WEB = ServiceSpec(
    "web",
    "the installer's web page on Web_Listen: the manual's pages (sections 9 to 12), live from "
    "the bus",
    "services.web",
    commands=(
        Command("web", "sessions", "the open sessions and the login failures (no secrets)",
                {}, {"sessions": "how many are open", "streams": "live pages open",
                     "failures": "recent login failures per address"}),
    ),
)

#: Every service, in start order (and whole-gateway restart order).
SERVICES: list[ServiceSpec] = []


def register(spec: ServiceSpec) -> ServiceSpec:
    """Add a service (the entries below; a test or an integrator's own service may add one)."""
    if any(s.name == spec.name for s in SERVICES):
        raise ValueError("service %s is already registered" % spec.name)
    messages.declare(spec.name, spec.commands, spec.topics)
    SERVICES.append(spec)
    return spec


#: The gateway's own services (what this file declares), in order.
BUILTIN: tuple[ServiceSpec, ...] = (ACQUISITION, MODEM, UPLINK, UPDATE, WEB)

for _spec in BUILTIN:
    register(_spec)


def names() -> tuple[str, ...]:
    return tuple(s.name for s in SERVICES)


def get(name: str) -> ServiceSpec:
    for s in SERVICES:
        if s.name == name:
            return s
    raise KeyError("no service %r in the registry (ticgw/registry.py); known: %s"
                   % (name, ", ".join(names())))


def charts(specs=None) -> tuple[str, ...]:
    """Every chart a service runs (of ``specs``, default every registered service):
    ``activity`` first, then each entry's, once."""
    out = ["activity"]
    for s in (SERVICES if specs is None else specs):
        out += [c for c in s.charts if c not in out]
    return tuple(out)


def restart_order() -> tuple[str, ...]:
    return names()


#: The broker's line in the Procfile (it is not a service: no machine, no commands).
BROKER_COMMAND = "ticgw bus broker"


def procfile(extra: tuple[tuple[str, str], ...] = (), specs=None) -> str:
    """The Procfile: the broker, every service (of ``specs``, default every registered one)
    through the launcher (``ticgw.launch``: the release that is current), then ``extra``
    (name, command) lines."""
    lines = ["# Generated by `ticgw procfile` from ticgw/registry.py; do not edit.",
             "bus: %s" % BROKER_COMMAND]
    lines += ["%s: python -m ticgw.launch %s" % (s.name, s.module)
              for s in (SERVICES if specs is None else specs)]
    lines += ["%s: %s" % kv for kv in extra]
    return "\n".join(lines) + "\n"
