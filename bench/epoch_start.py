"""The time before an epoch's first step: the stall seen at the start of later epochs with NumPy arrays on
TensorFlow, and what removes it.

Run: python bench/epoch_start.py [--reps 4] [--samples 50000] [--epochs 3] [--variants arrays,dataset,...]

The article's CIFAR-10 CNN on synthetic data (batch 32, no validation), under `%%timed_fit`. Variants:
- arrays: `fit(x, y)` with the NumPy arrays, as the quickstart does;
- noshuffle: the same with `shuffle=False`;
- dataset: one `tf.data.Dataset.from_tensor_slices((x, y)).shuffle(10_000).batch(32).prefetch(AUTOTUNE)`,
  built once before the fit and passed to it;
- repeat: the same pipeline with .repeat() before .prefetch(), and fit(..., steps_per_epoch=len(x) // 32):
  with steps_per_epoch given, Keras keeps one iterator for the whole fit (keras/src/trainers/epoch_iterator.py)
  instead of a new one each epoch, so no epoch starts by closing the last one;
- tensors: the arrays turned into TensorFlow tensors once (`tf.constant`) and passed as `fit(x, y)`.
Variants run interleaved (one rep of each in turn), so that the machine's slow and fast spells fall on all.
For each: the time before the first step of every epoch after the first (median, range, and how often
over 1 s), and the epoch times.
"""

import argparse
import statistics
import sys

from article import CIFAR_CNN, CIFAR_DATA  # bench/ is the script's folder, so on sys.path
from IPython.core.interactiveshell import InteractiveShell

SETUP = CIFAR_CNN + "\nimport tensorflow as tf\n" + CIFAR_DATA

FITS = {
    "arrays": "h = model.fit(x, y, batch_size=32, epochs={epochs}, verbose=0)",
    "noshuffle": "h = model.fit(x, y, batch_size=32, epochs={epochs}, verbose=0, shuffle=False)",
    "dataset": ("ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(10_000).batch(32).prefetch(tf.data.AUTOTUNE)\n"
                "h = model.fit(ds, epochs={epochs}, verbose=0)"),
    "repeat": ("ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(10_000).batch(32).repeat()"
               ".prefetch(tf.data.AUTOTUNE)\n"
               "h = model.fit(ds, epochs={epochs}, steps_per_epoch=len(x) // 32, verbose=0)"),
    "tensors": "tx, ty = tf.constant(x), tf.constant(y)\nh = model.fit(tx, ty, batch_size=32, epochs={epochs}, verbose=0)",
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--variants", default="arrays,dataset,repeat,noshuffle,tensors")
    args = parser.parse_args()
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "colab_magic")
    ip.run_cell(SETUP.format(samples=args.samples)).raise_error()
    names = args.variants.split(",")
    before: dict[str, list[float]] = {n: [] for n in names}
    epochs: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(args.reps):
        for name in names:
            cell = "model = cifar_cnn()\n" + FITS[name].format(epochs=args.epochs)
            ip.run_cell(f"%%timed_fit --no-history -q -v R\n{cell}").raise_error()
            report = ip.user_ns["R"][0]
            later = report.epochs[1:]
            before[name] += [e.before_steps_s for e in later]
            epochs[name] += [e.time_s for e in later]
            print(f"rep {rep + 1} {name}: before the first step " +
                  ", ".join(f"epoch {e.epoch} {e.before_steps_s:.2f} s of {e.time_s:.1f} s" for e in report.epochs),
                  flush=True)
    for name in names:
        b, t = before[name], epochs[name]
        print(f"{name}: before the first step of epochs 2+: median {statistics.median(b):.2f} s, range "
              f"{min(b):.2f}-{max(b):.2f} s, over 1 s in {sum(v > 1 for v in b)} of {len(b)}; epoch median "
              f"{statistics.median(t):.1f} s, range {min(t):.1f}-{max(t):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
