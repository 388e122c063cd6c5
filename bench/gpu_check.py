"""GPU validation of %device_info and %%timed_fit, against independent NVML and nvidia-smi readings.

Prepared for the GPU machine (see ../shared/device/README.md), Keras 3 on the JAX backend:

    KERAS_BACKEND=jax PYTHONUNBUFFERED=1 python3 bench/gpu_check.py --out "$OUT"

It runs, in a real IPython shell, on synthetic CIFAR-10-shaped data (no download there):
1. %device_info (after importing jax and keras), and checks that NVML and JAX both see the GPU;
2. the article's CIFAR-10 CNN (Conv2D 32-64-64, Dense 64, 10; batch 32, 1563 steps an epoch) under
   %%timed_fit, while a separate thread polls NVML directly and `nvidia-smi -lms` logs to a file;
   the report's utilisation, memory, power and energy are compared with those readings;
3. the same model built and trained under keras.device("cpu:0") for --cpu-steps steps: the speed-up;
4. the overhead: the compiled model fitted plain and under %%timed_fit, interleaved (target <= 2%).

Writes gpu_check.json and gpu_check.txt to --out. Without a GPU (a CPU dry run) the GPU checks are
reported as skipped, and everything else runs.
"""

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

from article import CIFAR_CNN  # noqa: E402 - bench/ is the script's folder, so on sys.path
from checklist import Checklist  # noqa: E402

SETUP = CIFAR_CNN


class NvmlMonitor:
    """Independent readings: pynvml called directly (not through colab_magic), every 50 ms."""

    def __init__(self, interval=0.05):
        import pynvml

        self.pynvml = pynvml
        pynvml.nvmlInit()
        self.handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        self.interval = interval
        self.rows = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def energy_mj(self):
        return self.pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)

    def energy_j_between(self, t0, t1):
        """Energy over [t0, t1] from this monitor's own power readings (trapezoids)."""
        rows = [(t, p) for t, _, _, p in self.rows if t0 <= t <= t1]
        return sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in zip(rows, rows[1:]))

    def _run(self):
        p, h = self.pynvml, self.handle
        while not self._stop.wait(self.interval):
            util = p.nvmlDeviceGetUtilizationRates(h).gpu
            mem = p.nvmlDeviceGetMemoryInfo(h).used
            power = p.nvmlDeviceGetPowerUsage(h) / 1000
            self.rows.append((time.time(), util, mem, power))

    def __enter__(self):
        self.energy_start = self.energy_mj()
        self.t_start = time.time()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.energy_end = self.energy_mj()
        self.t_end = time.time()
        self.pynvml.nvmlShutdown()

    def summary(self):
        utils = [r[1] for r in self.rows]
        return {
            "readings": len(self.rows),
            "util_mean": statistics.fmean(utils) if utils else None,
            "memory_peak": max((r[2] for r in self.rows), default=None),
            "power_mean_w": statistics.fmean(r[3] for r in self.rows) if self.rows else None,
            "energy_j": (self.energy_end - self.energy_start) / 1000,
            "seconds": self.t_end - self.t_start,
        }


def smi_log(path):
    if not shutil.which("nvidia-smi"):
        return None
    fh = open(path, "w")
    query = "timestamp,utilization.gpu,memory.used,power.draw,clocks.sm,clocks_event_reasons.active"
    return subprocess.Popen(
        ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits", "-lms", "200", "-i", "0"],
        stdout=fh, stderr=subprocess.STDOUT,
    )


def smi_summary(path):
    utils, mems, powers = [], [], []
    with open(path) as fh:
        for line in fh:
            parts = [p.strip() for p in line.split(",")]
            try:
                utils.append(float(parts[1]))
                mems.append(float(parts[2]))
                powers.append(float(parts[3]))
            except (ValueError, IndexError):
                continue
    if not utils:
        return None
    return {
        "readings": len(utils),
        "util_mean": statistics.fmean(utils),
        "memory_peak_mib": max(mems),
        "power_mean_w": statistics.fmean(powers),
    }


def nvml_latency(calls=20):
    """Microseconds per call of each NVML function the sampler uses, wall and CPU, on GPU 0."""
    import pynvml

    pynvml.nvmlInit()
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    probes = {
        "GetMemoryInfo": lambda: pynvml.nvmlDeviceGetMemoryInfo(h),
        "GetUtilizationRates": lambda: pynvml.nvmlDeviceGetUtilizationRates(h),
        "GetPowerUsage": lambda: pynvml.nvmlDeviceGetPowerUsage(h),
        "GetTotalEnergyConsumption": lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(h),
        "GetTemperature": lambda: pynvml.nvmlDeviceGetTemperature(h, 0),
        "GetClockInfo(SM)": lambda: pynvml.nvmlDeviceGetClockInfo(h, 1),
        "GetCurrentClocksEventReasons": lambda: pynvml.nvmlDeviceGetCurrentClocksEventReasons(h),
        "GetComputeRunningProcesses": lambda: pynvml.nvmlDeviceGetComputeRunningProcesses(h),
        "GetGraphicsRunningProcesses": lambda: pynvml.nvmlDeviceGetGraphicsRunningProcesses(h),
        "GetSamples(GPU_UTIL)": lambda: pynvml.nvmlDeviceGetSamples(h, 1, int((time.time() - 1) * 1e6)),
    }
    out = {}
    for name, fn in probes.items():
        try:
            fn()
        except pynvml.NVMLError as exc:
            out[name] = {"error": str(exc)}
            continue
        w, c = time.perf_counter(), time.thread_time()
        for _ in range(calls):
            fn()
        out[name] = {"wall_us": 1e6 * (time.perf_counter() - w) / calls, "cpu_us": 1e6 * (time.thread_time() - c) / calls}
    pynvml.nvmlShutdown()
    return out


def close(a, b, rel):
    return a is not None and b is not None and abs(a - b) <= rel * max(abs(b), 1e-9)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=".")
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cpu-steps", type=int, default=40)
    parser.add_argument("--overhead-steps", type=int, default=1563)  # one article epoch
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    checklist = Checklist()
    say, check, checks = checklist.say, checklist.check, checklist.checks

    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "colab_magic")
    ip.run_cell(SETUP + "\nimport time").raise_error()
    import jax
    import keras

    has_gpu = any(d.platform == "gpu" for d in jax.devices())
    say(f"colab_magic GPU check, {time.strftime('%Y-%m-%d %H:%M:%S')}; Python {platform.python_version()}, "
        f"keras {keras.__version__} ({keras.backend.backend()}), jax {jax.__version__}, devices {jax.devices()}")

    if has_gpu:
        lat = nvml_latency()
        result_latency = lat
        say("NVML call latency on GPU 0 (20 calls each): " + "; ".join(
            f"{k} {v['wall_us']:.0f} us wall / {v['cpu_us']:.0f} us CPU" if "wall_us" in v else f"{k} {v['error']}"
            for k, v in lat.items()))
    else:
        result_latency = None

    # 1. %device_info
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        info = ip.run_line_magic("device_info", "-o")
    say("\n--- %device_info ---\n" + buf.getvalue())
    jax_info = next((f for f in info.frameworks if f.name == "jax"), None)
    if has_gpu:
        check("device_info sees the GPU through NVML", len(info.gpus) >= 1 and info.gpus[0].name,
              f"{[g.name for g in info.gpus]}, driver {info.driver_version}, CUDA {info.cuda_driver_version}")
        check("device_info: JAX sees the GPU, no diagnosis about it", jax_info and jax_info.gpu_count >= 1
              and not any("sees no GPU" in d for d in info.diagnosis), f"jax devices {jax_info and jax_info.devices}")
        me = [p for g in info.gpus for p in (g.processes or []) if p.is_self]
        check("device_info marks this process on the GPU", bool(me), f"{[(p.pid, p.gpu_memory) for p in me]}")
    else:
        say("[SKIP] no GPU: GPU checks of %device_info skipped")

    steps_per_epoch = -(-args.samples // 32)
    ip.run_cell(
        f"rng = np.random.default_rng(0)\n"
        f"x = rng.random(({args.samples}, 32, 32, 3), dtype=np.float32)\n"
        f"y = rng.integers(0, 10, {args.samples})"
    ).raise_error()

    # 2. the CNN on the GPU under %%timed_fit, with independent monitors
    result = {"argv": sys.argv, "device_info": info.to_dict(), "checks": checks, "nvml_latency_us": result_latency}
    if has_gpu:
        smi_path = os.path.join(args.out, "nvidia_smi.csv")
        smi = smi_log(smi_path)
        with NvmlMonitor() as mon:
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                ip.run_cell(
                    f"%%timed_fit -v R\nmodel = cifar_cnn()\n"
                    f"history = model.fit(x, y, batch_size=32, epochs={args.epochs}, verbose=0)"
                ).raise_error()
        if smi is not None:
            smi.terminate()
            smi.wait()
        say("\n--- %%timed_fit, CIFAR-10 CNN on the GPU ---\n" + buf.getvalue())
        rep = ip.user_ns["R"][0]
        g = rep.gpus[0]
        ind = mon.summary()
        smi_s = smi_summary(smi_path) if smi is not None else None
        result.update(gpu_report=rep.to_dict(), independent_nvml=ind, nvidia_smi=smi_s)
        say(f"independent NVML: {json.dumps(ind)}")
        say(f"nvidia-smi: {json.dumps(smi_s)}")
        check("fit ran on the GPU", rep.device and rep.device.startswith("GPU"), f"device {rep.device}")
        check("steps per epoch as the article (1563 at batch 32)", rep.steps_per_epoch == steps_per_epoch,
              f"{rep.steps_per_epoch}")
        check("utilisation above zero and plausible", g.util_mean is not None and 0 < g.util_mean <= 100,
              f"report {g.util_mean:.1f}% ({g.util_source}, {g.util_samples} samples), "
              f"independent polled {ind['util_mean']:.1f}%")
        check("utilisation agrees with independent polling (within 15 points)",
              abs(g.util_mean - ind["util_mean"]) <= 15, f"{g.util_mean:.1f} vs {ind['util_mean']:.1f}")
        check("memory peak agrees with independent NVML (within 2%)", close(g.memory_peak, ind["memory_peak"], 0.02),
              f"{g.memory_peak / 2**20:.0f} MiB vs {ind['memory_peak'] / 2**20:.0f} MiB")
        check("power mean agrees with independent NVML (within 10%)", close(g.power_mean_w, ind["power_mean_w"], 0.10),
              f"{g.power_mean_w:.1f} W vs {ind['power_mean_w']:.1f} W")
        # The report's energy covers the sampler's window; integrate the monitor's own power
        # readings over that same window for an independent figure.
        start_wall, stop_wall = ip.user_ns["R"][0].sampler.started, ip.user_ns["R"][0].sampler.stopped
        ind_energy = mon.energy_j_between(start_wall, stop_wall) if start_wall and stop_wall else None
        check("energy agrees with independent power readings over the same window (within 10%)",
              close(g.energy_j, ind_energy, 0.10),
              f"{g.energy_j:.0f} J (energy counter, fit) vs {ind_energy and round(ind_energy)} J "
              f"(integrated 50 ms power readings over the same {stop_wall - start_wall:.1f} s)")
        per_epoch = sum(e.energy_j[0] for e in rep.epochs)
        check("per-epoch energy adds up to the total (within 10%)", close(per_epoch, g.energy_j, 0.10),
              f"{per_epoch:.0f} J vs {g.energy_j:.0f} J")
        check("sampler cost <= 0.5% of a core", rep.sampler.cost_pct_of_core <= 0.5,
              f"{rep.sampler.cost_pct_of_core:.3f}%")
        if rep.framework_memory_peak:
            say(f"JAX peak_bytes_in_use: {rep.framework_memory_peak / 2**20:.0f} MiB "
                f"(NVML shows {g.memory_peak / 2**20:.0f} MiB: JAX preallocates)")
    else:
        say("[SKIP] no GPU: the timed GPU fit and its independent comparison skipped")

    # 3. CPU vs GPU
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ip.run_cell(
            "%%timed_fit -v RC\nwith keras.device('cpu:0'):\n    cpu_model = cifar_cnn()\n"
            f"    cpu_model.fit(x, y, batch_size=32, epochs=1, steps_per_epoch={args.cpu_steps}, verbose=0)"
        ).raise_error()
    say("\n--- %%timed_fit, the same CNN under keras.device('cpu:0') ---\n" + buf.getvalue())
    cpu = ip.user_ns["RC"][0]
    check("CPU fit ran on the CPU", cpu.device == "CPU:0", f"device {cpu.device}")
    cpu_epoch = cpu.step.median * steps_per_epoch
    result["cpu_report"] = cpu.to_dict()
    if has_gpu:
        gpu_med = rep.step.median
        speedup = cpu.step.median / gpu_med
        gpu_epoch = statistics.median(e.time_s for e in rep.epochs[1:]) if len(rep.epochs) > 1 else rep.epochs[0].time_s
        result["speedup"] = {"cpu_step_ms": 1000 * cpu.step.median, "gpu_step_ms": 1000 * gpu_med,
                             "speedup": speedup, "cpu_epoch_projected_s": cpu_epoch, "gpu_epoch_measured_s": gpu_epoch}
        say(f"speed-up: CPU {1000 * cpu.step.median:.2f} ms/step vs GPU {1000 * gpu_med:.2f} ms/step -> "
            f"{speedup:.1f}x; epoch: CPU {cpu_epoch:.1f} s (projected, {steps_per_epoch} x median) vs GPU "
            f"{gpu_epoch:.1f} s (measured). Article: 140 s vs 7 s on a Colab GPU.")

    # 3b. the same comparison done by %%timed_fit --compare (CPU and GPU columns, from the same start)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ip.run_cell(
            "%%timed_fit --compare --whatif spe,batch,mixed,jit --no-history -v RX\n"
            "cmp_model = cifar_cnn()\ncmp_model.fit(x, y, batch_size=32, epochs=2, verbose=0)"
        ).raise_error()
    say("\n--- %%timed_fit --compare ---\n" + buf.getvalue())
    rx = ip.user_ns["RX"]
    comp = rx.comparisons[0]
    result["compare"] = rx.to_dict()["comparisons"]
    cols = {r.device: r for r in comp.runs}
    if has_gpu:
        g_run, c_run = cols.get("GPU:0"), cols.get("CPU:0")
        check("--compare has a CPU and a GPU column", g_run is not None and c_run is not None and not (g_run.error or c_run.error),
              f"{[(r.device, r.error) for r in comp.runs]}")
        if g_run is not None and c_run is not None and g_run.step_mean_s:
            check("--compare: the GPU is faster than the CPU", g_run.speedup and g_run.speedup > 1,
                  f"speed-up {g_run.speedup:.1f}x ({1000 * c_run.step_mean_s:.2f} vs {1000 * g_run.step_mean_s:.2f} ms/step, means)")
            measured = rx.reports[0].epochs[1].time_s
            err = 100 * (g_run.projected_epoch_s / measured - 1)
            lo, hi = g_run.projected_epoch_interval_s or (float("nan"), float("nan"))
            check("--compare: the measured GPU epoch lies inside the projected epoch's 95% interval",
                  lo <= measured <= hi,
                  f"projected {g_run.projected_epoch_s:.2f} s ({lo:.2f}-{hi:.2f}) vs measured {measured:.2f} s ({err:+.1f}%); "
                  f"GPU window {g_run.timed_steps} steps in {g_run.timed_s:.2f} s")
            check("--compare costs <= 10% of a GPU epoch plus the CPU's window",
                  comp.wall_s <= 0.10 * measured + (c_run.trial_s or 0) + 5,
                  f"{comp.wall_s:.2f} s (CPU trial {c_run.trial_s:.2f} s included; compiling a copy per device); "
                  f"budget {comp.budget_s:.2f} s")
    else:
        check("--compare on a CPU-only machine: one CPU column", list(cols) == ["CPU:0"], f"{list(cols)}")
    # 3c. --whatif on the dispatch-bound CNN: does steps_per_execution pay, as the verdict says?
    w = rx.whatifs[0]
    result["whatif"] = rx.to_dict()["whatifs"]
    by_variant = {r.variant: r for r in w.runs}
    say("--whatif: " + "; ".join(f"{r.variant}: " + (f"{r.speedup:.2f}x ({r.speedup_interval[0]:.2f}-"
                                                     f"{r.speedup_interval[1]:.2f})" if r.speedup_interval else
                                                     f"error {r.error}") for r in w.runs)
        + f"; cost {w.wall_s:.2f} s against a budget of {w.budget_s or 0:.2f} s")
    spe = by_variant.get("steps_per_execution=32")
    check("--whatif: steps_per_execution=32 measured on the model's device", spe is not None and spe.error is None
          and spe.speedup_interval is not None, f"{spe and (spe.speedup, spe.speedup_interval, spe.error)}")
    if has_gpu and spe is not None and spe.speedup_interval:
        check("--whatif: steps_per_execution=32 is a clear gain on the dispatch-bound CNN",
              spe.speedup_interval[0] > 1.15, f"{spe.speedup:.2f}x ({spe.speedup_interval[0]:.2f}-{spe.speedup_interval[1]:.2f})")

    # 4. overhead against a plain fit, interleaved
    target = "model" if has_gpu else "cpu_model"
    n = args.overhead_steps
    # "sync": a plain fit plus a callback that only overrides on_train_batch_end. On JAX such a
    # callback turns off Keras' async dispatch of batch-end hooks, as the step timer does: the
    # difference between "sync" and "plain" is that price alone.
    ip.run_cell(
        "class SyncOnly(keras.callbacks.Callback):\n"
        "    def on_train_batch_end(self, batch, logs=None):\n"
        "        pass"
    ).raise_error()
    fit = f"_h = {target}.fit(x, y, batch_size=32, epochs=1, steps_per_epoch={{n}}, verbose=0, shuffle=False{{extra}})"
    ip.run_cell(fit.format(n=n, extra="")).raise_error()
    runs = {"plain": [], "timed": [], "sync": [], "one": []}
    medians, means, inner, stops = [], [], [], []
    for _ in range(args.reps):
        for kind in runs:
            code = fit.format(n=1 if kind == "one" else n, extra=", callbacks=[SyncOnly()]" if kind == "sync" else "")
            if kind == "timed":
                code = f"%%timed_fit -q -v RO\n_t0 = time.perf_counter()\n{code}\n_inner = time.perf_counter() - _t0"
            t = time.perf_counter()
            ip.run_cell(code).raise_error()
            runs[kind].append(time.perf_counter() - t)
        medians.append(ip.user_ns["RO"][0].step.median)
        means.append(ip.user_ns["RO"][0].step.mean)
        inner.append(ip.user_ns["_inner"])
        stops.append(ip.user_ns["RO"][0].sampler.stop_wait_s)
    plain, timed, one, sync = runs["plain"], runs["timed"], runs["one"], runs["sync"]
    ratios = [t / p for t, p in zip(timed, plain)]
    overhead = 100 * (statistics.median(ratios) - 1)
    independent = [(p - o) / (n - 1) for p, o in zip(plain, one)]
    step_err = 100 * (statistics.median(m / i for m, i in zip(medians, independent)) - 1)
    mean_err = 100 * (statistics.median(m / i for m, i in zip(means, independent)) - 1)
    sync_cost = 100 * (statistics.median(s / p for s, p in zip(sync, plain)) - 1)
    result["overhead"] = {"steps": n, "reps": args.reps, "plain_s": plain, "timed_s": timed, "one_step_s": one,
                          "sync_only_s": sync, "sync_only_pct": sync_cost,
                          "overhead_pct": overhead, "overhead_min_pct": 100 * (min(timed) / min(plain) - 1),
                          "step_error_pct": step_err, "mean_step_error_pct": mean_err}
    fit_call = 100 * (statistics.median(i / p for i, p in zip(inner, plain)) - 1)
    magic_ms = 1000 * statistics.median(t - i for t, i in zip(timed, inner))
    stop_ms = 1000 * statistics.median(stops)
    result["overhead"].update(fit_call_pct=fit_call, magic_outside_fit_ms=magic_ms, timed_inner_fit_s=inner,
                              sampler_stop_wait_ms=stop_ms)
    say(f"a do-nothing on_train_batch_end callback alone (no async dispatch) costs {sync_cost:+.2f}% over plain")
    say(f"of the overhead: the fit call itself (timer, sampler start/stop, report) {fit_call:+.2f}%; "
        f"the magic around it (parse, compile the cell, display) {magic_ms:.1f} ms; waiting for the "
        f"sampler's last reading {stop_ms:.1f} ms")
    where = "GPU" if has_gpu else "CPU"
    check(f"overhead on the {where} <= 2% (median of {args.reps} interleaved pairs, {n} steps)", overhead <= 2,
          f"{overhead:+.2f}% (min/min {result['overhead']['overhead_min_pct']:+.2f}%); plain {statistics.median(plain):.3f} s, "
          f"timed {statistics.median(timed):.3f} s")
    check("reported median step within 3% of (T(N) - T(1)) / (N - 1)", abs(step_err) <= 3,
          f"{step_err:+.2f}% (reported mean: {mean_err:+.2f}%)")

    return checklist.finish(args.out, "gpu_check", result)


if __name__ == "__main__":
    sys.exit(main())
