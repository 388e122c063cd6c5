"""Plain-language findings about a timed fit: what the numbers say, with the evidence and the fix.

Each rule is a small function of a :class:`~colab_magic.report.FitReport` that returns a
:class:`Finding` or None; :func:`findings` keeps at most three. Rules read only the report, so they are
tested on synthetic reports as well as on real fits.
"""

from __future__ import annotations

import dataclasses

from . import peaks, variants
from .epoch_verdicts import epoch_start, slow_callback, validation_heavy
from .parts import Finding, InputWait, Loader
from .report import FitReport
from .run_summary import RunSummary, WhatIf
from .units import fmt, fmt_interval, gib, ms

IDLE_PCT = 5.0  # mean GPU utilisation below this: the GPU did nothing to speak of
MAX_FINDINGS = 3
TINY_STEP_S = 0.003  # below this a step is mostly Python and launch overhead (H200: CNN 1.3 ms, 10% busy)
THROTTLED_SHARE = 0.10  # share of readings with a throttling clock-event reason
MEMORY_FULL = 0.95  # share of GPU memory in use at the peak
COMPILE_SHARE = 0.30  # share of a short fit spent in its first (compiling) step
SHORT_FIT_S = 60.0
# DCGM's guidance for SM activity: 80% or more is good use; under 50% the GPU is likely used ineffectively.
SM_ACTIVITY_LOW = 50.0
KERNELS_MOSTLY_RUNNING = 50.0  # NVML utilisation: a kernel ran at least this share of the time
TENSOR_IDLE_PCT = 1.0  # GPM tensor activity below this: the tensor cores did nothing to speak of
BUSY_PCT = 20.0  # a GPU this busy does enough work for its precision to matter
MIXED_PRECISION_FIX = (
    "keras.mixed_precision.set_global_policy('mixed_float16') before building the model "
    "('mixed_bfloat16' on Ampere or newer), with the last layer in float32 (dtype='float32')"
)
# TensorFlow Profiler's thresholds for the share of a step spent waiting for input.
HIGHLY_INPUT_BOUND = 0.20
MODERATELY_INPUT_BOUND = 0.05
INPUT_FIX = (
    "in the tf.data pipeline: .map(f, num_parallel_calls=tf.data.AUTOTUNE), .cache() after the "
    "expensive steps if the data fits, and .prefetch(tf.data.AUTOTUNE) at the end; or a larger batch"
)


# What one batch from a DataLoader worker process costs the training process, at the least: receiving
# it, and releasing its shared memory after its step (bench/loader_handoff.py: 1.0 to 3.5 ms and 0.08 to
# 0.35 ms a batch of images held in memory, on 2 vCPUs, three runs): a batch that takes less to make in
# the training process would cost more with workers.
WORKER_HANDOFF_S = 0.001
READY_SHARE = 0.9  # of the batches already received when asked for: the workers keep up
HANDOFF_LIKE_S = 0.0035  # the most receiving measured (3.5 ms): a wait under it may be the receiving alone
CHEAP_GETITEM = "keep the Dataset's __getitem__ cheap (decode and augment once, or on the GPU)"


# The same advice in PyTorch's terms, for loop = "torch" (its own loop: no compile(), no policy)
TORCH_AUTOCAST_FIX = (
    "with torch.autocast('cuda', dtype=torch.bfloat16): around the forward pass and the loss (torch.float16 "
    "with torch.amp.GradScaler before Ampere); or torch.set_float32_matmul_precision('high') for TF32 on "
    "Ampere or newer"
)
TORCH_DISPATCH_FIX = (
    "a larger batch (DataLoader batch_size), and model = torch.compile(model) to fuse the small kernels "
    "(mode='reduce-overhead' also replays each step as one CUDA graph)"
)


def _torch(r: FitReport) -> bool:
    return r.loop == "torch"


def _in_terms(r: FitReport, keras: tuple[str, str], torch: tuple[str, str], marked: tuple[str, str]) -> tuple[str, str]:
    """A fix and its few words in the terms of the loop that trained: Keras' fit, a PyTorch loop, or a
    loop marked with colab_magic.step() (whose framework is not known: PyTorch's and JAX's ways both)."""
    return {"torch": torch, "marked": marked}.get(r.loop, keras)


def _loader_fix(r: FitReport, check: InputWait) -> tuple[str, str]:
    """The fix for a DataLoader that keeps the steps waiting, and its few words: from the loader's own
    settings, what a batch cost it, and this machine's cores. Workers only help where a batch costs more
    to make than to receive from one, and more workers than cores only take turns; pinned memory only
    speeds a copy to a GPU."""
    loader, cores = check.loader, r.host.logical_cores
    pin = ", pin_memory=True" if (r.device or "").startswith("GPU") and not (loader and loader.pin_memory) else ""
    if loader is None or cores is None:
        return (f"DataLoader(..., num_workers=N{pin}, persistent_workers=True): batches are made in N worker "
                f"processes while the model trains (N: the CPU's cores); {CHEAP_GETITEM}",
                "more DataLoader workers")
    workers, in_memory = loader.num_workers, loader.dataset == "TensorDataset"
    # under torchrun, the processes on this machine share its cores
    local = (r.cluster or {}).get("local_processes") or 1
    share = max(1, cores // local)
    cores_here = f"this machine has {cores} cores" + (f", {share} for each of its {local} processes" if local > 1 else "")
    cores = share
    whole_batches = ("" if loader.whole_batches else  # already: a larger batch is what is left
                     ", or whole batches taken from the tensors at once, with no collation: DataLoader(data, "
                     "sampler=BatchSampler(RandomSampler(data), batch_size, False), batch_size=None)")
    restarted = _restart_fix(r, check, loader)
    if restarted:
        return restarted
    if workers and in_memory:
        return (f"num_workers=0: a TensorDataset's batch is an index into tensors already in memory, made in this "
                f"process faster than it is received from a worker process ({ms(WORKER_HANDOFF_S)} or more a "
                f"batch); then a larger batch_size{whole_batches}", "num_workers=0")
    if not workers and loader.batch_wait_s < WORKER_HANDOFF_S:
        larger = "a larger batch (the BatchSampler's batch_size)" if loader.whole_batches else "a larger batch_size"
        return (f"{larger}, which spreads what each batch costs over more samples"
                f"{whole_batches if in_memory else ', and a cheaper __getitem__'}; not worker processes: a batch "
                f"takes {ms(loader.batch_wait_s, '.2f')} in the DataLoader here, and receiving one from a worker "
                f"takes longer ({ms(WORKER_HANDOFF_S)} or more)", "a larger batch_size")
    ready = loader.ready_share
    if workers and ready is not None and ready >= READY_SHARE:  # the workers keep up: the wait is receiving
        return (f"a larger batch_size (fewer batches to receive): the workers keep up, {ready:.0%} of the batches "
                f"were there when asked for, so each batch's {ms(loader.batch_wait_s, '.2f')} wait is receiving it "
                f"from a worker process; with a cheap __getitem__, num_workers=0 skips that: time both",
                "a larger batch_size")
    # workers already, and a wait about what receiving their batch costs: it may be all the wait is (when
    # not measured: a torch whose worker iterator moved its queue)
    handoff = (f"; if that does not help: each batch waits {ms(loader.batch_wait_s, '.2f')}, about what receiving "
               f"one from a worker costs (1 to 3.5 ms on 2 vCPUs), so the workers may keep up already, and a larger "
               f"batch_size (fewer batches to receive) is what helps"
               if workers and ready is None and loader.batch_wait_s < HANDOFF_LIKE_S else "")
    if workers < cores:
        return (f"DataLoader(..., num_workers={cores}{pin}, persistent_workers=True): batches are made in "
                f"{cores} worker processes while the model trains (num_workers={workers} now; {cores_here}); "
                f"{CHEAP_GETITEM}{handoff}",
                f"DataLoader num_workers={cores}" + (" and pin_memory=True" if pin else ""))
    restart = ("; and persistent_workers=True, so the workers are not started afresh each epoch"
               if not loader.persistent_workers and len(r.epochs) > 1 else "")
    return (f"a cheaper Dataset __getitem__ (decode and augment once and keep the tensors, or augment on the GPU): "
            f"the DataLoader's {workers} workers already match the cores ({cores_here}), and a batch still takes "
            f"longer to make than a step takes to train; more workers would only take turns{restart}"
            f"{'; pin_memory=True for the copy to the GPU' if pin else ''}{handoff}",
            "a cheaper Dataset __getitem__")


def _restart_fix(r: FitReport, check: InputWait, loader: Loader) -> tuple[str, str] | None:
    """Passes started over for each batch (next(iter(loader)) in the loop), where their starting is at
    least half the wait: one iterator, made once."""
    per_step_wait = check.wait_share * check.step_s
    if not loader.restarts or loader.restarts * loader.restart_s < 0.5 * per_step_wait * max(r.total_steps, 1):
        return None
    workers = loader.num_workers
    what = f", starting {workers} worker processes and shutting the last ones down" if workers else ""
    return (f"one iterator, made once: it = iter(loader) before the loop, next(it) in it, and iter(loader) again "
            f"only when it ends (StopIteration): the loop starts a new pass over the DataLoader for each batch "
            f"({loader.restarts:,} times, {ms(loader.restart_s)} each here{what})",
            "one DataLoader iterator, made once")


def gpu_unused(r: FitReport) -> Finding | None:
    """The framework trained on the CPU while a GPU was there."""
    if not r.gpus or not (r.device or "").startswith("CPU"):
        return None
    utils = ", ".join(f"{g.label} {g.util_mean:.0f}% busy" for g in r.gpus if g.util_mean is not None)
    return Finding(
        "gpu_unused",
        "GPU present but unused: the model trained on the CPU",
        f"weights on {r.device}; {utils or 'GPU utilisation not readable'}",
        "run %device_info: if the framework sees no GPU it says why and how to fix it; "
        + ("otherwise model.to('cuda') before making the optimizer, and each batch .to('cuda')" if _torch(r)
           else "otherwise build and fit the model outside any CPU device scope"),
    )


def idle_gpus(r: FitReport) -> Finding | None:
    """Several GPUs, and some of them sat idle while the fit ran on another."""
    if len(r.gpus) < 2 or r.device is None or not r.device.startswith("GPU"):
        return None
    used = int(r.device.split(":")[1])
    idle = [g for g in r.gpus if g.index != used and g.util_mean is not None and g.util_mean < IDLE_PCT]
    if not idle:
        return None
    busy = next((g for g in r.gpus if g.index == used), None)
    names = ", ".join(f"{g.label} ({g.util_mean:.0f}%)" for g in idle)
    where = f"{busy.label} ({busy.util_mean:.0f}%)" if busy and busy.util_mean is not None else r.device
    return Finding(
        "idle_gpus",
        f"{len(idle)} of {len(r.gpus)} GPUs sat idle: " + ", ".join(g.label for g in idle),
        f"mean utilisation {names}, while the fit ran on {where}",
        *_in_terms(r, ("to train on every GPU, build and compile the model under tf.distribute.MirroredStrategy() "
                       "(TensorFlow) or keras.distribution.set_distribution(keras.distribution.DataParallel()) (JAX)",
                       ""),
                   ("to train on every GPU: torchrun --nproc-per-node=N with DistributedDataParallel(model)",
                    "torchrun with DistributedDataParallel"),
                   ("to train on every GPU: DistributedDataParallel(model) under torchrun --nproc-per-node=N "
                    "(PyTorch), or each batch sharded over jax.devices() with jax.sharding (JAX)",
                    "data parallelism over every GPU")),
    )


def input_bound(r: FitReport) -> Finding | None:
    """Steps that wait for data: measured by the input check, or seen as an idle GPU beside a busy host.
    A measured wait is judged by the low end of its interval: what the noise could explain is not
    called input-bound."""
    check = r.input_wait
    if check:
        low = check.wait_share_low
        if low < MODERATELY_INPUT_BOUND:
            return None
        level = "Highly" if low >= HIGHLY_INPUT_BOUND else "Moderately"
        title = (f"{level} input-bound: {fmt_interval(check.wait_share, check.wait_share_interval, '.0f', '%', 100)} "
                 "of each step waits for data")
        if check.source == "DataLoader":  # measured in the user's own steps, not on a copy
            where = ("__next__ and in starting its passes over" if check.loader and check.loader.restarts
                     else "__next__")
            return Finding("input_bound", title,
                           f"{ms(check.step_s - check.compute_step_s)} of each {ms(check.step_s)} step spent in the "
                           f"DataLoader's {where} ({check.steps} steps)", *_loader_fix(r, check))
        return Finding(
            "input_bound",
            title,
            f"mean step {ms(check.step_s)} with your pipeline, {ms(check.compute_step_s)} "
            f"with one batch held in memory ({check.steps} steps of a copy of the model)",
            INPUT_FIX,
        )
    gpu = r.device_gpu
    cpu = r.host.cpu_process_mean
    if gpu is None or gpu.util_mean is None or cpu is None or not r.step or r.step.median < TINY_STEP_S:
        return None
    if gpu.util_mean < 50 and cpu >= 80:
        return Finding(
            "input_bound",
            "Likely input-bound: the GPU idles while the host is busy",
            f"{gpu.label} busy {gpu.util_mean:.0f}% of the time; this process used {cpu:.0f}% of a core; "
            f"median step {ms(r.step.median)}",
            INPUT_FIX + " (for a tf.data input, %%timed_fit --input-check on measures the wait)",
        )
    return None


def throttled(r: FitReport) -> Finding | None:
    """Clock-event reasons that slow a busy GPU: power cap, thermal, hardware slowdown."""
    hit = [g for g in r.gpus if g.throttled_fraction >= THROTTLED_SHARE]
    if not hit:
        return None
    parts = []
    for g in hit:
        reasons = ", ".join(f"{k} {100 * v:.0f}%" for k, v in g.throttling.items())
        parts.append(f"{g.label}: {reasons} of readings, SM clock mean {g.sm_clock_mean_mhz or 0:.0f} MHz")
    return Finding(
        "throttled",
        "GPU throttled: its clocks were held down while it worked",
        "; ".join(parts),
        "power cap: check the limit (nvidia-smi -q -d POWER); thermal: cooling or airflow; on a shared "
        "cloud GPU, the host's limits: a steady figure needs an unthrottled run",
    )


def memory(r: FitReport) -> Finding | None:
    """GPU memory near full: either a real out-of-memory risk or a framework's up-front reservation."""
    for g in r.gpus:
        peak, total = g.memory_peak, g.memory_total
        if not peak or not total or peak < MEMORY_FULL * total:
            continue
        own = r.framework_memory_peak
        if _torch(r) and own is not None and r.framework_memory_reserved and own < 0.5 * r.framework_memory_reserved:
            return Finding(  # PyTorch reserves as it goes: a cache far above what tensors use is fragmentation
                "memory_reserved",
                f"PyTorch's caching allocator holds far more of {g.label}'s memory than its tensors use",
                f"NVML: {gib(peak)} of {gib(total)} GiB in use; reserved at most {gib(r.framework_memory_reserved, '.2f')} "
                f"GiB, allocated at most {gib(own, '.2f')} GiB (torch.cuda.max_memory_reserved / max_memory_allocated)",
                "only if other work needs the GPU or an allocation fails: PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True "
                "in the environment before torch starts (less fragmentation), torch.cuda.empty_cache() between runs",
            )
        if own is not None and own < 0.5 * peak and not _torch(r):
            fix = (
                "tf.config.experimental.set_memory_growth(gpu, True) for each GPU before TensorFlow runs anything"
                if r.backend == "tensorflow"
                else "XLA_PYTHON_CLIENT_PREALLOCATE=false in the environment before JAX starts"
            )
            return Finding(
                "memory_reserved",
                f"{r.backend} reserved nearly all of {g.label}'s memory; the model needed far less",
                f"NVML: {gib(peak)} of {gib(total)} GiB in use; the framework's own peak {gib(own, '.2f')} GiB",
                f"only if other work needs the GPU: {fix}",
            )
        return Finding(
            "memory_full",
            f"{g.label}'s memory is nearly full: out-of-memory risk",
            f"peak {gib(peak)} of {gib(total)} GiB ({100 * peak / total:.0f}%)"
            + (f"; PyTorch's tensors at most {gib(own, '.2f')} GiB" if _torch(r) and own is not None else ""),
            *_in_terms(r, ("a smaller batch, mixed precision (keras.mixed_precision.set_global_policy('mixed_float16')), "
                           "or a smaller model", ""),
                       ("a smaller batch, torch.autocast (bfloat16 activations), or activation checkpointing "
                        "(torch.utils.checkpoint)", "a smaller batch or torch.autocast"),
                       ("a smaller batch, bfloat16 activations (torch.autocast in PyTorch, jnp.bfloat16 in JAX), or a "
                        "smaller model", "a smaller batch or bfloat16")),
        )
    return None


def dispatch_bound(r: FitReport) -> Finding | None:
    """Steps so short that launching them costs as much as running them."""
    if not r.step or r.step.median >= TINY_STEP_S or r.steps_per_execution > 1:
        return None
    gpu = r.device_gpu
    if gpu is not None and gpu.util_mean is not None and gpu.util_mean >= 50:
        return None
    busy = f"; {gpu.label} busy {gpu.util_mean:.0f}% of the time" if gpu and gpu.util_mean is not None else ""
    return Finding(
        "dispatch_bound",
        "Dispatch-bound: tiny steps, mostly overhead",
        f"median step {ms(r.step.median, '.2f')}" + (f" at batch {r.batch_size}" if r.batch_size else "")
        + (", one step per call" if r.loop == "keras" else "") + busy,
        *_in_terms(r, ("a larger batch; model.compile(..., steps_per_execution=32) to run many steps per call; or "
                       "jit_compile=True", ""),
                   (TORCH_DISPATCH_FIX, "a larger batch or torch.compile"),
                   ("a larger batch, and the whole step compiled as one: torch.compile(model) in PyTorch, jax.jit "
                    "over the update (optax's included) in JAX", "a larger batch or a compiled step")),
    )


def sms_idle(r: FitReport) -> Finding | None:
    """Kernels run most of the time, yet most SMs sit idle: each kernel is too small for the GPU."""
    gpu = r.device_gpu
    if gpu is None or gpu.util_mean is None or gpu.sm_activity_pct is None:
        return None
    if gpu.util_mean < KERNELS_MOSTLY_RUNNING or gpu.sm_activity_pct >= SM_ACTIVITY_LOW:
        return None
    occupancy = f" (SM occupancy {gpu.sm_occupancy_pct:.0f}%)" if gpu.sm_occupancy_pct is not None else ""
    return Finding(
        "sms_idle",
        "Kernels too small for this GPU: most of its SMs sat idle",
        f"a kernel was running {gpu.util_mean:.0f}% of the time, but on average only {gpu.sm_activity_pct:.0f}% "
        f"of {gpu.label}'s SMs were busy{occupancy}",
        "a larger batch (or wider layers), so that each kernel fills the GPU",
    )


def tensor_cores_idle(r: FitReport) -> Finding | None:
    """A float32 model on a GPU whose tensor cores it does not use."""
    gpu = r.device_gpu
    peak = peaks.find(gpu.name) if gpu is not None else None
    if gpu is None or peak is None or peak.fp16 is None or r.compute_dtype != "float32":
        return None
    if gpu.util_mean is None or gpu.util_mean < BUSY_PCT:
        return None  # an idle GPU has other problems first
    if gpu.tensor_activity_pct is not None:
        if gpu.tensor_activity_pct >= TENSOR_IDLE_PCT:
            return None
        evidence = f"tensor-core activity {gpu.tensor_activity_pct:.1f}% (GPM) while a kernel ran {gpu.util_mean:.0f}% of the time"
    elif peak.tf32 is None:
        evidence = (f"float32 on {gpu.label}, which has no TF32: its {peak.fp32:g} TFLOP/s FP32 units do the work "
                    f"beside {peak.fp16:g} TFLOP/s of FP16 tensor cores")
    elif r.tf32 is False:  # PyTorch says so: its float32 matrix products stay off the tensor cores
        evidence = (f"float32 with TF32 off (PyTorch's default for matrix products): {peak.fp32:g} TFLOP/s of FP32 "
                    f"units beside {peak.tf32:g} TFLOP/s TF32 and {peak.fp16:g} TFLOP/s BF16/FP16 tensor cores")
    else:
        return None  # TF32 may be in use, and without GPM it cannot be told apart
    if _torch(r):
        return Finding("tensor_cores_idle", "Tensor cores idle: the model computes in float32", evidence,
                       TORCH_AUTOCAST_FIX, "torch.autocast in bfloat16")
    return Finding("tensor_cores_idle", "Tensor cores idle: the model computes in float32", evidence, MIXED_PRECISION_FIX)


def compile_dominates(r: FitReport) -> Finding | None:
    if not r.first_step_s or not r.wall_s or r.wall_s > SHORT_FIT_S or r.first_step_s < COMPILE_SHARE * r.wall_s:
        return None
    return Finding(
        "compile_dominates",
        "Compilation dominates this short run",
        f"the first step (tracing, compiling) took {r.first_step_s:.2f} s of the fit's {r.wall_s:.2f} s",
        "judge speed on the step statistics (they leave the first step out) or on a longer run"
        # advice for the device it ran on: a GPU's first epoch also holds the kernels' autotuning
        + ("; on a GPU the first epoch will always look slower than the rest" if r.device_gpu is not None else ""),
    )


# In order of importance: at most MAX_FINDINGS are shown.
RULES = (gpu_unused, idle_gpus, input_bound, epoch_start, slow_callback, validation_heavy, throttled, memory,
         dispatch_bound, sms_idle, tensor_cores_idle, compile_dominates)


# The fix in a few words, for the headline; the finding's own text has the details.
ACTIONS = {
    "gpu_unused": "%device_info says why",
    "idle_gpus": "spread the fit with keras.distribution.DataParallel",
    "input_bound": "parallelise and prefetch the input pipeline",
    "epoch_start": "set the data up once",  # a finding may carry its own (NumPy on TensorFlow)
    "slow_callback": "run it less often",
    "validation_heavy": "validate every few epochs (validation_freq)",
    "throttled": "a steady figure needs an unthrottled GPU",
    "memory_reserved": "only matters if other work needs the GPU",
    "memory_full": "a smaller batch or mixed precision",
    "dispatch_bound": "steps_per_execution=32 or a larger batch",
    "sms_idle": "a larger batch or wider layers",
    "tensor_cores_idle": "mixed precision",
    "compile_dominates": "judge by ms/step, or time a longer fit",
}


def findings(report: FitReport) -> list[Finding]:
    found = []
    for rule in RULES:
        finding = rule(report)
        if finding is not None:
            finding.action = finding.action or ACTIONS.get(finding.rule, "")
            found.append(finding)
    return found[:MAX_FINDINGS]


# How to make each change, for a finding of its own
HOW = {
    "steps_per_execution": f"model.compile(..., steps_per_execution={variants.SPE})",
    "batch_x4": "fit(..., batch_size=4 x yours), and retune the learning rate",
    "mixed_precision": MIXED_PRECISION_FIX,
    "jit_compile": "model.compile(..., jit_compile=True)",
}


def measured(run: RunSummary) -> str:
    """A --whatif run in words: "steps_per_execution=32: measured 3.4x faster (3.1-3.7)"."""
    where = f" ({run.speedup_interval[0]:.2f}-{run.speedup_interval[1]:.2f})" if run.speedup_interval else ""
    assert run.speedup is not None  # asked only of runs with a speed-up
    if run.gain == "faster":
        return f"{run.variant}: measured {run.speedup:.1f}x faster{where}"
    if run.gain == "slower":  # "2.0x slower" gets the interval of its slowdown, as the headline gives it
        if run.speedup_interval:
            where = f" ({1 / run.speedup_interval[1]:.2f}-{1 / run.speedup_interval[0]:.2f})"
        return f"{run.variant}: measured {1 / run.speedup:.1f}x slower{where}"
    place = "this CPU" if run.is_cpu else run.device
    return f"{run.variant}: no clear gain on {place} ({run.speedup:.2f}x{where})"


def quote_measured(given: list[Finding], whatif: WhatIf | None) -> list[Finding]:
    """The findings with what --whatif measured beside the fixes they name, and a clear win that no
    finding names as a finding of its own (new findings: the given ones are left as they were)."""
    if whatif is None:
        return list(given)
    done = {run.variant: run for run in whatif.runs if run.error is None and run.speedup is not None}
    label = {key: variants.CATALOGUE[key].label for key in variants.CATALOGUE}
    quoted: set[str | None] = set()
    out = []
    for finding in given:
        tried = [done[label[key]] for key in variants.FIXES_OF_RULE.get(finding.rule, ()) if label[key] in done]
        if tried:
            quoted.update(run.variant for run in tried)
            best = max(tried, key=lambda run: run.speedup or 0.0)
            action = f"{best.variant}, measured {best.speedup:.1f}x faster" if best.gain == "faster" else finding.action
            finding = dataclasses.replace(finding, fix=finding.fix + "; " + "; ".join(measured(run) for run in tried),
                                          action=action)
        out.append(finding)
    wins = []
    for key, name in label.items():
        run = done.get(name)
        if run is None or name in quoted or run.gain != "faster":
            continue
        wins.append(Finding(
            "measured_gain",
            f"Measured: {name} makes this fit {run.speedup:.1f}x faster",
            f"{measured(run)}: {fmt(run.samples_per_s, ',.0f')} against "
            f"{fmt(whatif.baseline.samples_per_s if whatif.baseline else None, ',.0f')} samples/s on "
            f"{whatif.device}, each timed from the same start",
            HOW[key],
            f"{name}, measured {run.speedup:.1f}x faster",
        ))
    return (out[:1] + wins + out[1:])[:MAX_FINDINGS] if wins else out
