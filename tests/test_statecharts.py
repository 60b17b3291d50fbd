"""The state machines: declared as data, rendered charts up to date, every transition works."""
import pytest

import statecharts
from ticgw import registry
from statecharts import activity, connection, modem, tic_input


@pytest.mark.parametrize("name", registry.charts(registry.BUILTIN))
def test_rendered_chart_is_up_to_date(name):
    path = statecharts.HERE / ("%s.md" % name)
    assert path.exists(), "run `ticgw statecharts` to render %s" % name
    assert path.read_text(encoding="utf-8") == statecharts.mermaid(name), \
        "statecharts/%s.md is stale: run `ticgw statecharts`" % name


def stub(chart):
    """A model with every callback the chart names, each recording its calls."""
    calls = []

    def method(name):
        return lambda self, event: calls.append(name)

    cls = type("Stub", (), {name: method(name) for _, name in statecharts.callbacks(chart)})
    model = cls()
    model.calls = calls
    model.timeout = lambda state: None
    return model


def all_paths(chart):
    """Every declared (source, trigger, dest) triple."""
    for t in chart.TRANSITIONS:
        sources = t["source"] if isinstance(t["source"], (list, tuple)) else [t["source"]]
        for s in sources:
            yield s, t["trigger"], t["dest"]


CHARTS = [activity, tic_input, connection, modem]


def name_of(chart):
    return chart.__name__.split(".")[-1]


@pytest.mark.parametrize("chart", CHARTS)
def test_every_transition_from_a_stub_model(chart):
    for source, trigger, dest in all_paths(chart):
        model = stub(chart)
        changes = []
        m = statecharts.build(name_of(chart), model, on_change=lambda *a: changes.append(a))
        m.set_state(source)
        assert statecharts.fire(model, trigger), (source, trigger)
        assert model.state == (dest or source)
        assert changes == ([] if dest is None else [(source, dest, trigger)])


@pytest.mark.parametrize("chart", CHARTS)
def test_undeclared_triggers_are_refused_and_logged(chart, caplog):
    declared = set(all_paths(chart))
    triggers = {t for _, t, _ in declared}
    refused = 0
    for state in statecharts.state_names(chart):
        for trigger in triggers:
            if any(s == state and t == trigger for s, t, _ in declared):
                continue
            model = stub(chart)
            m = statecharts.build(name_of(chart), model)
            m.set_state(state)
            assert not statecharts.fire(model, trigger)
            assert model.state == state
            refused += 1
    assert refused and "invalid trigger" in caplog.text


@pytest.mark.parametrize("chart", CHARTS)
def test_fault_path_and_timeouts_are_declared(chart):
    """The fault trigger leaves (or is handled in) every state; a timeout's trigger is declared
    from its state."""
    declared = set((s, t) for s, t, _ in all_paths(chart))
    states = statecharts.state_names(chart)
    assert chart.FAULT and all((s, chart.FAULT) in declared for s in states), chart.NAME
    for state, trigger in statecharts.timeouts(chart).items():
        assert state in states and (state, trigger) in declared, (state, trigger)


def test_every_callback_exists_on_the_models_the_services_use():
    from services.acquisition.inputs import TicInput
    from services.runtime.service import _Activity
    from services.modem.service import ModemModel
    from services.uplink.service import ConnectionModel
    for chart, model in ((activity, _Activity), (tic_input, TicInput),
                         (connection, ConnectionModel), (modem, ModemModel)):
        for where, name in statecharts.callbacks(chart):
            assert callable(getattr(model, name, None)), "%s: %s.%s (%s)" % (
                chart.NAME, model.__name__, name, where)
        assert callable(getattr(model, "timeout", None))


def test_no_auto_transitions():
    model = stub(tic_input)
    statecharts.build("tic_input", model)
    assert not hasattr(model, "to_reading")


def test_every_state_has_a_led():
    assert set(activity.LED) == set(statecharts.state_names(activity))
    assert set(tic_input.LED) == set(statecharts.state_names(tic_input))
