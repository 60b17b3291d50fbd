"""Gateway activity: every service runs this machine; it is the manual's ACTIVITY LED."""

NAME = "activity"
DOC = """
Each service's life. The manual's ACTIVITY LED (section 12): *Allumée* while starting,
*Clignote rapidement* while initialising, *Clignote lentement* when operational.
Entering `initialising` runs the service's start-up (`initialise`); when it raises, or when
the service reports that something it needs failed, the service goes to `fault`, says why
in its status, refuses its own commands with an error that says so, and retries on a capped
backoff timer (`retry`). `stop` (SIGTERM, restart) is honoured from every state.
"""

STATES = (
    "starting",
    {"name": "initialising", "on_enter": "initialise"},
    "operational",
    {"name": "fault", "on_enter": "enter_fault"},
    {"name": "stopping", "on_enter": "enter_stopping"},
)
INITIAL = "starting"
_LIVE = ["starting", "initialising", "operational", "fault"]
TRANSITIONS = (
    {"trigger": "begin", "source": "starting", "dest": "initialising"},
    {"trigger": "ready", "source": "initialising", "dest": "operational"},
    {"trigger": "ready", "source": "operational", "dest": None},
    {"trigger": "failed", "source": _LIVE, "dest": "fault"},
    {"trigger": "failed", "source": "stopping", "dest": None},
    {"trigger": "retry", "source": "fault", "dest": "initialising"},
    {"trigger": "stop", "source": _LIVE, "dest": "stopping"},
    {"trigger": "stop", "source": "stopping", "dest": None},
)
#: state -> trigger fired after model.timeout(state) seconds in it
TIMEOUTS = {"fault": "retry"}
#: fired when a callback of this machine raises
FAULT = "failed"

#: The LED pattern shown for each state (web page and status).
LED = {"starting": "on", "initialising": "fast", "operational": "slow", "fault": "fast",
       "stopping": "off"}
