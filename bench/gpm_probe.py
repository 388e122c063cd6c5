"""Facts for the FLOPs/MFU/GPM work (issue 14), read on a lent GPU before that code exists.

Prepared for the GPU machine (../shared/device/README.md), Keras 3 on JAX:

    KERAS_BACKEND=jax PYTHONUNBUFFERED=1 python3 bench/gpm_probe.py --out "$OUT"

It answers, on the real hardware:
1. Does NVML's GPM work here (no daemon, no admin rights)? What do the calls cost?
2. For the article's CNN (float32, batch 32 and 256) and a matmul-bound Dense stack
   (4 x Dense 4096 at batch 1024, float32 and mixed_bfloat16): the step time, the training FLOPs per
   step from XLA's cost analysis of Keras' own train step against a count by hand (3 x forward), the
   achieved FLOP/s, and GPM's SM activity, SM occupancy, tensor-core activity and DRAM bandwidth over
   the timed steps, beside NVML's plain utilisation.
3. Whether float32 matmuls use the tensor cores (TF32) under JAX's defaults.

Everything runs on synthetic data. Without a GPU (a CPU dry run) the GPM part says why it is skipped
and the rest runs, so the script is tested before it spends device time. Writes gpm_probe.json and
gpm_probe.txt to --out.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

from article import CIFAR_CNN  # noqa: E402 - bench/ is the script's folder, so on sys.path

# Dense TFLOP/s from NVIDIA's datasheets (no sparsity): FP32 (non-tensor), TF32 tensor, BF16 tensor.
# H100 SXM5: 67 / 494.7 / 989.4; H100 PCIe: 51 / 378 / 756; H200 SXM: as H100 SXM.
PEAKS_TFLOPS = {
    "H100 PCIe": (51.0, 378.0, 756.0),
    "H100": (67.0, 494.7, 989.4),
    "H200": (67.0, 494.7, 989.4),
}

LINES = []


def say(text=""):
    print(text, flush=True)
    LINES.append(text)


def peaks_for(name):
    for key, value in PEAKS_TFLOPS.items():  # "H100 PCIe" is checked before "H100"
        if key in (name or ""):
            return key, value
    return None, None


class Gpm:
    """NVML and its GPM calls, straight through pynvml (this is a probe, not the product)."""

    METRICS = {
        "sm_activity_pct": "NVML_GPM_METRIC_SM_UTIL",
        "sm_occupancy_pct": "NVML_GPM_METRIC_SM_OCCUPANCY",
        "tensor_any_pct": "NVML_GPM_METRIC_ANY_TENSOR_UTIL",
        "tensor_hmma_pct": "NVML_GPM_METRIC_HMMA_TENSOR_UTIL",
        "dram_bw_pct": "NVML_GPM_METRIC_DRAM_BW_UTIL",
        "fp32_pct": "NVML_GPM_METRIC_FP32_UTIL",
        "fp16_pct": "NVML_GPM_METRIC_FP16_UTIL",
        "graphics_pct": "NVML_GPM_METRIC_GRAPHICS_UTIL",
    }

    def __init__(self):
        self.ok = False
        self.why = None
        self.info = {}
        try:
            import pynvml
        except ImportError as exc:
            self.why = f"pynvml missing: {exc}"
            return
        self.p = pynvml
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - a CPU dry run lands here
            self.why = f"nvmlInit failed: {exc}"
            return
        self.h = pynvml.nvmlDeviceGetHandleByIndex(0)
        name = pynvml.nvmlDeviceGetName(self.h)
        self.name = name.decode() if isinstance(name, bytes) else name
        self.info = {
            "name": self.name,
            "driver": _text(pynvml.nvmlSystemGetDriverVersion()),
            "pynvml_version": getattr(pynvml, "__version__", None) or _dist_version("nvidia-ml-py"),
            "has_gpm_functions": all(hasattr(pynvml, f) for f in ("nvmlGpmQueryDeviceSupport", "nvmlGpmSampleAlloc",
                                                                   "nvmlGpmSampleGet", "nvmlGpmMetricsGet")),
        }
        try:
            self.info["mig_mode"] = list(pynvml.nvmlDeviceGetMigMode(self.h))
        except Exception as exc:  # noqa: BLE001
            self.info["mig_mode"] = f"error: {exc}"
        try:
            support = pynvml.nvmlGpmQueryDeviceSupport(self.h)
            self.info["gpm_supported"] = bool(support.isSupportedDevice)
        except Exception as exc:  # noqa: BLE001
            self.info["gpm_supported"] = False
            self.why = f"nvmlGpmQueryDeviceSupport: {type(exc).__name__}: {exc}"
            return
        if not self.info["gpm_supported"]:
            self.why = "the device says GPM is not supported"
            return
        self.ids = {k: getattr(pynvml, v) for k, v in self.METRICS.items() if hasattr(pynvml, v)}
        self.ok = True

    def sample(self):
        s = self.p.nvmlGpmSampleAlloc()
        self.p.nvmlGpmSampleGet(self.h, s)
        return s

    def metrics(self, s1, s2):
        p = self.p
        get = p.c_nvmlGpmMetricsGet_t()
        get.version = p.NVML_GPM_METRICS_GET_VERSION
        get.numMetrics = len(self.ids)
        get.sample1, get.sample2 = s1, s2
        for i, mid in enumerate(self.ids.values()):
            get.metrics[i].metricId = mid
        p.nvmlGpmMetricsGet(get)
        out = {}
        for i, key in enumerate(self.ids):
            m = get.metrics[i]
            out[key] = round(m.value, 3) if m.nvmlReturn == 0 else f"nvmlReturn {m.nvmlReturn}"
        return out

    def free(self, *samples):
        for s in samples:
            self.p.nvmlGpmSampleFree(s)

    def util_samples_mean(self, since_us):
        try:
            _, samples = self.p.nvmlDeviceGetSamples(self.h, 1, since_us)
        except Exception:  # noqa: BLE001
            return None
        vals = [s.sampleValue.uiVal for s in samples if s.timeStamp > since_us]
        return (sum(vals) / len(vals), len(vals)) if vals else None

    def call_costs(self, reps=30):
        """Median seconds per call of the GPM calls a sampler would make each tick."""
        out = {}
        samples = []
        t = []
        for _ in range(reps):
            t0 = time.perf_counter()
            samples.append(self.sample())
            t.append(time.perf_counter() - t0)
            time.sleep(0.01)
        out["alloc_and_sample_get_s"] = statistics.median(t)
        t = []
        for a, b in zip(samples, samples[1:]):
            t0 = time.perf_counter()
            self.metrics(a, b)
            t.append(time.perf_counter() - t0)
        out["metrics_get_s"] = statistics.median(t)
        self.free(*samples)
        return out


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


def _dist_version(name):
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001
        return None


def cnn():
    """The article's CNN (bench/article.py), compiled without metrics."""
    namespace = {}
    exec(CIFAR_CNN, namespace)
    return namespace["cifar_cnn"](metrics=())


def cnn_hand_flops(batch):
    """Multiply-adds x 2 of the convolutions and dense layers (forward), x 3 for training."""
    convs = [  # (output h, w, cin, cout, k)
        (30, 30, 3, 32, 3),
        (13, 13, 32, 64, 3),
        (4, 4, 64, 64, 3),
    ]
    fwd = sum(2 * h * w * cin * cout * k * k for h, w, cin, cout, k in convs)
    fwd += 2 * (4 * 4 * 64) * 64 + 2 * 64 * 10
    return 3 * fwd * batch


def dense_stack(width=4096, depth=4):
    import keras

    layers = [keras.Input((width,))] + [keras.layers.Dense(width, activation="relu") for _ in range(depth - 1)]
    layers.append(keras.layers.Dense(width))
    model = keras.Sequential(layers)
    model.compile(keras.optimizers.SGD(1e-4), "mse")
    return model


def dense_hand_flops(batch, width=4096, depth=4):
    return 3 * depth * 2 * batch * width * width


def time_fit_steps(model, x, y, batch, epochs):
    """Per-step seconds of model.fit from fits of E and 2E epochs over the same small array (the
    difference drops the fit's fixed cost; the array is re-sent to the device each step, as in a fit)."""
    steps_per_epoch = len(x) // batch

    def run(e):
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=e, verbose=0, shuffle=False)
        return time.perf_counter() - t0

    run(1)  # compile
    t1 = run(epochs)
    t2 = run(2 * epochs)
    return (t2 - t1) / (epochs * steps_per_epoch)


def time_device_loop(model, xb, yb, steps):
    """Per-step seconds of Keras' own train step, jitted, on one batch already on the device: the
    compute alone, no input pipeline, no callbacks. Also XLA's FLOPs of that step."""
    import jax

    state = model._get_jax_state(trainable_variables=True, non_trainable_variables=True,
                                 optimizer_variables=True, metrics_variables=True)
    data = (jax.device_put(xb), jax.device_put(yb), None)
    fn = jax.jit(model.train_step)
    lowered = fn.lower(state, data)
    raw = {}
    # Run 1 found the compiled step's figure far under the hand count on the GPU (cuBLAS/cuDNN calls
    # are opaque to XLA's cost model there); the lowered (not yet optimised) HLO's figure is read too.
    for label, get in (("compiled", lambda: lowered.compile().cost_analysis()), ("lowered", lowered.cost_analysis)):
        try:
            cost = get()
            if isinstance(cost, (list, tuple)):
                cost = cost[0] if cost else {}
            raw[label] = {k: float(cost[k]) for k in ("flops", "bytes accessed") if k in cost}
        except Exception as exc:  # noqa: BLE001
            raw[label] = f"{type(exc).__name__}: {exc}"
    lowered_flops = raw["lowered"].get("flops") if isinstance(raw["lowered"], dict) else None
    compiled_flops = raw["compiled"].get("flops") if isinstance(raw["compiled"], dict) else None
    flops = lowered_flops or compiled_flops
    _, state = fn(state, data)
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    for _ in range(steps):
        _, state = fn(state, data)
    jax.block_until_ready(state)
    return (time.perf_counter() - t0) / steps, flops, raw


def watched(gpm, work):
    """Run work() with GPM read over it (two samples) and every 0.5 s, and NVML's utilisation samples."""
    if not gpm.ok:
        return work(), {}
    since = int(time.time() * 1e6)
    t0 = time.perf_counter()
    s1 = gpm.sample()
    series = []
    stop = threading.Event()

    def every_half_second():
        prev = gpm.sample()
        while not stop.wait(0.5):
            cur = gpm.sample()
            series.append(gpm.metrics(prev, cur))
            gpm.free(prev)
            prev = cur
        gpm.free(prev)

    th = threading.Thread(target=every_half_second, daemon=True)
    th.start()
    try:
        value = work()
    finally:
        stop.set()
        th.join()
        s2 = gpm.sample()
        seen = {"window_s": time.perf_counter() - t0, "gpm": gpm.metrics(s1, s2), "gpm_every_half_second": series,
                "nvml_util_mean_and_samples": gpm.util_samples_mean(since)}
        gpm.free(s1, s2)
    return value, seen


def workload(name, build, hand, batch, epochs, x_shape, y_fn, gpm, policy=None, loop_steps=200):
    import keras
    import numpy as np

    say(f"\n== {name}: batch {batch}, policy {policy or 'float32'}")
    old = keras.mixed_precision.dtype_policy().name
    if policy:
        keras.mixed_precision.set_dtype_policy(policy)
    try:
        model = build()
        rng = np.random.default_rng(0)
        n = batch * 16
        x = rng.random((n,) + x_shape, dtype=np.float32)
        y = y_fn(rng, n)
        row = {"workload": name, "batch": batch, "policy": policy or "float32", "hand_flops_per_step": hand(batch)}
        row["fit_step_s"], row["fit_watch"] = watched(gpm, lambda: time_fit_steps(model, x, y, batch, epochs))
        (row["loop_step_s"], flops, raw), row["loop_watch"] = watched(
            gpm, lambda: time_device_loop(model, x[:batch], y[:batch], loop_steps))
        row.update(xla_flops_per_step=flops, xla_cost=raw)
        if flops:
            row["xla_over_hand"] = flops / row["hand_flops_per_step"]
        say(f"XLA cost analysis: {raw}")
        basis = row["hand_flops_per_step"]  # run 1: the compiled step's XLA figure is unusable on a GPU
        key, peaks = peaks_for(gpm.info.get("name"))
        say(f"FLOPs/step XLA {flops or 0:.4g} vs hand (3 x forward) {row['hand_flops_per_step']:.4g}"
            + (f" (ratio {row['xla_over_hand']:.3f})" if flops else ""))
        for how in ("fit", "loop"):
            step = row[f"{how}_step_s"]
            tflops = basis / step / 1e12
            row[f"{how}_tflops"] = tflops
            text = f"{how:4}: step {step * 1e3:.3f} ms, {tflops:.3f} TFLOP/s"
            if peaks:
                fp32, tf32, bf16 = peaks
                row["peak_row"] = key
                row[f"{how}_mfu"] = {"fp32": tflops / fp32, "tf32": tflops / tf32, "bf16": tflops / bf16}
                text += f"; MFU vs FP32 {tflops / fp32:.1%}, TF32 {tflops / tf32:.1%}, BF16 {tflops / bf16:.1%}"
            say(text)
            seen = row[f"{how}_watch"]
            if seen:
                say(f"      GPM over {seen['window_s']:.2f} s: {seen['gpm']}")
                say(f"      NVML utilisation (driver samples): {seen['nvml_util_mean_and_samples']}; GPM SM activity "
                    "every 0.5 s: " + ", ".join(str(r.get('sm_activity_pct')) for r in seen["gpm_every_half_second"][:10]))
        return row
    finally:
        keras.mixed_precision.set_dtype_policy(old)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=".")
    ap.add_argument("--only", help="comma-separated workload numbers (1-4) to run")
    ap.add_argument("--quick", action="store_true", help="a CPU dry run: fewer steps, smaller dense model")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    import jax
    import keras
    import numpy as np

    say(f"gpm_probe on {platform.node()}, Python {platform.python_version()}, Keras {keras.__version__} "
        f"({keras.backend.backend()}), JAX {jax.__version__}, devices {jax.devices()}")
    say(f"jax_default_matmul_precision = {jax.config.jax_default_matmul_precision}")
    gpm = Gpm()
    out = {"gpm": gpm.info, "gpm_unavailable": gpm.why, "workloads": []}
    say(f"NVML/GPM: {gpm.info} {('; GPM skipped: ' + gpm.why) if gpm.why else ''}")
    if gpm.ok:
        idle_since = int(time.time() * 1e6)
        a = gpm.sample()
        time.sleep(1.0)
        b = gpm.sample()
        out["idle_1s"] = gpm.metrics(a, b)
        gpm.free(a, b)
        say(f"GPM idle, 1 s: {out['idle_1s']}; NVML util {gpm.util_samples_mean(idle_since)}")
        out["call_costs"] = gpm.call_costs()
        say(f"GPM call costs (median): {out['call_costs']}")

    def labels10(rng, n):
        return rng.integers(0, 10, n).astype("int32")

    epochs = 1 if args.quick else 40  # of 16 steps each
    width = 512 if args.quick else 4096
    dense_epochs = 1 if args.quick else 10
    jobs = [
        ("cifar_cnn", cnn, cnn_hand_flops, 32, epochs, (32, 32, 3), labels10, None),
        ("cifar_cnn", cnn, cnn_hand_flops, 256, epochs // 2 or 1, (32, 32, 3), labels10, None),
        ("dense_4x4096" if not args.quick else "dense_4x512", lambda: dense_stack(width),
         lambda b: dense_hand_flops(b, width), 1024, dense_epochs, (width,),
         lambda rng, n: rng.random((n, width), dtype=np.float32), None),
        ("dense_4x4096" if not args.quick else "dense_4x512", lambda: dense_stack(width),
         lambda b: dense_hand_flops(b, width), 1024, dense_epochs, (width,),
         lambda rng, n: rng.random((n, width), dtype=np.float32), "mixed_bfloat16"),
    ]
    if args.only:
        jobs = [jobs[int(i) - 1] for i in args.only.split(",")]
    for job in jobs:
        try:
            out["workloads"].append(workload(*job[:7], gpm, policy=job[7], loop_steps=5 if args.quick else 200))
        except Exception as exc:  # noqa: BLE001 - one failed workload must not lose the others
            say(f"{job[0]} failed: {type(exc).__name__}: {exc}")
            out["workloads"].append({"workload": job[0], "error": f"{type(exc).__name__}: {exc}"})
        with open(os.path.join(args.out, "gpm_probe.json"), "w") as f:
            json.dump(out, f, indent=1, default=str)
    with open(os.path.join(args.out, "gpm_probe.txt"), "w") as f:
        f.write("\n".join(LINES) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
