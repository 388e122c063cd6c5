"""Complete typed report parts for the rule tests: every field set, so a rule that reads a field the
test did not think of still gets a real value."""

from colab_magic.parts import GpuSummary, HostSummary, InputWait, Loader, SamplerFigures, StepStats
from colab_magic.report import FitReport, TimedFitResult


def gpu(index=0, name="A100", util=90.0, **kw) -> GpuSummary:
    values = dict(
        index=index, name=name, util_mean=util, util_p95=util, util_source="driver samples", util_samples=100,
        memory_peak=2 * 2**30, memory_total=40 * 2**30, process_memory_peak=2**30, power_mean_w=200.0,
        power_limit_w=400.0, energy_j=20000.0, energy_source="counter", temperature_max_c=60.0,
        sm_clock_mean_mhz=1400.0, clock_events={}, throttled_fraction=0.0, readings=200, gaps=[], gap_s=0.0,
    )
    values.update(kw)
    return GpuSummary(**values)


def host(**kw) -> HostSummary:
    values = dict(cpu_system_mean=50.0, cpu_system_p95=60.0, cpu_process_mean=50.0, cpu_process_p95=60.0,
                  rss_peak=2.0 * 2**30, ram_used_peak=4.0 * 2**30, ram_total=16 * 2**30, logical_cores=8)
    values.update(kw)
    return HostSummary(**values)


def steps(step_s: float, n: int = 100) -> StepStats:
    return StepStats(n=n, mean=step_s, median=step_s, p10=step_s, p90=step_s, p95=step_s, min=step_s, max=step_s)


def input_wait(share: float, step_s: float = 0.030, compute_step_s: float = 0.019, interval=None) -> InputWait:
    return InputWait(step_s=step_s, compute_step_s=compute_step_s, wait_share=share, check_s=0.6, steps=20,
                     wait_share_interval=interval)


def loader_wait(share: float, workers: int, pin: bool = False, persistent: bool = False,
                dataset: str = "Images", step_s: float = 0.030, ready: float | None = None, restarts: int = 0,
                restart_s: float = 0.0, whole: bool = False) -> InputWait:
    """The wait a PyTorch loop measured in its DataLoader's __next__ (20 steps, a batch each)."""
    loader = Loader(dataset=dataset, batch_size=32, num_workers=workers, pin_memory=pin, persistent_workers=persistent,
                    batch_wait_s=step_s * share, ready_share=ready, restarts=restarts, restart_s=restart_s,
                    whole_batches=whole)
    return InputWait(step_s=step_s, compute_step_s=step_s * (1 - share), wait_share=share, check_s=0.0, steps=20,
                     source="DataLoader", loader=loader)


def report(device="GPU:0", gpus=None, step=None, **kw) -> FitReport:
    values = dict(
        index=1, model="m", backend="jax", device=device, batch_size=32, epochs_planned=1, steps_per_epoch=10,
        steps_per_execution=1, complete=True, error=None, wall_s=100.0, first_step_s=0.5,
        step=steps(step) if step is not None else None, total_steps=10, samples_per_s=None, epochs=[], host=host(),
        gpus=gpus if gpus is not None else [], gpu_note=None, framework_memory_peak=None,
        sampler=SamplerFigures(started=0.0, stopped=100.0, interval_s=0.5, ticks=200, cpu_s=0.1, stop_wait_s=0.0,
                               cost_pct_of_core=0.1),
    )
    values.update(kw)
    return FitReport(**values)


def result(reports) -> TimedFitResult:
    return TimedFitResult(reports=list(reports), cell_s=1.0)
