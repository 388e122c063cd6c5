"""GPU check of FLOPs, MFU and GPM as %%timed_fit reports them (Keras 3 on JAX).

Prepared for the GPU machine (../shared/device/README.md):

    KERAS_BACKEND=jax PYTHONUNBUFFERED=1 python3 bench/gpu_compute_check.py --out "$OUT"

1. The article's CIFAR-10 CNN (batch 32, synthetic data of CIFAR-10's shape) under %%timed_fit at the
   default sampling interval: GPM figures read, XLA's FLOPs (lowered for the CPU) against the analytic
   count, MFU, the sampler's cost with GPM, the verdicts.
2. A matmul-bound model, 4 x Dense 4096 at batch 1024, in mixed_bfloat16 and in float32: its MFU must
   come out plausible (tens of percent), which checks the FLOPs count and the peak table together.
3. What one GPM reading costs through colab_magic.nvml (sample + metrics).

Writes gpu_compute_check.txt and .json to --out. On a machine without a GPU the GPU checks say so and
fail; the rest runs (a CPU dry run of the script).
"""

import argparse
import contextlib
import io
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from article import CIFAR_CNN  # noqa: E402 - bench/ is on sys.path as the script's folder
from checklist import Checklist  # noqa: E402

CHECKLIST = Checklist()
say, check = CHECKLIST.say, CHECKLIST.check


DENSE = '''
def dense_stack(width=4096):
    model = keras.Sequential([keras.Input((width,))] + [keras.layers.Dense(width, activation="relu") for _ in range(3)]
                             + [keras.layers.Dense(width, dtype="float32")])
    model.compile(keras.optimizers.SGD(1e-4), "mse")
    return model
'''


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=".")
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--dense-batches", type=int, default=16)
    parser.add_argument("--dense-epochs", type=int, default=30)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    import jax
    import keras
    from IPython.core.interactiveshell import InteractiveShell

    from colab_magic import nvml

    result = {"argv": sys.argv[1:]}
    say(f"gpu_compute_check {time.strftime('%Y-%m-%d %H:%M:%S')}; Python {platform.python_version()}, "
        f"Keras {keras.__version__} ({keras.backend.backend()}), JAX {jax.__version__}, devices {jax.devices()}")
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "colab_magic")
    ip.run_cell(CIFAR_CNN + DENSE).raise_error()
    ip.run_cell(f"x = np.random.default_rng(0).random(({args.samples}, 32, 32, 3), dtype=np.float32)\n"
                f"y = np.random.default_rng(1).integers(0, 10, {args.samples})").raise_error()

    # 1. the article's CNN
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ip.run_cell(f"%%timed_fit --no-history -v R\nmodel = cifar_cnn(metrics=())\n"
                    f"model.fit(x, y, batch_size=32, epochs={args.epochs}, verbose=0)").raise_error()
    say("\n--- %%timed_fit, article CNN ---\n" + buf.getvalue())
    rep = ip.user_ns["R"][0]
    result["cnn"] = rep.to_dict()
    result["cnn"].pop("timeline")
    g = rep.device_gpu
    check("the fit ran on a GPU", g is not None, f"device {rep.device}")
    if g is not None:
        check("GPM read on this GPU", g.gpm_note is None and g.gpm_readings > 0,
              f"note {g.gpm_note!r}, {g.gpm_readings} readings, {g.gpm_failures} failed")
        check("GPM figures in range", all(v is not None and 0 <= v <= 100 for v in (
            g.sm_activity_pct, g.sm_occupancy_pct, g.tensor_activity_pct, g.dram_bw_pct)),
            f"SM {g.sm_activity_pct}, occupancy {g.sm_occupancy_pct}, tensor {g.tensor_activity_pct}, DRAM {g.dram_bw_pct}")
        check("SM activity no higher than NVML's 'a kernel ran' share", g.sm_activity_pct is not None
              and g.util_mean is not None and g.sm_activity_pct <= g.util_mean + 5,
              f"SM activity {g.sm_activity_pct} vs utilisation {g.util_mean}")
    from colab_magic import flops

    counted = flops.per_step(ip.user_ns["model"], "jax", ip.user_ns["x"], ip.user_ns["y"], 32)
    ratio = counted.flops / counted.analytic if counted.flops and counted.analytic else None
    check("FLOPs by XLA (lowered for the CPU on a GPU machine) within 15% of the analytic count",
          counted.method and counted.method.startswith("xla") and ratio and abs(ratio - 1) <= 0.15,
          f"{counted.method}: {counted.flops:.4g} vs analytic {counted.analytic:.4g} (ratio {ratio})")
    check("the CNN's MFU is known and small (dispatch-bound)", rep.mfu is not None and 0 < rep.mfu < 0.2,
          f"MFU {rep.mfu}, {rep.achieved_flops_per_s} FLOP/s, {rep.peak_basis}")
    # Not a check: over a fit of seconds this mixes the sampler's fixed cost per fit (NVML start-up) with
    # its running cost; bench/sampler_cost.py separates the two (the target is about the running cost).
    cost = rep.sampler.cost_pct_of_core
    say(f"sampler cost as reported: {cost:.3f}% of one core over {rep.wall_s:.1f} s ({rep.sampler.ticks} readings)")
    say("verdicts: " + "; ".join(f"{f.title} ({f.evidence})" for f in rep.findings))

    # 2. the matmul-bound Dense stack
    # The batches are put on the device once: from host arrays each step waits for a 16 MB copy
    # (in the first run of this check the fit was input-bound, 4-11% MFU, and said so).
    ip.run_cell(f"import jax\nxd = jax.device_put(np.random.default_rng(2).random(({args.dense_batches * 1024}, {args.width}), dtype=np.float32))\n"
                f"yd = jax.device_put(np.random.default_rng(3).random(({args.dense_batches * 1024}, {args.width}), dtype=np.float32))").raise_error()
    for policy in ("mixed_bfloat16", "float32"):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            ip.run_cell(f"keras.mixed_precision.set_global_policy('{policy}')\ndense = dense_stack({args.width})\n"
                        "keras.mixed_precision.set_global_policy('float32')").raise_error()
            ip.run_cell(f"%%timed_fit --no-history -v RD\ndense.fit(xd, yd, batch_size=1024, epochs={args.dense_epochs}, "
                        "shuffle=False, verbose=0)").raise_error()
        say(f"\n--- %%timed_fit, Dense 4x{args.width}, batch 1024, {policy} ---\n" + buf.getvalue())
        drep = ip.user_ns["RD"][0]
        result[f"dense_{policy}"] = drep.to_dict()
        result[f"dense_{policy}"].pop("timeline")
        dg = drep.device_gpu
        check(f"Dense {policy}: MFU plausible (5-90%)", drep.mfu is not None and 0.05 <= drep.mfu <= 0.9,
              f"MFU {drep.mfu}, {drep.flops_per_step:.4g} FLOP/step by {drep.flops_method}, "
              f"mean step {drep.step.mean * 1e3:.3f} ms, {drep.peak_basis}")
        if dg is not None:
            check(f"Dense {policy}: the tensor cores were used", (dg.tensor_activity_pct or 0) > 1,
                  f"tensor activity {dg.tensor_activity_pct}%, SM activity {dg.sm_activity_pct}%")

    # 3. what a GPM reading costs through colab_magic.nvml
    if nvml.start():
        try:
            if nvml.device_count() and nvml.gpm_unavailable(0) is None:
                times, first = [], nvml.gpm_sample(0)
                previous = first
                for _ in range(30):
                    time.sleep(0.01)
                    t0 = time.perf_counter()
                    current = nvml.gpm_sample(0)
                    nvml.gpm_metrics(previous, current)
                    times.append(time.perf_counter() - t0)
                    nvml.gpm_free(previous)
                    previous = current
                nvml.gpm_free(previous)
                reading = statistics.median(times)
                result["gpm_reading_s"] = reading
                check("one GPM reading (sample + metrics) costs <= 2.5 ms", reading <= 0.0025,
                      f"median {reading * 1e3:.3f} ms of 30; once a second that is {reading * 100:.3f}% of a core")
        finally:
            nvml.stop()

    result["checks"] = CHECKLIST.checks
    return CHECKLIST.finish(args.out, "gpu_compute_check", result)


if __name__ == "__main__":
    sys.exit(main())
