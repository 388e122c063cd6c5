"""Are --compare's intervals calibrated, and what do --compare and --whatif cost?

Run: python bench/compare.py [--reps 20] [--samples 50000] [--whatif] [--threads N]

The article's CIFAR-10 CNN on synthetic data (50,000 samples, batch 32: 1,563 steps an epoch), fitted
for 2 epochs under `%%timed_fit --compare` (and `--whatif` with --whatif). The comparison times a copy
on the CPU for about 0.5 s after compiling and warming up, and projects an epoch with a 95% interval.

Calibration: the share of runs whose measured second epoch (the first also compiles, which the
projection leaves out on purpose) lands inside the projected epoch's interval; target at least 90%.
The projection's fixed cost per epoch (time outside the steps) is measured on the user's fit, here
that same second epoch, so the line also checks the part that is predicted from the copy alone:
steps per epoch x the interval of the mean step, against the time the epoch spent in its steps.
Cost: the comparison's and the what-if's wall time, each against 10% of the measured epoch.
"""

import argparse
import statistics
import sys

from article import CIFAR_CNN, CIFAR_DATA  # bench/ is the script's folder, so on sys.path
from IPython.core.interactiveshell import InteractiveShell

SETUP = CIFAR_CNN + """
import time
class EpochClock(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.start
""" + CIFAR_DATA


def inside(value, interval) -> bool:
    return interval is not None and interval[0] <= value <= interval[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--whatif", action="store_true", help="also run --whatif and report its cost")
    parser.add_argument("--next", action="store_true",
                        help="out of sample: after each cell, a plain model.fit(x, y, epochs=1) of the same model; "
                             "is that next epoch inside the projected interval?")
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow's intra- and inter-op threads (default: TensorFlow's own choice)")
    args = parser.parse_args()
    ip = InteractiveShell.instance()
    if args.threads:
        import tensorflow as tf  # before anything runs: TensorFlow fixes its thread pools on first use

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        print(f"TensorFlow limited to {args.threads} thread(s)")
    ip.run_line_magic("load_ext", "colab_magic")
    ip.run_cell(SETUP.format(samples=args.samples)).raise_error()
    hits, step_hits, widths, costs, whatif_costs, next_hits = [], [], [], [], [], []
    flags = "--compare" + (" --whatif" if args.whatif else "")
    for rep in range(args.reps):
        ip.run_cell(
            f"%%timed_fit {flags} --no-history -q -v R\n"
            "model = cifar_cnn()\nmodel.fit(x, y, batch_size=32, epochs=2, verbose=0)"
        ).raise_error()
        r = ip.user_ns["R"]
        epochs = r.reports[0].epochs
        measured = epochs[1].time_s
        c = r.comparisons[0]
        cpu = c.runs[0]
        lo, hi = cpu.projected_epoch_interval_s
        step_interval = [c.steps_per_epoch * v for v in cpu.step_mean_interval_s]
        hit, step_hit = inside(measured, (lo, hi)), inside(epochs[1].steps_s, step_interval)
        width = 100 * (hi - lo) / 2 / cpu.projected_epoch_s
        hits.append(hit)
        step_hits.append(step_hit)
        widths.append(width)
        costs.append(100 * c.wall_s / measured)
        line = (
            f"rep {rep + 1}: epoch 2 measured {measured:.1f} s ({epochs[1].steps_s:.1f} s in steps, "
            f"{c.fixed_s:.2f} s outside); projected {cpu.projected_epoch_s:.1f} s ({lo:.1f}-{hi:.1f}, +-{width:.0f}%) "
            f"{'inside' if hit else 'OUTSIDE'}; steps alone {step_interval[0]:.1f}-{step_interval[1]:.1f} s "
            f"{'inside' if step_hit else 'OUTSIDE'}; timed {cpu.timed_steps} steps in {cpu.timed_s:.2f} s, mean "
            f"{1000 * cpu.step_mean_s:.2f} ms vs the epoch's {1000 * epochs[1].steps_s / epochs[1].steps:.2f} ms; "
            f"--compare took {c.wall_s:.2f} s = {costs[-1]:.1f}% of the epoch"
        )
        if args.next:  # the same model, the same data, a plain fit of one epoch right after the cell
            ip.run_cell("clock = EpochClock()\nmodel.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[clock])"
                        ).raise_error()
            following = ip.user_ns["clock"].seconds
            next_hits.append(inside(following, (lo, hi)))
            line += f"; next epoch {following:.1f} s {'inside' if next_hits[-1] else 'OUTSIDE'}"
        if args.whatif:
            w = r.whatifs[0]
            whatif_costs.append(100 * w.wall_s / measured)
            runs = "; ".join(f"{run.variant} " + (f"{run.speedup:.2f}x ({run.speedup_interval[0]:.2f}-"
                                                   f"{run.speedup_interval[1]:.2f})" if run.speedup_interval
                                                   else f"error: {run.error}")
                             for run in w.runs)
            left = f"; left out for the budget: {','.join(w.left_out)}" if w.left_out else ""
            line += f"; --whatif took {w.wall_s:.2f} s = {whatif_costs[-1]:.1f}% ({runs or 'none ran'}{left})"
        print(line, flush=True)
    n = len(hits)
    share = sum(hits) / n
    ok_cal = share >= 0.9
    ok_cost = all(c <= 10 for c in costs)
    print(f"calibration: measured epoch inside its 95% interval in {sum(hits)} of {n} runs ({100 * share:.0f}%, "
          f"target >= 90%) {'ok' if ok_cal else 'MISSED'}; steps alone inside in {sum(step_hits)} of {n}")
    if next_hits:
        ok_cal = ok_cal and sum(next_hits) / n >= 0.9
        print(f"out of sample: the next epoch (a plain fit after the cell) inside the projected interval in "
              f"{sum(next_hits)} of {n} runs ({100 * sum(next_hits) / n:.0f}%, target >= 90%)")
    print(f"interval half-width: median +-{statistics.median(widths):.0f}%, range {min(widths):.0f}-{max(widths):.0f}%")
    print(f"--compare cost: median {statistics.median(costs):.1f}% of an epoch, max {max(costs):.1f}% "
          f"(target <= 10%) {'ok' if ok_cost else 'MISSED'}")
    ok_whatif = True
    if whatif_costs:
        ok_whatif = all(c <= 10 for c in whatif_costs)
        print(f"--whatif cost: median {statistics.median(whatif_costs):.1f}% of an epoch, max {max(whatif_costs):.1f}% "
              f"(target <= 10%) {'ok' if ok_whatif else 'MISSED'}")
    ok = ok_cal and ok_cost and ok_whatif
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
