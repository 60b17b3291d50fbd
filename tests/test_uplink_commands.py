"""Command files (services.uplink.commands): each line acknowledged in order, OK or ERROR;reason."""
from __future__ import annotations

import pytest

from services.uplink import commands

NOW = "01/05/24-12:00:00"
DIGEST = "ab" * 32


class Handlers:
    def __init__(self, refuse: set[str] = frozenset(), params_fail: bool = False):
        self.updates: list[dict] = []
        self.params_calls = 0
        self.refuse, self.params_fail = refuse, params_fail

    def config_update(self, changes):
        bad = [k for k in changes if k in self.refuse]
        if bad:
            raise ValueError("X_daq.ini: %s: out of range\nmore detail" % bad[0])
        self.updates.append(changes)

    def params(self):
        self.params_calls += 1
        if self.params_fail:
            raise RuntimeError("acquisition: no answer")


def run(text, **kw):
    h = Handlers(**kw)
    return commands.run(text, NOW, h), h


def test_every_type():
    text = ("1;CONNECT\n2;REBOOT\n3;DETECT\n4;CONFIG;DAQ_Period=5;ALM_Delay=2\n5;GETPARAMS\n"
            "6;LOG\n7;UPDATE;p.pak;%s\n" % DIGEST.upper())
    out, h = run(text)
    assert out.errors == 0 and out.ok == 7
    assert out.acks == [NOW + ";" + line + ";OK" for line in text.splitlines()]
    e = out.effects
    assert (e.connect_again, e.reboot, e.detect, e.debug_log, e.config_changed,
            e.params_requested) == (True,) * 6
    assert h.updates == [{"DAQ_Period": "5", "ALM_Delay": "2"},
                         {"BIN_FileName": "p.pak", "BIN_Checksum": DIGEST}]
    assert h.params_calls == 1


@pytest.mark.parametrize("line, reason", [
    ("9;FOO", "unknown command FOO"),
    ("9", "malformed line"),
    ("9;", "malformed line"),
    ("x;CONNECT", "index 'x' is not a number"),
    ("9;CONNECT;now", "CONNECT takes no parameter"),
    ("9;CONFIG", "CONFIG needs at least one key=value"),
    ("9;CONFIG;DAQ_Period", "expected key=value"),
    ("9;CONFIG;=5", "expected key=value"),
    ("9;UPDATE;p.pak", "UPDATE needs package;checksum"),
    ("9;UPDATE;p.pak;abc", "64 hex digits"),
    ("9;CONFIG;DAQ_Period=99", "X_daq.ini: DAQ_Period: out of range"),
    ("9;GETPARAMS", "parameters unavailable: acquisition: no answer"),
])
def test_refused_lines_say_why_and_the_next_ones_run(line, reason):
    out, h = run(line + "\r\n10;DETECT\r\n", refuse={"DAQ_Period"}, params_fail=True)
    assert out.errors == 1 and out.ok == 1
    bad, good = out.acks
    fields = bad.split(";")
    assert fields[0] == NOW and "ERROR" in fields
    got = ";".join(fields[fields.index("ERROR") + 1:])
    assert got == reason.replace(";", ",") or reason.replace(";", ",") in got
    assert "\n" not in bad
    assert good == NOW + ";10;DETECT;OK"
    assert out.effects.detect


def test_blank_lines_are_skipped_and_fields_trimmed():
    out, _ = run("\r\n 1 ; detect \r\n\r\n")
    assert out.acks == [NOW + ";1;detect;OK"]


def test_a_refused_config_changes_nothing():
    out, h = run("1;CONFIG;ALM_Delay=3;DAQ_Period=99", refuse={"DAQ_Period"})
    assert out.errors == 1 and h.updates == [] and not out.effects.config_changed
