"""What one training step costs colab_magic in its Keras hooks, this tree against an earlier one.

Run: python bench/seam_cost.py [--old DIR] [--pairs 5] [--calls 200000]

Each measurement is a fresh interpreter that calls the per-step hooks Keras would call (batch begin,
batch end) ``--calls`` times, through everything colab_magic runs for them: in this tree the Keras
callback, the fit's recording (the FitObserver seam), its step timer and the stop check; in an
earlier tree (``--old``, a worktree of a commit before the seam, e.g. ``git worktree add /tmp/old
7096b5e``) its StepTimer callback. Pairs are interleaved and the CPU time (process_time) per step is
reported with wall time beside it, since this machine's wall time swings.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = r'''
import json, sys, time, types
sys.path.insert(0, sys.argv[1])
calls = int(sys.argv[2])
from colab_magic import timing
if hasattr(timing.StepTimer, "on_train_batch_end"):  # before the seam: the timer was the callback
    hooks = timing.StepTimer()
    hooks.set_params({"epochs": 1, "steps": calls, "verbose": 0})
    done = lambda: None
else:
    try:
        from colab_magic.keras_callback import ObserverCallback
    except ImportError:  # a tree from before the callback had a module of its own
        from colab_magic.keras_loop import ObserverCallback
    from colab_magic.observer import FitFacts
    from colab_magic.recorder import CellFits
    fit = CellFits().begin("m", lambda: FitFacts("keras", "m", "?"))
    import inspect
    clock = {}
    if "clock" in inspect.signature(ObserverCallback.__init__).parameters:  # from issue 28 on: it times itself
        from colab_magic.callback_clock import CallbackClock
        clock = {"clock": CallbackClock(lambda: 0)}
    hooks = ObserverCallback(fit, types.SimpleNamespace(stop_training=False), **clock)
    hooks.set_params({"epochs": 1, "steps": calls, "verbose": 0})
    done = fit.fit_ended
hooks.on_train_begin()
hooks.on_epoch_begin(0)
wall, cpu = time.perf_counter(), time.process_time()
for i in range(calls):
    hooks.on_train_batch_begin(i)
    hooks.on_train_batch_end(i)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
done()
print(json.dumps({"wall_us": 1e6 * wall / calls, "cpu_us": 1e6 * cpu / calls}))
'''


def measure(tree: str, calls: int) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, tree, str(calls)], capture_output=True, text=True,
                         timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", help="a worktree of an earlier commit to set beside this one")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    trees = {"this tree": HERE} | ({"old tree": args.old} if args.old else {})
    found: dict[str, list[dict]] = {name: [] for name in trees}
    for _ in range(args.pairs):
        for name, tree in trees.items():
            found[name].append(measure(tree, args.calls))
    for name, runs in found.items():
        cpu = [r["cpu_us"] for r in runs]
        wall = [r["wall_us"] for r in runs]
        print(f"{name}: {statistics.median(cpu):.2f} us CPU per step (median of {len(cpu)}; "
              f"{min(cpu):.2f}-{max(cpu):.2f}), wall {statistics.median(wall):.2f} us")
    if args.old:
        ratios = [a["cpu_us"] / b["cpu_us"] for a, b in zip(found["this tree"], found["old tree"], strict=True)]
        print(f"this tree / old tree, per interleaved pair: median {statistics.median(ratios):.2f}x "
              f"({min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
