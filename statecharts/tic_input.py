"""One TIC input (one meter line): the manual's TIC1..TIC3 LEDs."""

NAME = "tic_input"
DOC = """
One per TIC input. `absent`: no port configured or the port cannot be opened (*Eteinte*);
`detecting`: probing line speeds and identifying the meter (*Clignote rapidement*);
`identified`: family, mode and serial known, sampling not started yet; `reading`: valid frames
arrive and are sampled (*Allumée*, with a short pulse per frame: *Bagote*); `lost`: no valid frame
for the loss delay, the port is reopened with backoff until frames come back.
"""

STATES = ("absent", "detecting", "identified", "reading", "lost")
INITIAL = "absent"
TRANSITIONS = (
    {"trigger": "port_opened", "source": "absent", "dest": "detecting"},
    {"trigger": "detect", "source": ["identified", "reading", "lost"], "dest": "detecting"},
    {"trigger": "meter_found", "source": "detecting", "dest": "identified"},
    {"trigger": "no_meter", "source": "detecting", "dest": "lost"},
    {"trigger": "frame", "source": ["identified", "lost"], "dest": "reading"},
    {"trigger": "silence", "source": ["identified", "reading"], "dest": "lost"},
    {"trigger": "port_closed", "source": ["detecting", "identified", "reading", "lost"],
     "dest": "absent"},
)

#: The LED pattern for each state.
LED = {"absent": "off", "detecting": "fast", "identified": "on", "reading": "on", "lost": "off"}
