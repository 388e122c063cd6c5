"""How often the input check calls a pipeline input-bound, on one that is and one that is not.

Run: python bench/input_check.py [--reps 20] [--sleep-ms 20] [--epochs 2] [--out FILE]

The pipeline of examples/input_pipeline.ipynb, its code cells run as they are but for the sleep: a
``map`` that sleeps per batch (a slow disk, using no CPU) before a 2-layer 2048-wide MLP, batch 32, 40
batches an epoch; synthetic data. Per rep, in one IPython shell, two fits under
``%%timed_fit --input-check on``:
- naive: the map one batch at a time, no prefetch (TensorFlow's prefetch injection off). The sleep
  adds to each step: it should be called highly input-bound (the interval's low end at 20% or more);
- fixed: the map in parallel, then prefetch. It should not be called input-bound at all.
Printed per fit: the user's mean step, the held-batch mean step, the wait share and its interval, the
verdict and what the check cost; then the counts and medians. Targets: naive highly input-bound in
every rep; fixed input-bound in none (a false alarm is what the interval is there to prevent).
"""

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
from pathlib import Path

from IPython.core.interactiveshell import InteractiveShell

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "input_pipeline.ipynb"
SLEEP = "time.sleep(0.020)"


def setup_code(sleep_ms: float) -> str:
    """The example notebook's own code cells (not its magics), with the map's sleep set: the bench
    measures exactly the pipeline the example shows."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    code = "\n".join(c for c in code if not c.lstrip().startswith("%"))
    if SLEEP not in code:
        raise SystemExit(f"{NOTEBOOK} no longer holds {SLEEP!r}: update this script")
    return code.replace(SLEEP, f"time.sleep({sleep_ms / 1000!r})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--sleep-ms", type=float, default=20.0)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--out", help="also write the output here")
    args = ap.parse_args()
    lines = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "colab_magic")
    ip.run_cell(setup_code(args.sleep_ms)).raise_error()
    import colab_magic
    say(f"colab_magic from {os.path.dirname(colab_magic.__file__)}")
    say(f"input check: {args.reps} reps, map sleeps {args.sleep_ms:g} ms per batch, {args.epochs} epochs of 40 steps")
    say(f"{'rep':>3}  {'pipeline':8}  {'step ms':>7}  {'held ms':>7}  {'wait':>5}  {'interval':>9}  {'check s':>7}  verdict")
    levels = {"naive": [], "fixed": []}
    widths, costs = [], []
    for rep in range(1, args.reps + 1):
        for name in ("naive", "fixed"):
            cell = (f"%%timed_fit --input-check on --no-history -q -v R\n"
                    f"make_model().fit({name}, epochs={args.epochs}, verbose=0)")
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                ip.run_cell(cell).raise_error()
            report = ip.user_ns["R"][0]
            check = report.input_wait
            found = [f.title.split(":")[0] for f in report.findings if f.rule == "input_bound"]
            level = found[0] if found else "not input-bound"
            levels[name].append(level)
            # (getattr: the same script also times the code from before the interval, for a side-by-side)
            low, high = getattr(check, "wait_share_interval", None) or (float("nan"), float("nan"))
            widths.append(100 * (high - low))
            costs.append(check.check_s)
            say(f"{rep:>3}  {name:8}  {1000 * check.step_s:7.1f}  {1000 * check.compute_step_s:7.1f}  "
                f"{100 * check.wait_share:4.0f}%  {100 * low:3.0f}-{100 * high:3.0f}%  {check.check_s:7.2f}  {level}")
    ip.user_ns.pop("R", None)
    say()
    highly = sum(level.startswith("Highly") for level in levels["naive"])
    alarms = sum(level != "not input-bound" for level in levels["fixed"])
    say(f"naive called highly input-bound: {highly} of {args.reps}  (target: all)")
    say(f"fixed called input-bound:        {alarms} of {args.reps}  (target: none)")
    widths = [w for w in widths if w == w] or [float("nan")]  # none from the code before the interval
    say(f"interval width: median {statistics.median(widths):.0f} points (min {min(widths):.0f}, max {max(widths):.0f})")
    say(f"check cost: median {statistics.median(costs):.2f} s (max {max(costs):.2f} s)")
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(lines) + "\n")
    sys.exit(0 if highly == args.reps and alarms == 0 else 1)


if __name__ == "__main__":
    main()
