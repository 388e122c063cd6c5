"""Verdicts on the time outside the steps: an epoch that waits before its first step, a slow callback,
validation that costs more than it should. Each reads only the report's per-epoch breakdown and its
callbacks' times (colab_magic.fit_report), so they are tested on synthetic reports and on real fits.
"""

from __future__ import annotations

from .parts import Finding
from .report import FitReport
from .units import fmt_s

# An epoch is stalled at its start when this share of it and at least EPOCH_START_MIN_S pass before its
# first step. The quickstart's CNN, 50,000 images, 2 vCPUs (bench/epoch_start.py, 2026-12-02): epochs
# without the stall spend at most 5% there (0.37 s of a first epoch's 7.6 s; later ones 0.00-0.01 s),
# stalled ones 1.6-3.6 s, 16-32% of the epoch (42% in issue 28's run): 10% lies between the two.
EPOCH_START_SHARE = 0.10
EPOCH_START_MIN_S = 1.0
# One callback is slow when its hooks take this share of the fit's epochs: above the 8-14% by which
# this machine's own epochs vary (bench/machine_noise.py), a saving worth having.
SLOW_CALLBACK_SHARE = 0.10
# Validation is heavy when it takes at least a quarter of the epochs' time.
VALIDATION_SHARE = 0.25

CALLBACK_FIX = ("run it less often (ModelCheckpoint(save_freq=...) or every few epochs, a logger every N "
                "batches), write to the local disk and copy to Drive at the end, and keep .numpy() and "
                "printing out of batch hooks")
VALIDATION_FIX = ("fit(..., validation_freq=N) validates every N epochs; or a smaller validation set, or a "
                  "larger batch for it (fit(..., validation_batch_size=...))")


def _closed(r: FitReport) -> list:
    return [e for e in r.epochs if e.time_s]


def epoch_start(r: FitReport) -> Finding | None:
    """The worst epoch start: time before the first step (the data iterator set up, and on TensorFlow
    the previous epoch's closed)."""
    stalled = [e for e in _closed(r) if e.before_steps_s is not None and e.before_steps_s >= EPOCH_START_MIN_S
               and e.before_steps_s >= EPOCH_START_SHARE * e.time_s]
    if not stalled:
        return None
    worst = max(stalled, key=lambda e: e.before_steps_s / e.time_s)
    share = 100 * worst.before_steps_s / worst.time_s
    closed = _closed(r)
    evidence = (f"{fmt_s(worst.before_steps_s)} of {fmt_s(worst.time_s)} before the first step of epoch "
                f"{worst.epoch}" + (f"; {len(stalled)} of {len(closed)} epochs stalled at their start"
                                    if len(closed) > 1 else ""))
    if r.input_kind in ("numpy", "tf.data") and r.backend == "tensorflow":
        fix = NUMPY_FIX
    else:
        fix = ("set the data up once, before fit: work that runs at each epoch's start (a PyDataset's "
               "on_epoch_end, shuffling a large array, a tf.data pipeline without .cache()) moves out of it")
    return Finding("epoch_start", f"Epoch starts stall: {share:.0f}% of epoch {worst.epoch} before its first step",
                   evidence, fix, "a repeating pipeline and steps_per_epoch" if fix is NUMPY_FIX else "set the data up once")


# Measured on the quickstart's CNN, 50,000 images, 3 epochs, 2 vCPUs (bench/epoch_start.py, 2026-12-02):
# before the first step of a later epoch, NumPy arrays stalled 1.6-2.8 s in 6 of 14 epochs, a tf.data
# pipeline built once 3.3-3.6 s in 4 of 14, shuffle=False in 3 of 4, tensors in 2 of 4; the same
# pipeline with .repeat() and steps_per_epoch in 0 of 10 (0.00 s each): Keras then keeps one iterator.
NUMPY_FIX = ("give fit one pipeline that repeats, and the steps per epoch, so that Keras keeps one data "
             "iterator for the whole fit instead of closing one and opening another at each epoch's start: "
             "ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(10_000).batch(32).repeat()"
             ".prefetch(tf.data.AUTOTUNE); model.fit(ds, steps_per_epoch=len(x) // 32, ...) (measured: no "
             "stall in 10 later epochs, against 1.6-3.6 s in 10 of 28 with arrays or a pipeline "
             "without .repeat())")


def slow_callback(r: FitReport) -> Finding | None:
    """The slowest of the user's callbacks, when it costs a share of the fit worth removing."""
    total = sum(e.time_s for e in _closed(r))
    if not r.callbacks or total <= 0:
        return None
    slowest = r.callbacks[0]
    if slowest.total_s < SLOW_CALLBACK_SHARE * total:
        return None
    per_epoch = slowest.total_s / max(1, len(_closed(r)))
    return Finding("slow_callback",
                   f"Slow callback: {slowest.name} takes {100 * slowest.total_s / total:.0f}% of the fit",
                   f"{slowest.name}: {fmt_s(per_epoch)} per epoch, {fmt_s(slowest.total_s)} of the epochs' "
                   f"{fmt_s(total)}", CALLBACK_FIX, f"run {slowest.name} less often")


def validation_heavy(r: FitReport) -> Finding | None:
    closed = _closed(r)
    total = sum(e.time_s for e in closed)
    val = sum(e.val_s for e in closed)
    if total <= 0 or val < VALIDATION_SHARE * total:
        return None
    return Finding("validation_heavy", f"Validation takes {100 * val / total:.0f}% of the fit",
                   f"validation {fmt_s(val)} of the epochs' {fmt_s(total)}", VALIDATION_FIX,
                   "validate every few epochs (validation_freq)")
