"""The connection (uplink): the ordered phases of DESIGN section 5, then back to idle."""

NAME = "connection"
DOC = """
One connection to the remote server, phase by phase, in the manual's order (section 10.3.2).
Entering a phase runs its work in the connection's worker; it ends `done` (it did its work, or
found nothing to do) or `failed` (it journaled its error; the next phase still runs). `abort`
ends the connection at once: the WAN link or the FTP server cannot be reached. `deadline`: the
whole connection has lasted too long (`Connection_Timeout`). `closing` closes the FTP session,
writes *Connexion terminée* and *Reprise de l'acquisition de données...*, and says whether the
gateway must restart. Entering `idle` ends the task whatever happened: the task lock is
released, `task.ended` published, and a connection asked for meanwhile is started.

The fault path: an exception in any callback ends the connection as a failed one (`fault`:
a phase goes to `closing`, `closing` to `idle`), with a journal row; `closing` also has its
own deadline.
"""

#: The phases, in order. Each is a state; its work runs in the connection's worker.
PHASES = (
    "requesting",     # Demande de connexion... / Arrêt de l'acquisition de données...
    "wan",            # Ethernet, or Connexion modem GPRS... ; Connexion établie
    "ntp",            # Synchronisation NTP...
    "site_id",        # Récupération ID site... (automatic site ID with Web Services)
    "alarms",         # Gestion des alarmes ...
    "commands",       # Gestion des fichiers de commandes ...
    "parameters",     # Gestion des fichiers de paramètres ...
    "data",           # Gestion des fichiers de données ...
    "config",         # Gestion des fichiers de configuration ...
    "definitions",    # Gestion des fichiers de définition...
    "logs",           # Gestion des fichiers de logs ...
    "firmware",       # Gestion du firmware...
)

STATES = ((({"name": "idle", "on_enter": "connection_over"}),)
          + tuple({"name": p, "on_enter": "run_phase"} for p in PHASES)
          + ({"name": "closing", "on_enter": "close_connection"},))
INITIAL = "idle"

TRANSITIONS = tuple(
    [{"trigger": "start", "source": "idle", "dest": PHASES[0], "after": "arm_deadline"}]
    + [{"trigger": outcome, "source": phase, "dest": nxt}
       for phase, nxt in zip(PHASES, PHASES[1:] + ("closing",))
       for outcome in ("done", "failed")]
    + [{"trigger": "abort", "source": list(PHASES), "dest": "closing"},
       {"trigger": "deadline", "source": list(PHASES), "dest": "closing"},
       {"trigger": "link_lost", "source": list(PHASES), "dest": "closing"},
       {"trigger": "finished", "source": "closing", "dest": "idle"},
       {"trigger": "fault", "source": list(PHASES), "dest": "closing"},
       {"trigger": "fault", "source": "closing", "dest": "idle"},
       {"trigger": "fault", "source": "idle", "dest": "idle"}]
)
TIMEOUTS = {"closing": "fault"}
FAULT = "fault"
