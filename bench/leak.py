"""Does %%timed_fit leak? Many timed cells beside as many plain ones, in one IPython shell.

    python bench/leak.py [--cells 300]

Each cell fits a fresh tiny model for one short epoch, as a notebook re-run would. Plain and timed
cells alternate in blocks; the figures are each kind's total growth: the process's RSS, its threads
and its open file descriptors (targets: the timed cells' RSS growth at most 2% of the process's size
above the plain cells'; threads and descriptors flat).
"""

import argparse
import gc
import os
import threading

import psutil
from IPython.core.interactiveshell import InteractiveShell

SETUP = '''
import numpy as np, keras
x = np.random.default_rng(0).random((256, 8), dtype=np.float32)
y = x.sum(axis=1, keepdims=True)
def make_model():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model
'''
FIT = "history = make_model().fit(x, y, batch_size=64, epochs=1, verbose=0)"


def state():
    proc = psutil.Process()
    return proc.memory_info().rss, threading.active_count(), len(os.listdir("/proc/self/fd"))


def block(ip, cells: int, timed: bool) -> tuple:
    prefix = "%%timed_fit --no-history -q --interval 0.05\n" if timed else ""
    before = state()
    for _ in range(cells):
        ip.run_cell(prefix + FIT).raise_error()
    after = state()
    return tuple(b - a for a, b in zip(before, after))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cells", type=int, default=300)
    parser.add_argument("--block", type=int, default=25)
    args = parser.parse_args()
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "colab_magic")
    ip.run_cell(SETUP).raise_error()
    block(ip, 5, False)  # warm-up: the first cells allocate what later ones reuse
    block(ip, 5, True)
    growth = {False: [0, 0, 0], True: [0, 0, 0]}
    start = state()
    # Plain and timed cells alternate in blocks, so that the process's own drift (the allocator, Keras'
    # caches of new models) falls on both alike.
    for n in range(args.cells // args.block):
        for timed in ((False, True) if n % 2 == 0 else (True, False)):
            for i, d in enumerate(block(ip, args.block, timed)):
                growth[timed][i] += d
    end = state()
    gc.collect()
    kept = {}
    for obj in gc.get_objects():
        name = type(obj).__name__
        if name in ("FitReport", "TimedFitResult", "Sampler", "StepTimer", "FitRecording", "CapturedFit", "Sequential"):
            kept[name] = kept.get(name, 0) + 1
    for timed in (False, True):
        rss, threads, fds = growth[timed]
        print(f"{'timed' if timed else 'plain'}: {args.cells} cells, RSS {rss / 2**20:+.1f} MiB, threads {threads:+d}, "
              f"open files {fds:+d}", flush=True)
    extra = (growth[True][0] - growth[False][0]) / 2**20
    size = end[0] / 2**20
    print(f"whole run: RSS {start[0] / 2**20:.0f} -> {size:.0f} MiB, threads {start[1]} -> {end[1]}, "
          f"open files {start[2]} -> {end[2]}")
    print(f"timed cells grew {extra:+.1f} MiB more than plain ones: {100 * extra / size:+.2f}% of the process "
          f"(target: at most +2%)")
    print(f"objects still alive after {2 * args.cells} cells and a collection: {kept or 'none of colab_magic or Keras'}"
          " (the user's last result and model are the only ones that should be)")


if __name__ == "__main__":
    main()
