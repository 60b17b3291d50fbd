"""Installing a firmware package (`.pak`): the manual's *Mise à jour* (10.5), Mender's states."""

NAME = "install"
DOC = """
A package goes through Mender's states. `uploaded`: a file is there (a page upload, or /BIN
fetched by a connection); entering it checks the package in the worker (signature against
`BIN_PublicKey`, every member's hash, the model, the version, the free space): `checked` leads
to `verified`, `refused` to `failed`. `verified`: the facts (version, build date, size,
SHA-256) are on the bus; a page shows them and the installer confirms (`confirm`), or they are
dropped (`discard`, or unconfirmed for a while). A package from /BIN or an `UPDATE` command is
confirmed at once. `installing` takes the task lock (*Mise à jour*) and builds a fresh release
with its own environment, offline. `switching` writes the pending record and swaps the
`current` link; `restarting` restarts the whole gateway into the new release (the manual's
*Veuillez attendre le redémarrage de la passerelle...*). After the restart the new release's
update service resumes in `verifying`: every service must report *operational* with the new
version within `BIN_HealthTimeout`; then `committed`, else `rolling_back` (the link swapped
back, an alarm and a journal row with the reason, the gateway restarted into the previous
release) and `rolled_back`. Outcomes rest until the next package.

`resume_*` leave `starting` according to the update record (a power cut at any step: see
ticgw/release). The fault path: before the switch, `failed` (nothing was touched); while
verifying, `rolling_back`; in a rollback, `failed` with the record left for the launcher,
which finishes the rollback at the next start.
"""

STATES = (
    "starting",
    "idle",
    {"name": "uploaded", "on_enter": "check_package"},
    {"name": "verified", "on_enter": "offer_package"},
    {"name": "installing", "on_enter": "install_release"},
    {"name": "switching", "on_enter": "switch_release"},
    {"name": "restarting", "on_enter": "restart_into_release"},
    {"name": "verifying", "on_enter": "watch_health", "on_exit": "stop_watching"},
    {"name": "committed", "on_enter": "commit_release"},
    {"name": "rolling_back", "on_enter": "roll_back"},
    {"name": "rolled_back", "on_enter": "after_rollback"},
    {"name": "failed", "on_enter": "install_failed"},
)
INITIAL = "starting"

#: States a new package may be uploaded in.
RESTING = ["idle", "verified", "committed", "rolled_back", "failed"]

TRANSITIONS = (
    {"trigger": "resume_idle", "source": "starting", "dest": "idle"},
    {"trigger": "resume_verifying", "source": "starting", "dest": "verifying"},
    {"trigger": "resume_rollback", "source": "starting", "dest": "rolling_back"},
    {"trigger": "upload", "source": RESTING, "dest": "uploaded"},
    {"trigger": "checked", "source": "uploaded", "dest": "verified"},
    {"trigger": "refused", "source": ["uploaded", "verified", "installing", "switching"],
     "dest": "failed"},
    {"trigger": "confirm", "source": "verified", "dest": "installing"},
    {"trigger": "discard", "source": "verified", "dest": "idle"},
    {"trigger": "installed", "source": "installing", "dest": "switching"},
    {"trigger": "switched", "source": "switching", "dest": "restarting"},
    {"trigger": "healthy", "source": "verifying", "dest": "committed"},
    {"trigger": "unhealthy", "source": "verifying", "dest": "rolling_back"},
    {"trigger": "rolled", "source": "rolling_back", "dest": "rolled_back"},
    {"trigger": "fault", "source": ["starting", "uploaded", "verified", "installing",
                                    "switching", "restarting", "idle", "committed",
                                    "rolled_back", "failed"], "dest": "failed"},
    {"trigger": "fault", "source": "verifying", "dest": "rolling_back"},
    {"trigger": "fault", "source": "rolling_back", "dest": "failed"},
)
#: state -> trigger fired after model.timeout(state) seconds in it
TIMEOUTS = {"verified": "discard", "verifying": "unhealthy"}
FAULT = "fault"
