"""PyTorch loops under %%timed_fit, against independent clocks: steps, the mean step, the DataLoader wait,
and what the hooks cost.

Run: python bench/torch_check.py [--epochs 2]

A small MLP (16 -> 256 -> 256 -> 1, batch 32) fed by a DataLoader whose Dataset sleeps a known time per
sample, in one IPython shell, on the CPU:
- steps: counted by the report, against the loop's own count;
- mean step: the report's, against an independent clock: the bench's own post-hook on the optimizer
  (registered on the optimizer itself, not the global hook colab_magic uses), the mean interval between
  consecutive steps within an epoch; target within 3%;
- the input wait: the report's share of a step spent in the DataLoader, against the loop's own timing
  of next() (the same cell, perf_counter around each next()); target within 5 points, with num_workers 0
  and 2;
What the hooks cost is measured by bench/overhead.py --torch.
"""

import argparse
import statistics
import sys

from IPython.core.interactiveshell import InteractiveShell

SETUP = '''
import time, torch
from torch.utils.data import DataLoader, Dataset
torch.manual_seed(0)
class Slow(Dataset):
    def __init__(self, n, sleep):
        self.n, self.sleep = n, sleep
        self.x, self.y = torch.randn(n, 16), torch.randn(n, 1)
    def __len__(self):
        return self.n
    def __getitem__(self, i):
        if self.sleep:
            time.sleep(self.sleep)
        return self.x[i], self.y[i]

def run(workers, sleep, epochs, n=2048):
    model = torch.nn.Sequential(torch.nn.Linear(16, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    ends, waits, steps = [], [], 0
    opt.register_step_post_hook(lambda o, a, k: ends.append(time.perf_counter()))
    loader = DataLoader(Slow(n, sleep), batch_size=32, num_workers=workers, persistent_workers=workers > 0)
    for epoch in range(epochs):
        ends.append(None)  # an epoch boundary: intervals do not cross it
        it = iter(loader)
        while True:
            t = time.perf_counter()
            try:
                xb, yb = next(it)
            except StopIteration:
                break
            waits.append((len(ends), time.perf_counter() - t))
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(xb), yb).backward()
            opt.step()
            steps += 1
    return ends, waits, steps
'''


def independent(ends: list, waits: list) -> tuple[float, float]:
    """The mean step between consecutive post-hooks within an epoch (each epoch's first step left out, as
    the report does), and the share of those steps spent in next()."""
    intervals, wait = [], 0.0
    wait_of = {}
    for index, seconds in waits:
        wait_of[index] = wait_of.get(index, 0.0) + seconds  # the wait before the step whose end is ends[index]
    for i in range(1, len(ends)):
        if ends[i] is not None and ends[i - 1] is not None:
            intervals.append(ends[i] - ends[i - 1])
            wait += wait_of.get(i, 0.0)
    return statistics.mean(intervals), wait / sum(intervals)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "colab_magic")
    ip.run_cell(SETUP).raise_error()
    ok = True
    for workers, sleep in ((0, 0.0005), (2, 0.0005)):
        ip.run_cell(f"%%timed_fit -q -v R --no-history\nends, waits, steps = run({workers}, {sleep}, {args.epochs})"
                    ).raise_error()
        report = ip.user_ns["R"][0]
        mean, share = independent(ip.user_ns["ends"], ip.user_ns["waits"])
        wait = report.input_wait
        step_err = 100 * (report.step.mean - mean) / mean
        points = 100 * (wait.wait_share - share)
        counted = report.total_steps == ip.user_ns["steps"]
        good = counted and abs(step_err) <= 3 and abs(points) <= 5
        ok = ok and good
        print(f"num_workers {workers}, {1000 * sleep:.1f} ms a sample: steps {report.total_steps} counted, "
              f"{ip.user_ns['steps']} run {'(exact)' if counted else 'MISMATCH'}; mean step {1000 * report.step.mean:.2f} ms "
              f"vs the optimizer's own hook {1000 * mean:.2f} ms ({step_err:+.2f}%, target within 3%); wait "
              f"{100 * wait.wait_share:.1f}% vs the loop's own next() timing {100 * share:.1f}% ({points:+.1f} points, "
              f"target within 5) {'ok' if good else 'MISSED'}", flush=True)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
