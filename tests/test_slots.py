"""Sampling slots, the pure rules: a slot is sampled once at most, a backward step holds the
samples back until the clock passes the last one, a forward step stamps with the new clock and
counts the slots it jumped over; steps are told from the clock merely running."""
import pytest

from services.acquisition.slots import (RECHECK, Due, Slots, StepWatch, load_last_slot,
                                        save_last_slot, skipped_message, step_message)

T0 = 1_800_000_000.0        # on a 10-minute boundary
P = 600.0


def run(slots: Slots, times) -> list[Due]:
    """Look at the clock at each of ``times``; sample what is due."""
    out = []
    for now in times:
        due = slots.due(now)
        if due is not None:
            slots.taken(due)
            out.append(due)
    return out


def test_one_slot_per_boundary_at_the_boundary_itself():
    slots = Slots(P, T0 - 300)                      # started mid-period: T0 - 600 is not due
    assert slots.due(T0 - 1) is None
    assert run(slots, [T0, T0 + 0.5, T0 + 599, T0 + 600, T0 + 601]) == [Due(T0), Due(T0 + P)]


def test_a_late_look_stamps_the_boundary_it_belongs_to():
    slots = Slots(P, T0)
    assert run(slots, [T0 + P + 3.7]) == [Due(T0 + P)]


def test_backward_step_never_samples_a_slot_twice():
    slots = Slots(P, T0 - P)
    seen = run(slots, [T0, T0 + P, T0 + 2 * P + 10])          # sampled T0 .. T0+2P
    # the clock goes back 30 minutes: the same times come round again
    back = [T0 + 2 * P + 10 - 1800 + k for k in range(0, 2400, 2)]
    seen += run(slots, back)
    stamps = [d.slot for d in seen]
    assert len(stamps) == len(set(stamps)) and stamps == sorted(stamps)
    # held until the clock passed the last slot sampled, then the next one
    assert stamps == [T0, T0 + P, T0 + 2 * P, T0 + 3 * P]
    assert slots.held(T0 + P) and not slots.held(T0 + 3 * P)


def test_forward_step_stamps_with_the_new_clock_and_counts_the_jumped_slots():
    slots = Slots(P, T0)
    # 2 minutes after T0 the clock jumps one hour ahead
    (due,) = run(slots, [T0 + 120, T0 + 120 + 3600])
    assert due == Due(T0 + 3600, skipped=5)          # T0+600 .. T0+3000 never sampled
    assert run(slots, [T0 + 3600 + 300, T0 + 4200]) == [Due(T0 + 4200)]


def test_forward_step_within_a_period_skips_nothing():
    slots = Slots(P, T0)
    assert run(slots, [T0 + 100, T0 + 500, T0 + 610]) == [Due(T0 + P)]


def test_a_floor_off_the_boundaries_counts_only_whole_slots():
    # the last slot of a 7-minute period (a restart with another DAQ_Period)
    slots = Slots(P, T0 + 420)
    assert slots.due(T0 + P) == Due(T0 + P, 0)
    assert slots.due(T0 + 3 * P) == Due(T0 + 3 * P, 2)   # T0+600 and T0+1200
    assert slots.wait(T0 + P - 1) == pytest.approx(1.0)  # aims at the next boundary
    assert slots.wait(T0 + 300, recheck=1000) == pytest.approx(300)


def test_wait_looks_again_soon_and_never_late():
    slots = Slots(P, T0)
    assert slots.wait(T0 + 1) == RECHECK                 # far boundary: look every few seconds
    assert slots.wait(T0 + P - 0.5) == pytest.approx(0.5)
    assert slots.wait(T0 + P) == 0.0                     # due now
    slots.taken(slots.due(T0 + P))
    # held back after a backward step: looks every few seconds, aims at the slot after the last
    assert slots.wait(T0 + 1) == RECHECK
    assert slots.wait(T0 + 2 * P - 1) == pytest.approx(1.0)
    assert slots.wait(T0 + P - 1e-7) > 0                 # a timer early by a hair: not a busy loop
    assert Slots(1.0, T0).wait(T0 + 0.25) == pytest.approx(0.75)


def test_step_watch_tells_steps_from_the_clock_running():
    watch = StepWatch(threshold=2.0)
    assert watch.look(100.0, T0) is None                 # the first look: nothing to compare
    assert watch.look(110.0, T0 + 10) is None            # running
    assert watch.look(112.0, T0 + 13.5) is None          # slewed a little
    assert watch.look(113.0, T0 + 14.5 + 3600) == pytest.approx(3600)
    assert watch.look(114.0, T0 + 15.5 + 3600) is None   # once
    assert watch.look(116.0, T0 + 17.5 + 1800) == pytest.approx(-1800)


def test_journal_texts():
    assert step_message(3600.2) == "Horloge avancée de 3600 s"
    assert step_message(-1800) == "Horloge reculée de 1800 s"
    assert step_message(3600, 5) == ("Horloge avancée de 3600 s : 5 période(s) d'acquisition "
                                      "sans échantillon")
    assert skipped_message(2) == "2 période(s) d'acquisition sans échantillon"


def test_last_slot_on_disk(tmp_path):
    assert load_last_slot(tmp_path) is None
    save_last_slot(tmp_path, T0 + P)
    assert load_last_slot(tmp_path) == T0 + P
    (tmp_path / "last_slot").write_text("garbage")
    assert load_last_slot(tmp_path) is None


def test_period_must_be_positive():
    with pytest.raises(ValueError):
        Slots(0, T0)
