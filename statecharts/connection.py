"""The connection (uplink): the ordered phases of DESIGN section 5, then back to idle."""

NAME = "connection"
DOC = """
One connection to the remote server, phase by phase, in the manual's order (section 10.3.2).
Each phase ends `done` (it did its work, or found nothing to do) or `failed` (it journaled its
error; the next phase still runs). `abort` ends the connection at once: the WAN link or the FTP
server cannot be reached. `closing` writes *Connexion terminée* and *Reprise de l'acquisition de
données...*, and asks for the restart a new configuration, definition or firmware needs.
"""

#: The phases, in order. Each is a state; its work runs in a worker thread.
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

STATES = ("idle",) + PHASES + ("closing",)
INITIAL = "idle"

TRANSITIONS = tuple(
    [{"trigger": "start", "source": "idle", "dest": PHASES[0]}]
    + [{"trigger": outcome, "source": phase, "dest": nxt}
       for phase, nxt in zip(PHASES, PHASES[1:] + ("closing",))
       for outcome in ("done", "failed")]
    + [{"trigger": "abort", "source": list(PHASES), "dest": "closing"},
       {"trigger": "finished", "source": "closing", "dest": "idle"}]
)
