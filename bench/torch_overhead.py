"""What %%timed_fit costs a PyTorch loop (run as ``python bench/overhead.py --torch``).

Run: python bench/overhead.py --torch [--rounds 300] [--reps 5] [--steps 2000] [--threads 1]

Three loops on the CPU, each a DataLoader over tensors in memory and ``torch.optim.SGD``:
- mlp: 16 -> 256 -> 256 -> 1, batch 32: a step of about 0.4 ms, the worst case for a per-step cost;
- cnn: the CNN of PyTorch's "Training a Classifier" tutorial on 32x32x3 images, batch 4 as there;
- cnn32: the same CNN at batch 32 (a step of a few ms).
Target: at most 1% more CPU time than the same loop plain.

Why the measurement is built this way: on this machine (2 shared vCPUs) the same loop runs at one of
two speeds, chosen afresh now and then, so whole cells timed one after the other differ by several
percent either way, far above the 1% to resolve (their pairs are still printed, with their range).
What the target needs is measured in three parts instead:
1. **in the loop**: one ``%%timed_fit`` cell runs the loop in chunks of a few dozen milliseconds with
   the magic's hooks attached and detached (torch's global optimizer-hook dicts emptied, and
   ``DataLoader``'s iterator ``__next__`` put back, for the chunk), --rounds rounds, the order rotated;
   the main thread's CPU time of each chunk. Adjacent chunks run at the same machine speed, so the
   ratio of a round is steady; the median over rounds, with its 95% interval from the order
   statistics. A third chunk per round, detached again, gives an A/A ratio: the harness's own error.
   The loader draws with replacement, so the chunks are one epoch's steady steps (an epoch's first
   steps take the slow path; they are in part 3's cells);
2. **per cell**: a 2-step cell under the magic against plain (setting up, the sampler, the first
   steps' naming and FLOP count, the report), and the sampler's CPU time over the whole loop (which
   includes telling the steady steps to the step timer: the sampler's thread does that, not the loop's);
3. **whole cells**: the loop plain and under ``%%timed_fit -q``, interleaved, --reps pairs (CPU time of
   every thread, the sampler's included), as a check on the sum of 1 and 2.
The total against the target is 1 + 2 as a share of the plain loop of --steps steps (a longer loop
pays the per-cell part over more steps). torch runs on --threads threads (1 by default) so that its
CPU time is steady.
"""

import math
import statistics

from article import TORCH_TUTORIAL_NET  # bench/ is the script's folder, so on sys.path
from IPython.core.interactiveshell import InteractiveShell

SETUP = '''
import time, torch
from torch.utils.data import DataLoader, RandomSampler, TensorDataset
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

def alternate(case, chunk, rounds, plain_next):
    """Run inside a %%timed_fit cell: the loop in chunks of ``chunk`` steps with the magic's hooks
    attached ("on"), detached ("off"), detached again ("off2"), the order rotated each round; the main
    thread's CPU seconds of each chunk, by kind."""
    from torch.optim import optimizer as optim
    from torch.utils.data import dataloader
    build, data, batch, loss_fn = CASES[case]
    model = build()
    opt = torch.optim.SGD(model.parameters(), lr=0.001)
    dataset = data(4096)
    steps = chunk * (3 * rounds + 4)
    loader = DataLoader(dataset, batch_size=batch,
                        sampler=RandomSampler(dataset, replacement=True, num_samples=steps * batch))
    hooked_next = dataloader._BaseDataLoaderIter.__next__

    def attach(on):
        for hooks, saved in ((optim._global_optimizer_pre_hooks, pre), (optim._global_optimizer_post_hooks, post)):
            hooks.clear()
            if on:
                hooks.update(saved)
        dataloader._BaseDataLoaderIter.__next__ = hooked_next if on else plain_next

    def chunk_cpu(it):
        start = time.thread_time()
        for _ in range(chunk):
            xb, yb = next(it)
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
        return time.thread_time() - start

    it = iter(loader)
    for _ in range(4):  # the first steps (naming the model, the FLOP count): not steady, not timed
        chunk_cpu(it)
    # the hooks as a steady loop has them (the optimizer pre-hook is off by now): what "on" puts back
    pre, post = dict(optim._global_optimizer_pre_hooks), dict(optim._global_optimizer_post_hooks)
    assert not pre and len(post) == 1, (pre, post)
    kinds = ["on", "off", "off2"]
    out = {{kind: [] for kind in kinds}}
    try:
        for r in range(rounds):
            for kind in kinds[r % 3:] + kinds[:r % 3]:
                attach(kind == "on")
                out[kind].append(chunk_cpu(it))
    finally:
        attach(True)
    return out
'''

# chunks of a few dozen milliseconds: short enough that both halves of a round run at one machine speed
CHUNK = {"mlp": 100, "cnn": 50, "cnn32": 12}


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


def median_interval(values: list[float]) -> tuple[float, float, float]:
    """The median and a 95% interval for it from the order statistics (ranks n/2 -/+ 1.96 sqrt(n)/2)."""
    ordered = sorted(values)
    n = len(ordered)
    half = 1.96 * math.sqrt(n) / 2
    lo, hi = max(0, math.floor(n / 2 - half)), min(n - 1, math.ceil(n / 2 + half))
    return statistics.median(ordered), ordered[lo], ordered[hi]


def in_loop(ip, case: str, rounds: int) -> dict:
    """Part 1: the per-step cost inside one cell, hooks attached against detached (percent)."""
    from torch.utils.data import dataloader

    ip.user_ns["_plain_next"] = dataloader._BaseDataLoaderIter.__next__  # outside a cell: torch's own
    ip.run_cell(f"%%timed_fit -q -v _r --no-history\n_chunks = alternate({case!r}, {CHUNK[case]}, {rounds}, "
                f"_plain_next)").raise_error()
    chunks = ip.user_ns["_chunks"]
    on = median_interval([100 * (a / b - 1) for a, b in zip(chunks["on"], chunks["off"], strict=True)])
    aa = median_interval([100 * (a / b - 1) for a, b in zip(chunks["off2"], chunks["off"], strict=True)])
    step_s = statistics.median(chunks["off"]) / CHUNK[case]
    return {"on": on, "aa": aa, "step_s": step_s}


def main(args) -> int:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "colab_magic")
    ip.run_cell(SETUP.format(threads=args.threads, net=TORCH_TUTORIAL_NET)).raise_error()
    import torch

    print(f"PyTorch {torch.__version__} on the CPU, {args.threads} thread(s); in the loop {args.rounds} rounds; "
          f"whole cells {args.reps} interleaved pairs; synthetic data")
    probe_steps = 20_000
    ip.run_cell(f"bare({probe_steps})").raise_error()  # imports and first-call costs, outside every measurement
    probe = pairs(ip, f"bare({probe_steps})", args.reps)
    per_step = statistics.median(t - p for t, p in zip(probe["timed_cpu"], probe["plain_cpu"], strict=True))
    print(f"the hooks alone: {1e6 * per_step / probe_steps:.2f} us of CPU per step (a loop of only next() and "
          f"optimizer.step(), {probe_steps} steps, whole cells, median of the pairs; plain "
          f"{1e6 * statistics.median(probe['plain_cpu']) / probe_steps:.2f} us a step)")
    few = pairs(ip, "bare(2)", max(args.reps, 9))
    fixed = statistics.median(t - p for t, p in zip(few["timed_cpu"], few["plain_cpu"], strict=True))
    print(f"per cell: {1000 * fixed:.1f} ms of CPU (a cell of 2 steps under the magic against plain: setting up, "
          f"the sampler, the first steps, the report)")
    ok = True
    for case in ("mlp", "cnn", "cnn32"):
        steps = args.steps if case != "cnn32" else args.steps // 4  # a step about 4 times the cnn's
        loop = in_loop(ip, case, args.rounds)
        code = f"train({case!r}, {steps})"
        ip.run_cell(code).raise_error()
        r = pairs(ip, code, args.reps)
        plain = statistics.median(r["plain_cpu"])
        sampler = statistics.median(r["sampler_cpu"])
        cell_share = 100 * (fixed + sampler) / plain
        total = loop["on"][0] + cell_share
        good = total <= 1.0
        ok = ok and good
        spread = sorted(100 * (t / p - 1) for t, p in zip(r["timed_cpu"], r["plain_cpu"], strict=True))
        on, aa = loop["on"], loop["aa"]
        print(f"{case:>5}: {1000 * loop['step_s']:.3f} ms CPU a step plain | in the loop {on[0]:+.2f}% "
              f"(95% {on[1]:+.2f} to {on[2]:+.2f}; A/A {aa[0]:+.2f}%, {aa[1]:+.2f} to {aa[2]:+.2f}) = "
              f"{10 * on[0] * loop['step_s'] * 1000:.2f} us a step | per cell {1000 * fixed:.1f} ms + sampler "
              f"{1000 * sampler:.1f} ms = {cell_share:.2f}% of {steps} steps | total {total:+.2f}% (target <= 1%) "
              f"{'ok' if good else 'MISSED'} | whole cells {ratio(r['timed_cpu'], r['plain_cpu']):+.2f}% CPU, "
              f"pairs {spread[0]:+.1f}% to {spread[-1]:+.1f}%; wall {ratio(r['timed_wall'], r['plain_wall']):+.2f}%",
              flush=True)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1
