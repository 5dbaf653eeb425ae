"""Timers are a C callback plus a context, run by the Dispatcher's heap."""
from envoy_fast._worker import Dispatcher, TimerForTest


def test_timers_fire_in_deadline_order_once_each():
    d = Dispatcher()
    fired = []
    timers = [TimerForTest(d, lambda i=i: fired.append(i)) for i in range(5)]
    for i, delay in zip(range(5), (0.04, 0.01, 0.03, 0.0, 0.02)):
        timers[i].enable(delay)
    d.run_for_test(0.2)
    assert fired == [3, 1, 4, 2, 0]
    assert not any(t.enabled for t in timers)


def test_disable_and_rearm():
    d = Dispatcher()
    fired = []
    gone = TimerForTest(d, lambda: fired.append("disabled one"))
    gone.enable(0.01)
    count = []

    def again():
        count.append(1)
        if len(count) < 3:
            rearmed.enable(0.005)       # a timer re-arms itself from its callback

    rearmed = TimerForTest(d, again)
    rearmed.enable(0.0)
    gone.disable()
    # Re-enabling moves the deadline instead of adding a second entry.
    moved = TimerForTest(d, lambda: fired.append("moved"))
    moved.enable(0.01)
    moved.enable(0.02)
    d.run_for_test(0.15)
    assert fired == ["moved"]
    assert len(count) == 3


def test_a_failing_callback_is_logged_and_the_loop_goes_on():
    errors = []
    d = Dispatcher(error_log=errors.append)
    fired = []

    def boom():
        raise RuntimeError("boom")

    TimerForTest(d, boom).enable(0.0)
    after = TimerForTest(d, lambda: fired.append("after"))
    after.enable(0.01)
    d.run_for_test(0.1)
    assert fired == ["after"]
    assert len(errors) == 1 and "boom" in errors[0]
