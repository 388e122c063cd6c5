"""What the sampler thread costs, with GPM read and without, side by side on the same machine.

    python3 bench/sampler_cost.py [--short 2] [--long 10] [--rounds 2] [--interval 0.5]

Runs the sampler alone (no training) for a short and a long window, alternating GPM on and off, and
prints the thread's own CPU time (what %%timed_fit reports as "sampler cost"), then splits it into a
fixed cost per fit (NVML start-up and shut-down, the first and last energy and GPM readings) and a
running cost per second, from cost = fixed + rate x seconds over the two windows. The 0.5%-of-a-core
target is about the running cost; the fixed cost matters only for fits of a few seconds.
On a machine without a GPU both halves read only the host.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from colab_magic import nvml  # noqa: E402
from colab_magic.sampler import Sampler  # noqa: E402


def run(seconds: float, interval: float, gpm: bool) -> tuple[float, float, int]:
    real = nvml.gpm_unavailable
    if not gpm:
        nvml.gpm_unavailable = lambda index: "switched off for this measurement"
    try:
        sampler = Sampler(interval).start()
        sampler.ready.wait(10)
        time.sleep(seconds)
        sampler.stop()
    finally:
        nvml.gpm_unavailable = real
    duration = sampler.stopped - sampler.started
    readings = sum(t.gpm_readings for t in sampler.gpus)
    return sampler.cpu_seconds, duration, readings


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--short", type=float, default=2.0)
    parser.add_argument("--long", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args()
    runs = {(gpm, w): [] for gpm in (False, True) for w in ("short", "long")}
    run(1.0, args.interval, True)  # warm-up: first calls into psutil and NVML cost more
    for n in range(args.rounds):
        for window in ("short", "long"):
            for gpm in (False, True):
                cpu_s, duration, readings = run(getattr(args, window), args.interval, gpm)
                runs[(gpm, window)].append((cpu_s, duration))
                print(f"round {n + 1}, {duration:5.1f} s, GPM {'on ' if gpm else 'off'}: {1000 * cpu_s:.1f} ms CPU = "
                      f"{100 * cpu_s / duration:.3f}% of one core ({readings} GPM readings)", flush=True)
    for gpm in (False, True):
        (c1, d1), (c2, d2) = [tuple(statistics.median(v) for v in zip(*runs[(gpm, w)])) for w in ("short", "long")]
        rate = (c2 - c1) / (d2 - d1)
        fixed = c1 - rate * d1
        print(f"GPM {'on ' if gpm else 'off'}: fixed {1000 * fixed:.1f} ms per fit, running {100 * rate:.3f}% of one core "
              f"(interval {args.interval} s; target for the running cost <= 0.5%)")


if __name__ == "__main__":
    main()
