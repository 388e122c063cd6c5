"""How steady is this machine's compute speed? The floor under every short timing here.

Run: python bench/machine_noise.py [--seconds 40]

Times the same numpy matrix product over and over, with BLAS on one thread and then on all cores, and
reports how much the mean time of windows of 0.4 s (about --compare's timed steps on the article's CNN)
and of 4 s scatters. A projection from a short window cannot be closer to a full epoch than the
machine's own speed is steady between the two.
"""

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np
a = np.random.default_rng(0).random((400, 400), dtype=np.float32)
end = time.perf_counter() + float(sys.argv[1])
rows = []
while time.perf_counter() < end:
    t = time.perf_counter()
    for _ in range(5):
        a @ a
    rows.append((t, time.perf_counter() - t))
print(json.dumps(rows))
"""


def windows(rows, width: float) -> list[float]:
    """Mean duration of the products started in each window of ``width`` seconds."""
    t0 = rows[0][0]
    buckets: dict[int, list[float]] = {}
    for start, took in rows:
        buckets.setdefault(int((start - t0) // width), []).append(took)
    return [sum(v) / len(v) for v in buckets.values()]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=40.0)
    args = parser.parse_args()
    for threads in ("1", str(os.cpu_count())):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        out = subprocess.run([sys.executable, "-c", CHILD, str(args.seconds)], env=env, capture_output=True, text=True, check=True)
        rows = json.loads(out.stdout)
        for width in (0.4, 4.0):
            means = windows(rows, width)
            mean = sum(means) / len(means)
            sd = (sum((m - mean) ** 2 for m in means) / len(means)) ** 0.5
            print(
                f"{threads} thread(s), {width:g} s windows (n={len(means)}): mean {1000 * mean:.3f} ms, "
                f"sd {100 * sd / mean:.1f}%, range {100 * (min(means) / mean - 1):+.1f}% to {100 * (max(means) / mean - 1):+.1f}%",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
