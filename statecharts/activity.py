"""Gateway activity: every service runs this machine; it is the manual's ACTIVITY LED."""

NAME = "activity"
DOC = """
Each service's life. The manual's ACTIVITY LED (section 12): *Allumée* while starting,
*Clignote rapidement* while initialising, *Clignote lentement* when operational. A service that
cannot finish its initialisation (a port, a configuration) waits in `fault` and retries.
"""

STATES = ("starting", "initialising", "operational", "fault", "stopping")
INITIAL = "starting"
TRANSITIONS = (
    {"trigger": "begin", "source": "starting", "dest": "initialising"},
    {"trigger": "ready", "source": "initialising", "dest": "operational"},
    {"trigger": "failed", "source": ["initialising", "operational"], "dest": "fault"},
    {"trigger": "retry", "source": "fault", "dest": "initialising"},
    {"trigger": "stop", "source": ["starting", "initialising", "operational", "fault"],
     "dest": "stopping"},
)

#: The LED pattern shown for each state (web page and status).
LED = {"starting": "on", "initialising": "fast", "operational": "slow", "fault": "fast",
       "stopping": "off"}
