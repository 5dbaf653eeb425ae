"""Dispatcher timers and deferred deletion, driven with a bare Dispatcher
(no Worker): timers fire in deadline order, disable and re-enable, re-arm
from their own callback, survive a failing neighbour, and an object handed
to deferred_delete() lives until the loop turn ends.

Through TimerForTest (ext/for_test.pyx): the tests state behaviour, not the
timer API. Deadlines are generous: the machine may be loaded.
"""
import gc
import random
import weakref

from envoy_fast._worker import (Dispatcher, TimerForTest, deferred_delete_for_test,
                                dispatcher_exit_for_test, handler_errors_for_test)


def make_timer(d, fired, name):
    return TimerForTest(d, lambda: fired.append(name))


def test_timers_fire_in_deadline_order_not_enable_order():
    d = Dispatcher()
    fired = []
    timers = [make_timer(d, fired, name) for name in ("c", "a", "b")]
    for t, delay in zip(timers, (0.06, 0.02, 0.04)):
        t.enable(delay)
    d.run_for_test(0.3)
    assert fired == ["a", "b", "c"]
    assert not any(t.enabled for t in timers)


def test_many_timers_fire_sorted_by_deadline():
    d = Dispatcher()
    fired = []
    rnd = random.Random(7)
    delays = [rnd.randrange(1, 100) / 1000.0 for _ in range(300)]
    timers = []
    for i, delay in enumerate(delays):
        t = make_timer(d, fired, i)
        t.enable(delay)
        timers.append(t)
    d.run_for_test(0.4)
    assert sorted(fired) == list(range(300)), "every timer fires exactly once"
    fired_delays = [delays[i] for i in fired]
    assert fired_delays == sorted(fired_delays)


def test_disabled_timer_does_not_fire_and_can_be_enabled_again():
    d = Dispatcher()
    fired = []
    t = make_timer(d, fired, "t")
    t.enable(0.02)
    assert t.enabled
    t.disable()
    assert not t.enabled
    t.disable()                 # disabling twice is harmless
    d.run_for_test(0.1)
    assert fired == []
    t.enable(0.02)
    d.run_for_test(0.2)
    assert fired == ["t"]


def test_enable_on_an_armed_timer_moves_its_deadline():
    d = Dispatcher()
    fired = []
    early = make_timer(d, fired, "moved")
    marker = make_timer(d, fired, "marker")
    early.enable(0.02)
    early.enable(0.15)          # re-arm later: fires once, after the marker
    marker.enable(0.08)
    d.run_for_test(0.4)
    assert fired == ["marker", "moved"]


def test_timer_rearms_itself_from_its_callback():
    d = Dispatcher()
    fired = []

    def tick():
        fired.append(len(fired))
        if len(fired) < 5:
            t.enable(0.005)

    t = TimerForTest(d, tick)
    t.enable(0.005)
    d.run_for_test(0.5)
    assert fired == [0, 1, 2, 3, 4]
    assert not t.enabled


def test_callback_disables_a_timer_due_in_the_same_turn():
    # Same deadline: whichever fires first disables the other, which then
    # never fires although it was due in this very turn.
    d = Dispatcher()
    fired = []
    timers = {}

    def cb(name, other):
        def run():
            fired.append(name)
            timers[other].disable()
        return run

    timers["x"] = TimerForTest(d, cb("x", "y"))
    timers["y"] = TimerForTest(d, cb("y", "x"))
    timers["x"].enable(0.02)
    timers["y"].enable(0.02)
    d.run_for_test(0.2)
    assert len(fired) == 1
    assert not timers["x"].enabled and not timers["y"].enabled


def test_failing_callback_is_counted_and_the_others_still_fire():
    errors = []
    d = Dispatcher(error_log=errors.append)
    fired = []

    def boom():
        raise RuntimeError("timer callback failed")

    bad = TimerForTest(d, boom)
    good = make_timer(d, fired, "good")
    bad.enable(0.01)
    good.enable(0.03)
    d.run_for_test(0.2)
    assert fired == ["good"]
    assert handler_errors_for_test(d) == 1
    assert len(errors) == 1 and "timer callback failed" in errors[0]


def test_exit_from_a_callback_returns_early():
    d = Dispatcher()
    fired = []
    stopper = TimerForTest(d, lambda: dispatcher_exit_for_test(d))
    later = make_timer(d, fired, "later")
    stopper.enable(0.01)
    later.enable(0.5)
    d.run_for_test(5.0)         # returns at the stopper, well before 5 s
    assert fired == []
    assert later.enabled


class Thing:
    pass


def test_deferred_delete_keeps_the_object_until_the_turn_ends():
    d = Dispatcher()
    seen = []
    holder = {"thing": Thing()}
    ref = weakref.ref(holder["thing"])

    def same_turn():
        seen.append(("same turn", ref() is not None))

    later = TimerForTest(d, same_turn)

    def delete_it():
        deferred_delete_for_test(d, holder.pop("thing"))
        seen.append(("after delete", ref() is not None))
        later.enable(0.0)       # due now: runs in this same turn

    a = TimerForTest(d, delete_it)
    a.enable(0.02)
    d.run_for_test(0.2)
    gc.collect()
    assert seen == [("after delete", True), ("same turn", True)]
    assert ref() is None, "freed once the loop moved on"


def test_dropping_a_timer_object_disarms_nothing_it_does_not_own():
    # A TimerForTest armed then dropped: the Dispatcher's heap holds the
    # timer, so it still fires (Envoy's timers are owned; ours are held
    # while armed).
    d = Dispatcher()
    fired = []
    make_timer(d, fired, "dropped").enable(0.01)
    gc.collect()
    d.run_for_test(0.1)
    assert fired == ["dropped"]


def test_timers_of_one_duration_fire_in_arming_order_and_leave_from_anywhere():
    # One duration (as every connection's idle timeout): the timers armed
    # over several turns fire in the order they were armed; those disarmed
    # at the head, in the middle and at the tail of that order never fire,
    # and one re-armed with another duration fires at its new deadline.
    d = Dispatcher()
    fired = []
    timers = []
    for i in range(12):
        t = make_timer(d, fired, i)
        t.enable_common(0.1)
        timers.append(t)
        d.run_for_test(0.004)   # a later deadline for each
    for i in (0, 5, 11):
        timers[i].disable()
        assert not timers[i].enabled
    timers[3].enable_common(0.3)    # now due after the others
    assert timers[3].enabled
    d.run_for_test(0.6)
    assert fired == [1, 2, 4, 6, 7, 8, 9, 10, 3]
    assert not any(t.enabled for t in timers)


def test_timers_past_the_duration_queues_still_fire_in_deadline_order():
    # More distinct shared durations than there are duration queues: the
    # rest go to the heap, with the plain timers, and all interleave by
    # deadline.
    d = Dispatcher()
    fired = []
    delays = [0.01 * k for k in range(20, 0, -1)] * 3
    timers = []
    for i, delay in enumerate(delays):
        t = make_timer(d, fired, i)
        if i % 4:
            t.enable_common(delay)
        else:
            t.enable(delay + 0.001)
            delays[i] = delay + 0.001
        timers.append(t)
    d.run_for_test(0.5)
    assert sorted(fired) == list(range(len(delays)))
    fired_delays = [delays[i] for i in fired]
    assert fired_delays == sorted(fired_delays)
