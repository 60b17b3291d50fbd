"""One TIC input (one meter line): the manual's TIC1..TIC3 LEDs."""

NAME = "tic_input"
DOC = """
One per TIC input. The line's worker only reports facts (port opened, open failed, line error,
probe result, valid frame); the machine decides what happens next, and entering a state does
that state's work.

- `absent` (*Eteinte*): no open port; the port is closed, and opened again (`retry`) after a
  capped backoff.
- `opening`: the worker opens the port (`opened`, or `open_failed` also at its deadline).
- `detecting` (*Clignote rapidement*): the worker probes the line speeds and identifies the
  meter; `no_meter` also at the probe's deadline.
- `identified`: family, mode and serial known; the line is read, frames are sampled.
- `reading` (*Allumée*, a pulse per frame: *Bagote*): valid frames arrive; each one re-arms
  the silence timer (`TIC_LostDelay`).
- `lost`: no valid frame for the loss delay. Entering it publishes `tic.<n>.lost`, raises the
  COMPTEUR_PERDU alarm and asks the worker to probe again; between probes the line is read.
  The meter coming back (a valid frame, or a probe that finds it) publishes `tic.<n>.found` and
  raises COMPTEUR_RETROUVE.
- `silent`: no meter answered at detection; the line is read, and probed again from time to
  time.

A line error (`port_closed`) or a fault in a callback goes back to `absent`.
"""

STATES = (
    {"name": "absent", "on_enter": "close_port"},
    {"name": "opening", "on_enter": "open_port"},
    {"name": "detecting", "on_enter": "probe"},
    {"name": "identified", "on_enter": "start_reading"},
    "reading",
    {"name": "lost", "on_enter": "meter_lost"},
    {"name": "silent", "on_enter": "listen"},
)
INITIAL = "absent"
_OPEN = ["detecting", "identified", "reading", "lost", "silent"]
TRANSITIONS = (
    {"trigger": "retry", "source": "absent", "dest": "opening"},
    {"trigger": "opened", "source": "opening", "dest": "detecting", "after": "port_ok"},
    {"trigger": "open_failed", "source": "opening", "dest": "absent"},
    {"trigger": "meter_found", "source": "detecting", "dest": "identified"},
    {"trigger": "no_meter", "source": "detecting", "dest": "silent"},
    {"trigger": "frame", "source": "identified", "dest": "reading"},
    {"trigger": "frame", "source": "reading", "dest": None, "after": "rearm"},
    {"trigger": "silence", "source": ["identified", "reading"], "dest": "lost"},
    {"trigger": "reprobe", "source": ["lost", "silent"], "dest": None, "after": "probe"},
    {"trigger": "no_meter", "source": ["lost", "silent"], "dest": None, "after": "listen"},
    {"trigger": "meter_found", "source": "lost", "dest": "identified", "after": "meter_back"},
    {"trigger": "frame", "source": "lost", "dest": "reading", "after": "meter_back"},
    {"trigger": "meter_found", "source": "silent", "dest": "identified"},
    {"trigger": "frame", "source": "silent", "dest": "detecting"},
    {"trigger": "detect", "source": ["identified", "reading", "silent"], "dest": "detecting"},
    {"trigger": "detect", "source": "lost", "dest": None, "after": "probe"},
    {"trigger": "detect", "source": ["absent", "opening", "detecting"], "dest": None},
    {"trigger": "port_closed", "source": _OPEN, "dest": "absent"},
    {"trigger": "fault", "source": ["opening"] + _OPEN, "dest": "absent"},
    {"trigger": "fault", "source": "absent", "dest": None, "after": "rearm"},
)
TIMEOUTS = {"absent": "retry", "opening": "open_failed", "detecting": "no_meter",
            "identified": "silence", "reading": "silence", "lost": "reprobe",
            "silent": "reprobe"}
FAULT = "fault"

#: The LED pattern for each state (`reading` flickers: a pulse per frame).
LED = {"absent": "off", "opening": "off", "detecting": "fast", "identified": "on",
       "reading": "flicker", "lost": "off", "silent": "off"}
