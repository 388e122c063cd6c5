"""Does a default --whatif keep within its budget, and what does it run?

Run: python bench/whatif_budget.py [--reps 3] [--samples 50000] [--budgets 10,30,100]

The article's CIFAR-10 CNN on synthetic data (batch 32), one epoch under `%%timed_fit --whatif --budget B`
(no --compare: the what-if times the model as it is itself). For each budget: what the what-if cost in
% of the measured epoch, what it ran and left out. Target: the cost at most the budget in every run
(a trial that cannot fit is not run; the last one run may overrun its estimate by its own noise).
"""

import argparse
import statistics
import sys

from article import CIFAR_CNN, CIFAR_DATA  # bench/ is the script's folder, so on sys.path
from IPython.core.interactiveshell import InteractiveShell

SETUP = CIFAR_CNN + CIFAR_DATA


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--budgets", default="10,30,100")
    args = parser.parse_args()
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "colab_magic")
    ip.run_cell(SETUP.format(samples=args.samples)).raise_error()
    ok = True
    for budget in [float(b) for b in args.budgets.split(",")]:
        costs = []
        for rep in range(args.reps):
            ip.run_cell(f"%%timed_fit --whatif --budget {budget:g} --no-history -q -v R\n"
                        "model = cifar_cnn()\nh = model.fit(x, y, batch_size=32, epochs=1, verbose=0)").raise_error()
            r = ip.user_ns["R"]
            epoch = r.reports[0].epochs[0].time_s
            w = r.whatifs[0]
            costs.append(100 * w.wall_s / epoch)
            ran = [run.variant for run in w.runs if run.report is not None]
            print(f"--budget {budget:g} rep {rep + 1}: epoch {epoch:.1f} s, budget {w.budget_s:.2f} s, --whatif took "
                  f"{w.wall_s:.2f} s = {costs[-1]:.1f}% of the epoch; as it is {'timed' if w.baseline else 'not run'}; "
                  f"ran {', '.join(ran) or 'nothing'}; left out {','.join(w.left_out) or 'nothing'}; "
                  f"--budget that would hold all: {w.needed_budget}", flush=True)
        within = sum(c <= budget for c in costs)
        ok = ok and within == len(costs)
        print(f"--budget {budget:g}: cost median {statistics.median(costs):.1f}%, max {max(costs):.1f}% of an epoch; "
              f"within the budget in {within} of {len(costs)} runs")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
