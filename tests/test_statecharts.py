"""The state machines: declared as data, rendered charts up to date, every transition works."""
import pytest

import statecharts
from statecharts import activity, connection, tic_input


@pytest.mark.parametrize("name", statecharts.CHARTS)
def test_rendered_chart_is_up_to_date(name):
    path = statecharts.HERE / ("%s.md" % name)
    assert path.exists(), "run `ticgw statecharts` to render %s" % name
    assert path.read_text(encoding="utf-8") == statecharts.mermaid(name), \
        "statecharts/%s.md is stale: run `ticgw statecharts`" % name


class Stub:
    pass


def all_paths(chart):
    """Every declared (source, trigger, dest) triple."""
    for t in chart.TRANSITIONS:
        sources = t["source"] if isinstance(t["source"], (list, tuple)) else [t["source"]]
        for s in sources:
            yield s, t["trigger"], t["dest"]


@pytest.mark.parametrize("chart", [activity, tic_input, connection])
def test_every_transition_from_a_stub_model(chart):
    for source, trigger, dest in all_paths(chart):
        model = Stub()
        changes = []
        m = statecharts.build(chart.__name__.split(".")[-1], model,
                              on_change=lambda *a: changes.append(a))
        m.set_state(source)
        assert statecharts.fire(model, trigger), (source, trigger)
        assert model.state == dest
        assert changes == [(chart.NAME, source, dest, trigger)]


@pytest.mark.parametrize("chart", [activity, tic_input, connection])
def test_undeclared_triggers_are_refused_and_logged(chart, caplog):
    declared = set(all_paths(chart))
    triggers = {t for _, t, _ in declared}
    for state in chart.STATES:
        for trigger in triggers:
            if any(s == state and t == trigger for s, t, _ in declared):
                continue
            model = Stub()
            m = statecharts.build(chart.__name__.split(".")[-1], model)
            m.set_state(state)
            assert not statecharts.fire(model, trigger)
            assert model.state == state
    assert "invalid trigger" in caplog.text


def test_no_auto_transitions():
    model = Stub()
    statecharts.build("tic_input", model)
    assert not hasattr(model, "to_reading")


def test_every_state_has_a_led():
    assert set(activity.LED) == set(activity.STATES)
    assert set(tic_input.LED) == set(tic_input.STATES)
