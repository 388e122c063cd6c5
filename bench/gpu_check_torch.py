"""PyTorch loops under %%timed_fit on a GPU, against independent clocks and a hand count.

Run (the device machine, see ../shared/device/README.md; IPython carried as a wheel):
    python bench/gpu_check_torch.py --out DIR
On a machine without CUDA it runs the same on the CPU (a dry run of the script: no MFU, no NVML).

1. The CNN of PyTorch's tutorial "Training a Classifier" (batch 32, synthetic CIFAR-sized images) fed by a
   DataLoader whose Dataset sleeps a known time per image, num_workers 0 and 2: the report's steps against
   the loop's own count (exact); its mean step against an independent clock, a CUDA event recorded after
   each optimizer step by a hook on the optimizer itself (the mean interval between consecutive events
   within an epoch; target within 3%); the report's DataLoader wait against the loop's own timing of
   next() (target within 5 points). The loop lets go of each batch after its step, outside that timing:
   a worker's batch lives in shared memory, and releasing it (0.2-0.4 ms a batch on 2 vCPUs) happens
   where the loop's variable takes the next batch, after ``__next__`` returns, so the report counts it
   in the step; timed apart and printed.
2. A matmul-bound MLP (4 x Linear 4096 -> 4096, batch 2048) in bfloat16 autocast: the report's FLOPs per
   step against a hand count (2 x batch x weights for each Linear's forward, its weights' gradient, and its
   input's gradient but for the first layer's; elementwise work left out: target within 1%), its MFU beside the hand count's MFU at the BF16 peak, and the steps against the
   CUDA-event clock.
3. NVML: the sampler's readings of the GPU (utilisation, memory, power) for each fit.
4. For the input-bound verdict's threshold (colab_magic.verdicts.WORKER_HANDOFF_S, measured on 2 vCPUs):
   what a batch from a DataLoader worker costs the training process on this host (bench/loader_handoff.py),
   and which fix the verdict gave each CNN run. Reported, not judged.
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch_check
from article import TORCH_TUTORIAL_NET  # bench/ is the script's folder, so on sys.path
from IPython.core.interactiveshell import InteractiveShell
from loader_handoff import wait_per_batch

DATA = """
import time, torch
from torch.utils.data import DataLoader, Dataset
device = "cuda" if torch.cuda.is_available() else "cpu"

class Images(Dataset):
    def __init__(self, n, sleep):
        g = torch.Generator().manual_seed(0)
        self.x, self.y, self.sleep = torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g), sleep
    def __len__(self):
        return len(self.x)
    def __getitem__(self, i):
        if self.sleep:
            time.sleep(self.sleep)
        return self.x[i], self.y[i]
"""

LOOPS = '''
class Clock:
    """The independent clock: an event after each optimizer step (CUDA events on a GPU, perf_counter on
    the CPU), from a hook registered on the optimizer itself."""
    def __init__(self, optimizer):
        self.marks, self.host = [], []
        optimizer.register_step_post_hook(lambda o, a, k: self.mark())
    def mark(self):
        self.host.append(time.perf_counter())
        if device == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(self.host[-1])
    def epoch(self):
        self.marks.append(None)
        self.host.append(None)
    def mean_step_s(self):
        if device == "cuda":
            torch.cuda.synchronize()
        gaps = []
        for a, b in zip(self.marks, self.marks[1:]):
            if a is None or b is None:
                continue
            gaps.append(a.elapsed_time(b) / 1000 if device == "cuda" else b - a)
        gaps = gaps[1:]  # the counted (FLOP) step: the report leaves it out too
        return sum(gaps) / len(gaps)

def cnn(workers, sleep, epochs=2, n=4096):
    model = Net().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    clock, waits, steps, released = Clock(opt), [], 0, []
    loader = DataLoader(Images(n, sleep), batch_size=32, shuffle=True, num_workers=workers,
                        pin_memory=device == "cuda", persistent_workers=workers > 0)
    for epoch in range(epochs):
        clock.epoch()
        it = iter(loader)
        while True:
            t = time.perf_counter()
            try:
                xb, yb = next(it)
            except StopIteration:
                break
            waits.append((len(clock.host), time.perf_counter() - t))
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
            steps += 1
            # the batch released here, outside the next() timing, as the report counts it (in the step; on a
            # GPU the copy above already let the host batch go): a worker's batch lives in shared memory
            t = time.perf_counter()
            del xb, yb
            released.append(time.perf_counter() - t)
    return clock, waits, steps, released

WIDTH, DEPTH, BATCH = 4096, 4, 2048

def mlp(steps=60):
    model = torch.nn.Sequential(*[torch.nn.Linear(WIDTH, WIDTH, bias=False) for _ in range(DEPTH)]).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    clock = Clock(opt)
    x = torch.randn(BATCH, WIDTH, device=device)
    dtype = torch.bfloat16
    for _ in range(steps):
        opt.zero_grad()
        with torch.autocast(device, dtype=dtype):
            loss = model(x).float().pow(2).mean()
        loss.backward()
        opt.step()
    return clock
'''

SETUP = DATA + TORCH_TUTORIAL_NET + LOOPS


def run(ip, cell: str):
    ip.run_cell(f"%%timed_fit -q -v R --no-history\n{cell}").raise_error()
    return ip.user_ns["R"].reports[0]


def gpu_line(report) -> str:
    if not report.gpus:
        return f"NVML: no GPU readings ({report.gpu_note})"
    g = report.gpus[0]
    return (f"NVML: {g.label} utilisation mean {g.util_mean}%, memory peak {g.memory_peak} B of {g.memory_total} B, "
            f"power mean {g.power_mean_w} W; {g.readings} readings")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=None, help="a folder for the report (text and JSON)")
    args = parser.parse_args()
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "colab_magic")
    ip.run_cell(SETUP).raise_error()
    import torch

    lines, figures, ok = [], {}, True

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    device = ip.user_ns["device"]
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU (dry run: no CUDA here)"
    say(f"gpu_check_torch: PyTorch {torch.__version__} on {name}; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    for workers in (0, 2):
        r = run(ip, f"clock, waits, steps, released = cnn({workers}, 0.0002)")
        clock, waits, steps = ip.user_ns["clock"], ip.user_ns["waits"], ip.user_ns["steps"]
        release_s = statistics.mean(ip.user_ns["released"])
        independent = clock.mean_step_s()
        step_err = 100 * (r.step.mean - independent) / independent
        own_share = torch_check.independent(clock.host, waits)[1]  # the same reckoning as bench/torch_check.py
        points = 100 * (r.input_wait.wait_share - own_share) if r.input_wait else float("nan")
        good = r.total_steps == steps and abs(step_err) <= 3 and abs(points) <= 5
        ok &= good
        figures[f"cnn_workers_{workers}"] = {"steps": r.total_steps, "run": steps, "mean_step_ms": 1000 * r.step.mean,
                                             "independent_ms": 1000 * independent, "wait_share": r.input_wait.wait_share,
                                             "own_wait_share": own_share, "release_ms": 1000 * release_s}
        say(f"CNN, num_workers {workers}: steps {r.total_steps} of {steps} run; mean step {1000 * r.step.mean:.3f} ms "
            f"vs the {'CUDA-event' if device == 'cuda' else 'perf_counter'} clock {1000 * independent:.3f} ms "
            f"({step_err:+.2f}%, target 3%); DataLoader wait {100 * r.input_wait.wait_share:.1f}% vs the loop's own "
            f"next() timing {100 * own_share:.1f}% ({points:+.1f} points, target 5) "
            f"{'ok' if good else 'MISSED'}")
        say(f"  headline: {r.headline}")
        say(f"  {gpu_line(r)}")
        found = next((f for f in r.findings if f.rule == "input_bound"), None)
        say(f"  a batch waited {1000 * r.input_wait.loader.batch_wait_s:.2f} ms, and releasing it after its step took "
            f"{1000 * release_s:.2f} ms (counted in the step, not the wait); input-bound fix: "
            f"{found.action if found else 'none (not input-bound)'}")
    r = run(ip, f"clock = mlp({60 if device == 'cuda' else 6})")  # on a CPU a step takes about a second
    independent = ip.user_ns["clock"].mean_step_s()
    width, depth, batch = ip.user_ns["WIDTH"], ip.user_ns["DEPTH"], ip.user_ns["BATCH"]
    # per Linear: forward 2 x batch x in x out, the weights' gradient as much again, and the input's gradient
    # as much again except for the first layer (its input needs none)
    hand = 2 * batch * width * width * (3 * depth - 1)
    flops_err = 100 * (r.flops_per_step - hand) / hand if r.flops_per_step else float("nan")
    step_err = 100 * (r.step.mean - independent) / independent
    hand_mfu = hand / independent / r.peak_flops_per_s if r.peak_flops_per_s else None
    good = abs(flops_err) <= 1 and abs(step_err) <= 3 and r.compute_dtype == "bfloat16"
    ok &= good
    figures["mlp_bf16"] = {"flops_per_step": r.flops_per_step, "hand_flops": hand, "mean_step_ms": 1000 * r.step.mean,
                           "independent_ms": 1000 * independent, "mfu": r.mfu, "hand_mfu": hand_mfu,
                           "peak": r.peak_flops_per_s, "peak_basis": r.peak_basis, "compute_dtype": r.compute_dtype}
    say(f"MLP {depth} x {width}, batch {batch}, autocast bfloat16: FLOPs {r.flops_per_step:.4g} vs hand count "
        f"{hand:.4g} ({flops_err:+.2f}%, target 1%); compute dtype {r.compute_dtype}; mean step "
        f"{1000 * r.step.mean:.3f} ms vs the clock {1000 * independent:.3f} ms ({step_err:+.2f}%, target 3%) "
        f"{'ok' if good else 'MISSED'}")
    mfu = f"{100 * r.mfu:.1f}%" if r.mfu is not None else "none"
    say(f"  MFU {mfu} (the hand count's: {f'{100 * hand_mfu:.1f}%' if hand_mfu else 'none'}); peak: {r.peak_basis}")
    say(f"  headline: {r.headline}")
    say(f"  {gpu_line(r)}")
    from colab_magic.verdicts import WORKER_HANDOFF_S

    for batch in (32, 128):  # images held in memory, 5 ms steps: the workers have the next batch ready
        costs = {w: wait_per_batch(batch, 0.005, 200, w) for w in (0, 2)}
        figures[f"handoff_batch_{batch}"] = costs
        say(f"DataLoader handoff, batch {batch} (inside __next__ + releasing it after the step): "
            f"{1e6 * costs[0][0]:,.0f} + {1e6 * costs[0][1]:,.0f} us a batch made here, {1e6 * costs[2][0]:,.0f} + "
            f"{1e6 * costs[2][1]:,.0f} us from 2 workers (WORKER_HANDOFF_S {1e6 * WORKER_HANDOFF_S:,.0f} us, both "
            f"parts, from 2 vCPUs; {os.cpu_count()} CPUs here)")
    say("PASS" if ok else "FAIL")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        tag = "cpu_dry_run" if device != "cuda" else torch.cuda.get_device_name(0).split()[1].lower()
        with open(os.path.join(args.out, f"gpu_check_torch_{tag}.txt"), "w") as fh:
            fh.write("\n".join(lines) + "\n")
        with open(os.path.join(args.out, f"gpu_check_torch_{tag}.json"), "w") as fh:
            json.dump(figures, fh, indent=2, default=str)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
