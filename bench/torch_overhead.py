"""What %%timed_fit costs a PyTorch loop (run as ``python bench/overhead.py --torch``).

Run: python bench/overhead.py --torch [--reps 9] [--steps 2000] [--threads 1]

Two loops on the CPU, each a DataLoader over tensors in memory and ``torch.optim.SGD``:
- mlp: 16 -> 256 -> 256 -> 1, batch 32: a step of about 0.4 ms, the worst case for a per-step cost;
- cnn: the CNN of PyTorch's "Training a Classifier" tutorial on 32x32x3 images, batch 4 as there;
- cnn32: the same CNN at batch 32 (a step of a few ms), a quarter of the steps.
For each, the same loop in a plain cell and under ``%%timed_fit -q``, interleaved, --reps pairs: CPU time
(process_time, every thread of the process: the sampler's too) and wall time; the median of the pairs'
ratios, minus 1. Target: at most 1% more CPU time.

The cost is also accounted for directly, since CPU-time pairs still swing here: the per-step cost of the
hooks, from a loop whose step is nothing but ``next()`` and ``optimizer.step()`` of a one-weight model
(plain against hooked, interleaved), times the steps, plus the cost of a cell (setting up, the sampler, the
report: a 2-step cell under the magic against plain), as a share of the plain loop's CPU time. torch runs on --threads threads (1 by default) so that its CPU time is steady.
"""

import statistics

from article import TORCH_TUTORIAL_NET  # bench/ is the script's folder, so on sys.path
from IPython.core.interactiveshell import InteractiveShell

SETUP = '''
import time, torch
from torch.utils.data import DataLoader, TensorDataset
torch.set_num_threads({threads})
torch.manual_seed(0)

{net}
def mlp():
    return torch.nn.Sequential(torch.nn.Linear(16, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                               torch.nn.Linear(256, 1))

CASES = {{
    "mlp": (mlp, lambda n: TensorDataset(torch.randn(n, 16), torch.randn(n, 1)), 32, torch.nn.functional.mse_loss),
    "cnn": (Net, lambda n: TensorDataset(torch.randn(n, 3, 32, 32), torch.randint(0, 10, (n,))), 4,
            torch.nn.functional.cross_entropy),
    "cnn32": (Net, lambda n: TensorDataset(torch.randn(n, 3, 32, 32), torch.randint(0, 10, (n,))), 32,
              torch.nn.functional.cross_entropy),
}}

def train(case, steps, epochs=2):
    build, data, batch, loss_fn = CASES[case]
    model = build()
    opt = torch.optim.SGD(model.parameters(), lr=0.001)
    loader = DataLoader(data(steps * batch // epochs), batch_size=batch, shuffle=True)
    for _ in range(epochs):
        for xb, yb in loader:
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()

def bare(steps):
    """next() and optimizer.step() only: what the hooks add, with nothing else to hide it."""
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    model(torch.zeros(1, 1))  # the model's name is seen, so the module hooks come off at the first step
    for (xb,) in DataLoader(TensorDataset(torch.zeros(steps, 1)), batch_size=1):
        opt.step()
'''


def timed(ip, cell: str) -> tuple[float, float]:
    """CPU and wall seconds of one cell."""
    ip.run_cell("_c0, _t0 = time.process_time(), time.perf_counter()").raise_error()
    ip.run_cell(cell).raise_error()
    ip.run_cell("_c1, _t1 = time.process_time() - _c0, time.perf_counter() - _t0").raise_error()
    return ip.user_ns["_c1"], ip.user_ns["_t1"]


def pairs(ip, code: str, reps: int) -> dict:
    """``code`` plain and under %%timed_fit, interleaved (which goes first alternates)."""
    out = {"plain_cpu": [], "timed_cpu": [], "plain_wall": [], "timed_wall": [], "sampler_cpu": []}
    for rep in range(reps):
        order = ("plain", "timed") if rep % 2 == 0 else ("timed", "plain")
        for kind in order:
            cell = f"%%timed_fit -q -v _r --no-history\n{code}" if kind == "timed" else code
            cpu, wall = timed(ip, cell)
            out[f"{kind}_cpu"].append(cpu)
            out[f"{kind}_wall"].append(wall)
            if kind == "timed":
                out["sampler_cpu"].append(ip.user_ns["_r"][0].sampler.cpu_s)
    return out


def ratio(timed_s: list, plain_s: list) -> float:
    return 100 * (statistics.median(t / p for t, p in zip(timed_s, plain_s, strict=True)) - 1)


def main(args) -> int:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "colab_magic")
    ip.run_cell(SETUP.format(threads=args.threads, net=TORCH_TUTORIAL_NET)).raise_error()
    import torch

    print(f"PyTorch {torch.__version__} on the CPU, {args.threads} thread(s); {args.reps} interleaved pairs; "
          f"synthetic data")
    probe_steps = 20_000
    ip.run_cell(f"bare({probe_steps})").raise_error()  # imports and first-call costs, outside every measurement
    probe = pairs(ip, f"bare({probe_steps})", args.reps)
    per_step = statistics.median(t - p for t, p in zip(probe["timed_cpu"], probe["plain_cpu"], strict=True))
    per_step /= probe_steps
    print(f"the hooks: {1e6 * per_step:.2f} us of CPU per step (next() and optimizer.step() alone, "
          f"{probe_steps} steps, median of the pairs; plain {1e6 * statistics.median(probe['plain_cpu']) / probe_steps:.2f} "
          f"us a step)")
    few = pairs(ip, "bare(2)", args.reps)
    fixed = statistics.median(t - p for t, p in zip(few["timed_cpu"], few["plain_cpu"], strict=True))
    print(f"per cell: {1000 * fixed:.1f} ms of CPU (a cell of 2 steps under the magic against plain: setting up, "
          f"the sampler, the report)")
    ok = True
    for case in ("mlp", "cnn", "cnn32"):
        steps = args.steps if case != "cnn32" else args.steps // 4  # a step about 8 times the cnn's
        code = f"train({case!r}, {steps})"
        ip.run_cell(code).raise_error()
        r = pairs(ip, code, args.reps)
        plain = statistics.median(r["plain_cpu"])
        cpu = ratio(r["timed_cpu"], r["plain_cpu"])
        wall = ratio(r["timed_wall"], r["plain_wall"])
        accounted = 100 * (per_step * steps + fixed) / plain
        good = cpu <= 1.0
        ok = ok and good
        spread = sorted(100 * (t / p - 1) for t, p in zip(r["timed_cpu"], r["plain_cpu"], strict=True))
        print(f"{case:>5}: {steps} steps, {1000 * plain / steps:.3f} ms CPU a step plain | CPU time "
              f"{cpu:+.2f}% (target <= 1%) {'ok' if good else 'MISSED'}, pairs {spread[0]:+.1f}% to {spread[-1]:+.1f}%; "
              f"wall {wall:+.2f}% | accounted: hooks {1e6 * per_step:.2f} us x {steps} steps + {1000 * fixed:.1f} ms "
              f"per cell = {accounted:.2f}% of the plain loop (sampler {1000 * statistics.median(r['sampler_cpu']):.1f} "
              f"ms of it)", flush=True)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1

