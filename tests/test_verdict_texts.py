"""Every verdict's exact words, for a report made to trigger it: the title, the evidence with its
figures, the fix and the headline's short fix. A changed figure, unit or word shows here first."""

import pytest

from colab_magic.parts import Epoch
from colab_magic.verdicts import findings
from tests import builders as b

GiB = 2**30
# Figures sit where a wrong factor shows after rounding: 24.5% (a share counted x101 gives 25%), 60% of
# readings, a 2.9949 ms step (x1001 gives 3.00 ms).
SCENARIOS = {
    "gpu_unused": dict(device="CPU:0", gpus=[b.gpu(util=2.0)], step=0.02),
    "idle_gpus": dict(device="GPU:0", gpus=[b.gpu(0, util=90.0), b.gpu(1, "T4", util=1.0)], step=0.02),
    "input_highly": dict(device="GPU:0", gpus=[b.gpu(util=90.0)], step=0.03, input_wait=b.input_wait(0.245)),
    "input_moderately": dict(device="GPU:0", gpus=[b.gpu(util=90.0)], step=0.03, input_wait=b.input_wait(0.10)),
    "input_likely": dict(device="GPU:0", gpus=[b.gpu(util=30.0)], step=0.02, host=b.host(cpu_process_mean=90.0)),
    "throttled": dict(device="GPU:0", gpus=[b.gpu(util=90.0, clock_events={"sw_thermal": 0.6, "gpu_idle": 0.2}, throttled_fraction=0.6)], step=0.02),
    "memory_reserved_tf": dict(device="GPU:0", backend="tensorflow", gpus=[b.gpu(util=90.0, memory_peak=39.5 * GiB)], step=0.02, framework_memory_peak=1 * GiB),
    "memory_reserved_jax": dict(device="GPU:0", gpus=[b.gpu(util=90.0, memory_peak=39.5 * GiB)], step=0.02, framework_memory_peak=1 * GiB),
    "memory_full": dict(device="GPU:0", gpus=[b.gpu(util=90.0, memory_peak=39.0 * GiB)], step=0.02),
    "dispatch_bound": dict(device="GPU:0", gpus=[b.gpu(util=20.0)], step=0.0029949),
    "dispatch_bound_cpu": dict(device="CPU:0", gpus=[], step=0.001),
    "sms_idle": dict(device="GPU:0", gpus=[b.gpu(util=80.0, sm_activity_pct=20.0, sm_occupancy_pct=10.0)], step=0.02),
    "tensor_gpm": dict(device="GPU:0", gpus=[b.gpu(name="NVIDIA H100 80GB HBM3", util=60.0, tensor_activity_pct=0.5)], step=0.02, compute_dtype="float32"),
    "tensor_t4": dict(device="GPU:0", gpus=[b.gpu(name="Tesla T4", util=60.0)], step=0.02, compute_dtype="float32"),
    "compile": dict(device="GPU:0", gpus=[b.gpu(util=90.0)], step=0.02, first_step_s=5.0, wall_s=10.0),
}

EXPECTED = {
    'gpu_unused': [
        ('gpu_unused',
         'GPU present but unused: the model trained on the CPU',
         'weights on CPU:0; GPU 0 (A100) 2% busy',
         'run %device_info: if the framework sees no GPU it says why and how to fix it; otherwise build and fit the model outside any CPU device scope',
         '%device_info says why'),
    ],
    'idle_gpus': [
        ('idle_gpus',
         '1 of 2 GPUs sat idle: GPU 1 (T4)',
         'mean utilisation GPU 1 (T4) (1%), while the fit ran on GPU 0 (A100) (90%)',
         'to train on every GPU, build and compile the model under tf.distribute.MirroredStrategy() (TensorFlow) or keras.distribution.set_distribution(keras.distribution.DataParallel()) (JAX)',
         'spread the fit with keras.distribution.DataParallel'),
    ],
    'input_highly': [
        ('input_bound',
         'Highly input-bound: 24% of each step waits for data',
         'mean step 30.0 ms with your pipeline, 19.0 ms with one batch held in memory (20 steps of a copy of the model)',
         'in the tf.data pipeline: .map(f, num_parallel_calls=tf.data.AUTOTUNE), .cache() after the expensive steps if the data fits, and .prefetch(tf.data.AUTOTUNE) at the end; or a larger batch',
         'parallelise and prefetch the input pipeline'),
    ],
    'input_moderately': [
        ('input_bound',
         'Moderately input-bound: 10% of each step waits for data',
         'mean step 30.0 ms with your pipeline, 19.0 ms with one batch held in memory (20 steps of a copy of the model)',
         'in the tf.data pipeline: .map(f, num_parallel_calls=tf.data.AUTOTUNE), .cache() after the expensive steps if the data fits, and .prefetch(tf.data.AUTOTUNE) at the end; or a larger batch',
         'parallelise and prefetch the input pipeline'),
    ],
    'input_likely': [
        ('input_bound',
         'Likely input-bound: the GPU idles while the host is busy',
         'GPU 0 (A100) busy 30% of the time; this process used 90% of a core; median step 20.0 ms',
         'in the tf.data pipeline: .map(f, num_parallel_calls=tf.data.AUTOTUNE), .cache() after the expensive steps if the data fits, and .prefetch(tf.data.AUTOTUNE) at the end; or a larger batch (for a tf.data input, %%timed_fit --input-check on measures the wait)',
         'parallelise and prefetch the input pipeline'),
    ],
    'throttled': [
        ('throttled',
         'GPU throttled: its clocks were held down while it worked',
         'GPU 0 (A100): sw_thermal 60% of readings, SM clock mean 1400 MHz',
         "power cap: check the limit (nvidia-smi -q -d POWER); thermal: cooling or airflow; on a shared cloud GPU, the host's limits: a steady figure needs an unthrottled run",
         'a steady figure needs an unthrottled GPU'),
    ],
    'memory_reserved_tf': [
        ('memory_reserved',
         "tensorflow reserved nearly all of GPU 0 (A100)'s memory; the model needed far less",
         "NVML: 39.5 of 40.0 GiB in use; the framework's own peak 1.00 GiB",
         'only if other work needs the GPU: tf.config.experimental.set_memory_growth(gpu, True) for each GPU before TensorFlow runs anything',
         'only matters if other work needs the GPU'),
    ],
    'memory_reserved_jax': [
        ('memory_reserved',
         "jax reserved nearly all of GPU 0 (A100)'s memory; the model needed far less",
         "NVML: 39.5 of 40.0 GiB in use; the framework's own peak 1.00 GiB",
         'only if other work needs the GPU: XLA_PYTHON_CLIENT_PREALLOCATE=false in the environment before JAX starts',
         'only matters if other work needs the GPU'),
    ],
    'memory_full': [
        ('memory_full',
         "GPU 0 (A100)'s memory is nearly full: out-of-memory risk",
         'peak 39.0 of 40.0 GiB (98%)',
         "a smaller batch, mixed precision (keras.mixed_precision.set_global_policy('mixed_float16')), or a smaller model",
         'a smaller batch or mixed precision'),
    ],
    'dispatch_bound': [
        ('dispatch_bound',
         'Dispatch-bound: tiny steps, mostly overhead',
         'median step 2.99 ms at batch 32, one step per call; GPU 0 (A100) busy 20% of the time',
         'a larger batch; model.compile(..., steps_per_execution=32) to run many steps per call; or jit_compile=True',
         'steps_per_execution=32 or a larger batch'),
    ],
    'dispatch_bound_cpu': [
        ('dispatch_bound',
         'Dispatch-bound: tiny steps, mostly overhead',
         'median step 1.00 ms at batch 32, one step per call',
         'a larger batch; model.compile(..., steps_per_execution=32) to run many steps per call; or jit_compile=True',
         'steps_per_execution=32 or a larger batch'),
    ],
    'sms_idle': [
        ('sms_idle',
         'Kernels too small for this GPU: most of its SMs sat idle',
         "a kernel was running 80% of the time, but on average only 20% of GPU 0 (A100)'s SMs were busy (SM occupancy 10%)",
         'a larger batch (or wider layers), so that each kernel fills the GPU',
         'a larger batch or wider layers'),
    ],
    'tensor_gpm': [
        ('tensor_cores_idle',
         'Tensor cores idle: the model computes in float32',
         'tensor-core activity 0.5% (GPM) while a kernel ran 60% of the time',
         "keras.mixed_precision.set_global_policy('mixed_float16') before building the model ('mixed_bfloat16' on Ampere or newer), with the last layer in float32 (dtype='float32')",
         'mixed precision'),
    ],
    'tensor_t4': [
        ('tensor_cores_idle',
         'Tensor cores idle: the model computes in float32',
         'float32 on GPU 0 (Tesla T4), which has no TF32: its 8.1 TFLOP/s FP32 units do the work beside 65 TFLOP/s of FP16 tensor cores',
         "keras.mixed_precision.set_global_policy('mixed_float16') before building the model ('mixed_bfloat16' on Ampere or newer), with the last layer in float32 (dtype='float32')",
         'mixed precision'),
    ],
    'compile': [
        ('compile_dominates',
         'Compilation dominates this short run',
         "the first step (tracing, compiling) took 5.00 s of the fit's 10.00 s",
         'judge speed on the step statistics (they leave the first step out) or on a longer run; on a GPU the first epoch will always look slower than the rest',
         'judge by ms/step, or time a longer fit'),
    ],
}

TWO_EPOCHS = [Epoch(n, 0.3, 0.3, 0.0, 10, 0.3, 0.03, True) for n in (1, 2)]  # all in their steps

# The same reports from a PyTorch loop: the advice in PyTorch's terms (tf32 False: PyTorch said TF32 is off).
TORCH = dict(loop="torch", backend="torch")
SCENARIOS.update({
    "gpu_unused_torch": dict(device="CPU:0", gpus=[b.gpu(util=2.0)], step=0.02, **TORCH),
    "idle_gpus_torch": dict(device="GPU:0", gpus=[b.gpu(0, util=90.0), b.gpu(1, "T4", util=1.0)], step=0.02, **TORCH),
    "memory_reserved_torch": dict(device="GPU:0", gpus=[b.gpu(util=90.0, memory_peak=39.5 * GiB)], step=0.02, framework_memory_peak=1 * GiB, framework_memory_reserved=38 * GiB, **TORCH),
    "memory_full_torch": dict(device="GPU:0", gpus=[b.gpu(util=90.0, memory_peak=39.0 * GiB)], step=0.02, framework_memory_peak=30 * GiB, framework_memory_reserved=38 * GiB, **TORCH),
    "dispatch_bound_torch": dict(device="GPU:0", gpus=[b.gpu(util=20.0)], step=0.0029949, batch_size=32, **TORCH),
    "tensor_a100_torch": dict(device="GPU:0", gpus=[b.gpu(util=60.0)], step=0.02, compute_dtype="float32", tf32=False, **TORCH),
    "tensor_a100_torch_tf32": dict(device="GPU:0", gpus=[b.gpu(util=60.0)], step=0.02, compute_dtype="float32", tf32=True, **TORCH),
    # the DataLoader's fix follows its settings and the machine's cores (builders.host: 8 logical)
    "input_torch_no_workers_gpu": dict(device="GPU:0", gpus=[b.gpu(util=40.0)], step=0.03, input_wait=b.loader_wait(0.245, 0), **TORCH),
    "input_torch_no_workers_cpu": dict(device="CPU:0", step=0.03, input_wait=b.loader_wait(0.245, 0), **TORCH),
    "input_torch_every_core_gpu": dict(device="GPU:0", gpus=[b.gpu(util=40.0)], step=0.03, input_wait=b.loader_wait(0.12, 8),
                                       epochs=TWO_EPOCHS, **TORCH),
    "input_torch_every_core_cpu": dict(device="CPU:0", step=0.03, input_wait=b.loader_wait(0.245, 8, persistent=True),
                                       epochs=TWO_EPOCHS, **TORCH),
    "input_torch_cores_unknown": dict(device="GPU:0", gpus=[b.gpu(util=40.0)], step=0.03, input_wait=b.loader_wait(0.245, 2, pin=True),
                                      host=b.host(logical_cores=None), **TORCH),
    # batches that cost less to make here than to receive from a worker (under 1 ms): no workers
    "input_torch_cheap_batches_tensors": dict(device="CPU:0", step=0.03, input_wait=b.loader_wait(0.245, 0, dataset="TensorDataset", step_s=0.004), **TORCH),
    "input_torch_cheap_batches": dict(device="GPU:0", gpus=[b.gpu(util=40.0)], step=0.03, input_wait=b.loader_wait(0.245, 0, step_s=0.004), **TORCH),
    # under torchrun, two processes on this machine: half its cores each
    "input_torch_two_processes": dict(device="CPU:0", step=0.03, input_wait=b.loader_wait(0.245, 0), cluster=dict(
        task_index=0, workers=2, run="r1", local_devices=["CPU:0"], coordinator="127.0.0.1:29500", local_processes=2),
        **TORCH),
    # a loop marked with colab_magic.step(): its framework is not known, so PyTorch's and JAX's ways both
    "dispatch_bound_marked": dict(device=None, gpus=[], step=0.001, batch_size=None, loop="marked", backend="any"),
    "idle_gpus_marked": dict(device="GPU:0", gpus=[b.gpu(0, util=90.0), b.gpu(1, "T4", util=1.0)], step=0.02, loop="marked", backend="any"),
    "memory_full_marked": dict(device="GPU:0", gpus=[b.gpu(util=90.0, memory_peak=39.0 * GiB)], step=0.02, loop="marked", backend="any"),
    # workers already, and each batch waits about what receiving one costs: num_workers=0 may be faster
    "input_torch_wait_like_handoff": dict(device="CPU:0", step=0.03, input_wait=b.loader_wait(0.06, 2), **TORCH),
    # workers measured: the batches were there when asked for (the wait is receiving them), or were not
    "input_torch_workers_keep_up": dict(device="CPU:0", step=0.03, input_wait=b.loader_wait(0.06, 2, ready=0.97), **TORCH),
    "input_torch_workers_too_slow": dict(device="CPU:0", step=0.03, input_wait=b.loader_wait(0.06, 2, ready=0.2), **TORCH),
    "input_torch_tensors_from_workers": dict(device="CPU:0", step=0.03, input_wait=b.loader_wait(0.5, 2, dataset="TensorDataset"), **TORCH),
    # whole batches already (the fix the two above give): a larger batch is what is left to say
    "input_torch_cheap_whole_batches": dict(device="CPU:0", step=0.03, input_wait=b.loader_wait(
        0.245, 0, dataset="TensorDataset", step_s=0.004, whole=True), **TORCH),
    # next(iter(loader)) in the loop: each batch a new pass, its workers started (and the last ones shut down)
    "input_torch_passes_started_over": dict(device="CPU:0", step=0.03, input_wait=b.loader_wait(
        0.9, 2, restarts=19, restart_s=0.025), **TORCH),
    # the same without workers: starting a pass costs little, and the wait is the batches' own
    "input_torch_passes_started_over_cheaply": dict(device="CPU:0", step=0.03, input_wait=b.loader_wait(
        0.3, 0, restarts=19, restart_s=0.00005), **TORCH),
})
EXPECTED.update({
    'input_torch_cheap_whole_batches': [
        ('input_bound', 'Highly input-bound: 24% of each step waits for data',
         "1.0 ms of each 4.0 ms step spent in the DataLoader's __next__ (20 steps)",
         "a larger batch (the BatchSampler's batch_size), which spreads what each batch costs over more samples; not worker processes: a batch takes 0.98 ms in the DataLoader here, and receiving one from a worker takes longer (1.0 ms or more)",
         'a larger batch_size'),
    ],
    'input_torch_passes_started_over': [
        ('input_bound', 'Highly input-bound: 90% of each step waits for data',
         "27.0 ms of each 30.0 ms step spent in the DataLoader's __next__ and in starting its passes over (20 steps)",
         'one iterator, made once: it = iter(loader) before the loop, next(it) in it, and iter(loader) again only when it ends (StopIteration): the loop starts a new pass over the DataLoader for each batch (19 times, 25.0 ms each here, starting 2 worker processes and shutting the last ones down)',
         'one DataLoader iterator, made once'),
    ],
    # 19 x 0.05 ms of a 9 ms wait a step: the batches are what waits, and the fix is the usual one
    'input_torch_passes_started_over_cheaply': [
        ('input_bound', 'Highly input-bound: 30% of each step waits for data',
         "9.0 ms of each 30.0 ms step spent in the DataLoader's __next__ and in starting its passes over (20 steps)",
         "DataLoader(..., num_workers=8, persistent_workers=True): batches are made in 8 worker processes while the model trains (num_workers=0 now; this machine has 8 cores); keep the Dataset's __getitem__ cheap (decode and augment once, or on the GPU)",
         'DataLoader num_workers=8'),
    ],
    'gpu_unused_torch': [
        ('gpu_unused',
         'GPU present but unused: the model trained on the CPU',
         'weights on CPU:0; GPU 0 (A100) 2% busy',
         "run %device_info: if the framework sees no GPU it says why and how to fix it; otherwise model.to('cuda') before making the optimizer, and each batch .to('cuda')",
         '%device_info says why'),
    ],
    'idle_gpus_torch': [
        ('idle_gpus',
         '1 of 2 GPUs sat idle: GPU 1 (T4)',
         'mean utilisation GPU 1 (T4) (1%), while the fit ran on GPU 0 (A100) (90%)',
         'to train on every GPU: torchrun --nproc-per-node=N with DistributedDataParallel(model)',
         'torchrun with DistributedDataParallel'),
    ],
    'memory_reserved_torch': [
        ('memory_reserved',
         "PyTorch's caching allocator holds far more of GPU 0 (A100)'s memory than its tensors use",
         'NVML: 39.5 of 40.0 GiB in use; reserved at most 38.00 GiB, allocated at most 1.00 GiB (torch.cuda.max_memory_reserved / max_memory_allocated)',
         'only if other work needs the GPU or an allocation fails: PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True in the environment before torch starts (less fragmentation), torch.cuda.empty_cache() between runs',
         'only matters if other work needs the GPU'),
    ],
    'memory_full_torch': [
        ('memory_full',
         "GPU 0 (A100)'s memory is nearly full: out-of-memory risk",
         "peak 39.0 of 40.0 GiB (98%); PyTorch's tensors at most 30.00 GiB",
         'a smaller batch, torch.autocast (bfloat16 activations), or activation checkpointing (torch.utils.checkpoint)',
         'a smaller batch or torch.autocast'),
    ],
    'dispatch_bound_torch': [
        ('dispatch_bound',
         'Dispatch-bound: tiny steps, mostly overhead',
         'median step 2.99 ms at batch 32; GPU 0 (A100) busy 20% of the time',
         "a larger batch (DataLoader batch_size), and model = torch.compile(model) to fuse the small kernels (mode='reduce-overhead' also replays each step as one CUDA graph)",
         'a larger batch or torch.compile'),
    ],
    'tensor_a100_torch': [
        ('tensor_cores_idle',
         'Tensor cores idle: the model computes in float32',
         "float32 with TF32 off (PyTorch's default for matrix products): 19.5 TFLOP/s of FP32 units beside 156 TFLOP/s TF32 and 312 TFLOP/s BF16/FP16 tensor cores",
         "with torch.autocast('cuda', dtype=torch.bfloat16): around the forward pass and the loss (torch.float16 with torch.amp.GradScaler before Ampere); or torch.set_float32_matmul_precision('high') for TF32 on Ampere or newer",
         'torch.autocast in bfloat16'),
    ],
    'tensor_a100_torch_tf32': [
    ],
    'input_torch_no_workers_gpu': [
        ('input_bound',
         'Highly input-bound: 24% of each step waits for data',
         "7.3 ms of each 30.0 ms step spent in the DataLoader's __next__ (20 steps)",
         "DataLoader(..., num_workers=8, pin_memory=True, persistent_workers=True): batches are made in 8 worker processes while the model trains (num_workers=0 now; this machine has 8 cores); keep the Dataset's __getitem__ cheap (decode and augment once, or on the GPU)",
         'DataLoader num_workers=8 and pin_memory=True'),
    ],
    'input_torch_no_workers_cpu': [
        ('input_bound',
         'Highly input-bound: 24% of each step waits for data',
         "7.3 ms of each 30.0 ms step spent in the DataLoader's __next__ (20 steps)",
         "DataLoader(..., num_workers=8, persistent_workers=True): batches are made in 8 worker processes while the model trains (num_workers=0 now; this machine has 8 cores); keep the Dataset's __getitem__ cheap (decode and augment once, or on the GPU)",
         'DataLoader num_workers=8'),
    ],
    'input_torch_every_core_gpu': [
        ('input_bound',
         'Moderately input-bound: 12% of each step waits for data',
         "3.6 ms of each 30.0 ms step spent in the DataLoader's __next__ (20 steps)",
         "a cheaper Dataset __getitem__ (decode and augment once and keep the tensors, or augment on the GPU): the DataLoader's 8 workers already match the cores (this machine has 8 cores), and a batch still takes longer to make than a step takes to train; more workers would only take turns; and persistent_workers=True, so the workers are not started afresh each epoch; pin_memory=True for the copy to the GPU",
         'a cheaper Dataset __getitem__'),
    ],
    'input_torch_every_core_cpu': [
        ('input_bound',
         'Highly input-bound: 24% of each step waits for data',
         "7.3 ms of each 30.0 ms step spent in the DataLoader's __next__ (20 steps)",
         "a cheaper Dataset __getitem__ (decode and augment once and keep the tensors, or augment on the GPU): the DataLoader's 8 workers already match the cores (this machine has 8 cores), and a batch still takes longer to make than a step takes to train; more workers would only take turns",
         'a cheaper Dataset __getitem__'),
    ],
    'input_torch_cores_unknown': [
        ('input_bound',
         'Highly input-bound: 24% of each step waits for data',
         "7.3 ms of each 30.0 ms step spent in the DataLoader's __next__ (20 steps)",
         "DataLoader(..., num_workers=N, persistent_workers=True): batches are made in N worker processes while the model trains (N: the CPU's cores); keep the Dataset's __getitem__ cheap (decode and augment once, or on the GPU)",
         'more DataLoader workers'),
    ],
    'input_torch_cheap_batches_tensors': [
        ('input_bound',
         'Highly input-bound: 24% of each step waits for data',
         "1.0 ms of each 4.0 ms step spent in the DataLoader's __next__ (20 steps)",
         'a larger batch_size, which spreads what each batch costs over more samples, or whole batches taken from the tensors at once, with no collation: DataLoader(data, sampler=BatchSampler(RandomSampler(data), batch_size, False), batch_size=None); not worker processes: a batch takes 0.98 ms in the DataLoader here, and receiving one from a worker takes longer (1.0 ms or more)',
         'a larger batch_size'),
    ],
    'input_torch_cheap_batches': [
        ('input_bound',
         'Highly input-bound: 24% of each step waits for data',
         "1.0 ms of each 4.0 ms step spent in the DataLoader's __next__ (20 steps)",
         'a larger batch_size, which spreads what each batch costs over more samples, and a cheaper __getitem__; not worker processes: a batch takes 0.98 ms in the DataLoader here, and receiving one from a worker takes longer (1.0 ms or more)',
         'a larger batch_size'),
    ],
    'input_torch_two_processes': [
        ('input_bound',
         'Highly input-bound: 24% of each step waits for data',
         "7.3 ms of each 30.0 ms step spent in the DataLoader's __next__ (20 steps)",
         "DataLoader(..., num_workers=4, persistent_workers=True): batches are made in 4 worker processes while the model trains (num_workers=0 now; this machine has 8 cores, 4 for each of its 2 processes); keep the Dataset's __getitem__ cheap (decode and augment once, or on the GPU)",
         'DataLoader num_workers=4'),
    ],
    'dispatch_bound_marked': [
        ('dispatch_bound',
         'Dispatch-bound: tiny steps, mostly overhead',
         'median step 1.00 ms',
         'a larger batch, and the whole step compiled as one: torch.compile(model) in PyTorch, jax.jit over the update (optax\'s included) in JAX',
         'a larger batch or a compiled step'),
    ],
    'idle_gpus_marked': [
        ('idle_gpus',
         '1 of 2 GPUs sat idle: GPU 1 (T4)',
         'mean utilisation GPU 1 (T4) (1%), while the fit ran on GPU 0 (A100) (90%)',
         'to train on every GPU: DistributedDataParallel(model) under torchrun --nproc-per-node=N (PyTorch), or each batch sharded over jax.devices() with jax.sharding (JAX)',
         'data parallelism over every GPU'),
    ],
    'memory_full_marked': [
        ('memory_full',
         "GPU 0 (A100)'s memory is nearly full: out-of-memory risk",
         'peak 39.0 of 40.0 GiB (98%)',
         'a smaller batch, bfloat16 activations (torch.autocast in PyTorch, jnp.bfloat16 in JAX), or a smaller model',
         'a smaller batch or bfloat16'),
    ],
    'input_torch_wait_like_handoff': [
        ('input_bound',
         'Moderately input-bound: 6% of each step waits for data',
         "1.8 ms of each 30.0 ms step spent in the DataLoader's __next__ (20 steps)",
         "DataLoader(..., num_workers=8, persistent_workers=True): batches are made in 8 worker processes while the model trains (num_workers=2 now; this machine has 8 cores); keep the Dataset's __getitem__ cheap (decode and augment once, or on the GPU); if that does not help: each batch waits 1.80 ms, about what receiving one from a worker costs (1 to 3.5 ms on 2 vCPUs), so the workers may keep up already, and a larger batch_size (fewer batches to receive) is what helps",
         'DataLoader num_workers=8'),
    ],
    'input_torch_workers_keep_up': [
        ('input_bound',
         'Moderately input-bound: 6% of each step waits for data',
         "1.8 ms of each 30.0 ms step spent in the DataLoader's __next__ (20 steps)",
         "a larger batch_size (fewer batches to receive): the workers keep up, 97% of the batches were there when asked for, so each batch's 1.80 ms wait is receiving it from a worker process; with a cheap __getitem__, num_workers=0 skips that: time both",
         'a larger batch_size'),
    ],
    'input_torch_workers_too_slow': [
        ('input_bound',
         'Moderately input-bound: 6% of each step waits for data',
         "1.8 ms of each 30.0 ms step spent in the DataLoader's __next__ (20 steps)",
         "DataLoader(..., num_workers=8, persistent_workers=True): batches are made in 8 worker processes while the model trains (num_workers=2 now; this machine has 8 cores); keep the Dataset's __getitem__ cheap (decode and augment once, or on the GPU)",
         'DataLoader num_workers=8'),
    ],
    'input_torch_tensors_from_workers': [
        ('input_bound',
         'Highly input-bound: 50% of each step waits for data',
         "15.0 ms of each 30.0 ms step spent in the DataLoader's __next__ (20 steps)",
         "num_workers=0: a TensorDataset's batch is an index into tensors already in memory, made in this process faster than it is received from a worker process (1.0 ms or more a batch); then a larger batch_size, or whole batches taken from the tensors at once, with no collation: DataLoader(data, sampler=BatchSampler(RandomSampler(data), batch_size, False), batch_size=None)",
         'num_workers=0'),
    ],
})


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_verdict_says_exactly_this(name):
    got = [(f.rule, f.title, f.evidence, f.fix, f.action) for f in findings(b.report(**SCENARIOS[name]))]
    assert got == EXPECTED[name]
