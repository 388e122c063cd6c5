"""The step timer's bookkeeping, driven hook by hook with a fake clock (Keras supplies the base class)."""

import pytest

pytest.importorskip("keras")

from colab_magic.timing import StepTimer  # noqa: E402


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def timer_at(clock, spe=1):
    t = StepTimer(clock=clock, steps_per_execution=spe)
    t.fit_started(t.plan)
    t.epoch_started(0)
    return t


def step(t, clock, begin, end, at):
    clock.now = at
    t.step_ended(end)


def test_in_order_steps_first_kept_apart():
    clock = Clock()
    t = timer_at(clock)
    clock.now = 1.0
    t.step_started(0)
    for i, at in enumerate([3.0, 3.5, 4.0, 4.6]):  # first step 2.0 s (compile), then 0.5, 0.5, 0.6
        t.step_started(i)
        step(t, clock, i, i, at)
    clock.now = 5.0
    t.epoch_ended(0)
    assert t.first_step == pytest.approx(2.0)
    assert t.steps.step_stats().n == 3 and t.steps.step_stats().median == pytest.approx(0.5)
    e = t.epochs[0]
    assert e.steps == 4 and e.steps_s == pytest.approx(3.6) and e.end == 5.0 and e.train_end == 4.6
    assert e.step_median == pytest.approx(0.5)


def test_warmup_steps_are_timed_but_kept_out_of_the_steady_state():
    clock = Clock()
    t = StepTimer(clock=clock, warmup_steps=2)
    t.fit_started(t.plan)
    t.epoch_started(0)
    t.step_started(0)
    # compile 1.0 s, two warm-up steps of 0.3 s, then 0.1 s steps
    for i, at in enumerate([1.0, 1.3, 1.6, 1.7, 1.8, 1.9]):
        step(t, clock, i, i, at)
    t.epoch_ended(0)
    assert t.first_step == pytest.approx(1.0)
    assert t.steps.step_stats().n == 3 and t.steps.step_stats().mean == pytest.approx(0.1)
    assert t.epochs[0].steps == 6 and t.epochs[0].steps_s == pytest.approx(1.9)  # the epoch still holds them
    assert t.epochs[0].step_median == pytest.approx(0.1)


def test_steps_per_execution_with_a_short_last_execution():
    clock = Clock()
    t = timer_at(clock, spe=4)
    t.step_started(0)
    step(t, clock, 0, 3, 1.0)
    step(t, clock, 4, 7, 1.4)
    step(t, clock, 8, 9, 1.6)  # 10 steps in all: the last execution has 2
    t.epoch_ended(0)
    assert t.total_steps == 10 and t.executions == 3
    assert sorted(t.steps.values) == pytest.approx([0.1, 0.1])  # 0.4 s / 4 and 0.2 s / 2


def test_hooks_arriving_out_of_order_are_timed_in_step_order():
    clock = Clock()
    t = timer_at(clock)
    t.step_started(0)
    step(t, clock, 0, 0, 1.0)
    step(t, clock, 2, 2, 3.0)  # step 2's hook comes first ...
    assert t.total_steps == 1
    step(t, clock, 1, 1, 3.2)  # ... then step 1's: both had finished by 3.0
    step(t, clock, 3, 3, 4.0)
    assert t.total_steps == 4 and t.epochs[0].steps == 4
    assert t.epochs[0].steps_s == pytest.approx(4.0)  # epoch time is preserved exactly
    assert sorted(t.steps.values) == pytest.approx([0.0, 1.0, 2.0])


def test_interrupted_fit_times_what_arrived_and_ignores_late_hooks():
    clock = Clock()
    t = timer_at(clock)
    t.step_started(0)
    step(t, clock, 0, 0, 1.0)
    step(t, clock, 2, 2, 2.0)  # step 1's hook never comes: the fit was interrupted
    t.close()
    assert t.total_steps == 3 and t.epochs[0].step_median == pytest.approx(0.5)  # steps 1-2 in 1 s
    step(t, clock, 3, 3, 9.0)  # a worker delivering after the fit is over
    assert t.total_steps == 3


def test_progress_callback_duplicates_and_hooks_outside_an_epoch():
    clock = Clock()
    t = StepTimer(clock=clock, steps_per_execution=2)
    t.step_ended(1)  # before any epoch: ignored, not an error
    t.close()  # nothing to summarise
    assert t.total_steps == 0 and t.executions == 0
    t = StepTimer(clock=clock, steps_per_execution=2)
    t.fit_started(t.plan)
    t.epoch_started(0)
    t.step_ended(1)  # before the epoch's first batch began: ignored
    t.step_started(0)
    for end, at in ((1, 1.0), (3, 2.0), (3, 2.5), (5, 3.0)):  # (3, 2.5): the same step twice, counted once
        clock.now = at
        t.step_ended(end)
    t.epoch_ended(0)
    assert t.total_steps == 6 and t.executions == 3
    assert t.epochs[0].steps == 6 and t.steps.count == 2


def test_an_epoch_with_only_its_compiling_step_has_no_median():
    clock = Clock()
    t = timer_at(clock)
    t.step_started(0)
    clock.now = 2.0
    t.step_ended(0)
    t.epoch_ended(0)
    assert t.first_step == 2.0 and t.epochs[0].step_median is None and t.steps.count == 0
    t.close()
    assert t.closed and t.epochs[0].step_median is None


def test_a_timer_with_default_settings_takes_one_step_per_hook_and_keeps_the_fits_end():
    clock = Clock()
    t = StepTimer(clock=clock)  # no steps_per_execution: one step per hook
    t.fit_started(t.plan)
    t.epoch_started(0)
    t.step_started(0)
    for batch, at in ((0, 1.0), (2, 3.0), (1, 3.5), (3, 4.0)):  # step 2's hook ahead of step 1's
        step(t, clock, 0, batch, at)
    clock.now = 4.5
    t.epoch_ended(0)
    t.fit_ended()
    clock.now = 60.0  # the report is made later: the fit still ended at 4.5
    t.close()
    # steps 1 and 2 both finished by 3.0: step 1 takes that time, step 2 none
    assert (t.executions, t.total_steps, t.epochs[0].steps) == (4, 4, 4)
    assert sorted(t.steps.values) == [0.0, 1.0, 2.0]
    assert t.fit_end == 4.5


def test_validation_time_is_counted_per_epoch_and_kept_out_of_the_steps():
    clock = Clock()
    t = timer_at(clock)
    t.step_started(0)
    step(t, clock, 0, 0, 1.0)
    for start, end in ((1.0, 1.5), (2.0, 2.25)):  # evaluation runs twice in this epoch
        clock.now = start
        t.validation_started()
        clock.now = end
        t.validation_ended()
    clock.now = 3.0
    t.epoch_ended(0)
    t.close()
    epoch = t.epochs[0]
    assert (epoch.val_s, epoch.steps_s, epoch.end) == (0.75, 1.0, 3.0)


def drive(batches, warmup=0, spe=1):
    """A timer told steps one by one, and one told the same steps in batches (PyTorch's hot path)."""
    one, many = (StepTimer(clock=Clock(), warmup_steps=warmup, steps_per_execution=spe) for _ in range(2))
    for t in (one, many):
        t.fit_started(t.plan)
        t.epoch_started(0)
        t.clock.now = 0.5
        t.step_started(0)
    first = 0
    for ends in batches:
        for i, at in enumerate(ends):
            one.step_ended(first + i, at)
        many.steps_ended(first, ends)
        first += len(ends)
    for t in (one, many):
        t.epoch_ended(0)
    return one, many


def same(one, many):
    a, b = one.steps.step_stats(), many.steps.step_stats()
    assert (one.first_step, one.total_steps, one.executions) == (many.first_step, many.total_steps, many.executions)
    assert list(one.steps.values) == pytest.approx(list(many.steps.values))
    assert (a is None) == (b is None) and (a is None or (a.n, a.median, a.min, a.max) == pytest.approx((b.n, b.median, b.min, b.max)))
    e, f = one.epochs[0], many.epochs[0]
    assert (e.steps, e.train_end, e.step_median) == pytest.approx((f.steps, f.train_end, f.step_median))
    assert e.steps_s == pytest.approx(f.steps_s)


@pytest.mark.parametrize("warmup", [0, 2, 40])
def test_steps_told_in_batches_are_timed_as_one_by_one(warmup):
    ends = [1.0 + 0.01 * i + 0.003 * (i % 3) for i in range(30)]
    one, many = drive([ends[:1], ends[1:3], [], ends[3:17], ends[17:]], warmup=warmup)
    same(one, many)
    assert many.total_steps == 30 and many.first_step == pytest.approx(0.5)


def test_steps_told_in_batches_out_of_order_or_with_gaps_fall_back_to_one_by_one():
    # an end earlier than the one before (two threads), and a batch that does not follow on
    one, many = drive([[1.0, 1.1], [1.3, 1.2, 1.4], [1.5]])
    same(one, many)
    one, many = drive([[1.0, 2.0], [], [2.5]])
    many.steps_ended(7, [4.0])  # ahead of step 3: held until the earlier steps come, as step_ended holds it
    one.step_ended(7, 4.0)
    for t in (one, many):
        t.close_epoch()
    same(one, many)
    assert many.total_steps == 8


def test_steps_told_in_batches_after_the_fit_closed_are_ignored():
    t = timer_at(Clock())
    t.step_started(0)
    t.steps_ended(0, [1.0])
    t.close()
    t.steps_ended(1, [2.0, 3.0])
    assert t.total_steps == 1


def test_an_epochs_first_step_told_in_a_batch_is_timed_from_its_start():
    # PyTorch tells the first step of each later epoch through steps_ended too
    one, many = drive([[1.0, 1.1, 1.2]])
    for t in (one, many):
        t.epoch_started(1)
        t.clock.now = 2.0
        t.step_started(0)
    one.step_ended(0, 2.5)
    one.step_ended(1, 2.6)
    many.steps_ended(0, [2.5])
    many.steps_ended(1, [2.6])
    assert many.epochs[1].steps == 2 and many.epochs[1].steps_s == pytest.approx(0.6)
    assert list(many.steps.values) == pytest.approx(list(one.steps.values))
    assert many.epochs[1].steps_s == pytest.approx(one.epochs[1].steps_s)
