"""What a PyTorch loop says of its model, read when its report is built: the model (the outermost module
called before the first step, unwrapped from DistributedDataParallel, DataParallel or torch.compile;
with Lightning, the LightningModule that holds it), its device, parameters and dtypes, the dtype its
matrix products ran in (autocast's, else the weights'), TF32, the caching allocator's memory, the
DataLoader's settings and the input wait measured by ``torch_loop``.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from typing import Any

from . import frameworks
from .frameworks import normalise_device
from .observer import FitFacts
from .parts import InputWait, Loader, ModelSignature

LOOP = "torch"


def _owner(run: Any, params: list) -> Any:
    """The model: the outermost module called before the first step, if it holds the optimizer's
    parameters, else the outermost module that does (a second model trained later in the cell, after the
    module hooks came off); with Lightning, the LightningModule that holds it. None when none is found."""
    first = params[0] if params else None
    model = run.model
    if model is not None and first is not None and not any(p is first for p in model.parameters()):
        model = None  # the module seen last is another model's
    if model is None and first is not None:
        model = _ancestor(_parent(first, "_parameters"))
    if model is not None and ("lightning" in sys.modules or "pytorch_lightning" in sys.modules):
        # Lightning calls training_step, not the LightningModule itself: the module called is one of its parts
        return _ancestor(model, depth=4, stop=lambda m: any(k.__name__ == "LightningModule" for k in type(m).__mro__))
    return model


def _ancestor(module: Any, depth: int = 8, stop: Callable[[Any], bool] = lambda m: False) -> Any:
    """The outermost module that holds ``module`` (itself if none does), or the first on the way up that
    ``stop`` accepts. Found through each parent's ``_modules`` dict (gc's referrers: once per report)."""
    for _ in range(depth):
        parent = _parent(module) if module is not None else None
        if parent is None:
            break
        module = parent
        if stop(module):
            break
    return module


WRAPPERS = {"DistributedDataParallel": "module", "DataParallel": "module", "OptimizedModule": "_orig_mod",
            "FullyShardedDataParallel": "module"}  # a wrapper's class name -> the attribute holding the model


def _unwrapped(model: Any) -> tuple[Any, list[str]]:
    """The user's model inside DistributedDataParallel, DataParallel or torch.compile's wrapper (its name
    is the one the report gives), and the wrappers, outermost first ("torch.compile" for the last)."""
    wrappers = []
    while model is not None and type(model).__name__ in WRAPPERS:
        name = type(model).__name__
        wrappers.append("torch.compile" if name == "OptimizedModule" else name)
        model = getattr(model, WRAPPERS[name], None)
    return model, wrappers


def _parent(held: Any, slot: str = "_modules") -> Any:
    """The module whose ``slot`` dict (``_modules``, or ``_parameters`` for a parameter) holds ``held``,
    through gc's referrers: the dict, then the module's instance dict, then the module."""
    for holder in gc.get_referrers(held):
        if not isinstance(holder, dict):
            continue
        for attrs in gc.get_referrers(holder):
            if isinstance(attrs, dict) and attrs.get(slot) is holder:
                for owner in gc.get_referrers(attrs):
                    if getattr(owner, "__dict__", None) is attrs:
                        return owner
    return None


def autocast_now(torch: Any) -> dict[str, str]:
    """The device types autocast is on for, with its dtype ("bfloat16"...), as the model is called."""
    out = {}
    for kind in ("cuda", "cpu"):
        try:
            if torch.is_autocast_enabled(kind):
                out[kind] = str(torch.get_autocast_dtype(kind)).removeprefix("torch.")
        except (TypeError, RuntimeError, AttributeError):  # a torch before device-type arguments: unknown
            continue
    return out


def compute_dtype(autocast: dict[str, str], devices: list[str], dtypes: list[str]) -> str:
    """What matrix products ran in: autocast's dtype on the weights' device type, else the weights' own
    half-precision dtype when they all have one, else float32."""
    kind = devices[0].split(":")[0] if devices else "cpu"
    if kind in autocast:
        return autocast[kind]
    if len(dtypes) == 1 and dtypes[0] in ("bfloat16", "float16"):
        return dtypes[0]
    return "float32"


def torch_facts(run: Any) -> FitFacts:
    """What the optimizer's parameters say of the model: device, parameter count, dtypes; the
    DataLoader's batch size, workers and pinned memory; the input wait, measured."""
    params = [p for group in run.optimizer.param_groups for p in group["params"]]
    devices = sorted({str(p.device) for p in params})
    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in params})
    count = sum(int(p.numel()) for p in params)
    loader = run.loader
    notes = []
    if loader is not None:
        persistent = f", persistent_workers {loader.persistent_workers}" if loader.num_workers else ""
        others = len(run.others)
        also = (f"; and {others} other DataLoader{'s' if others > 1 else ''} feeding the same steps "
                f"({'their' if others > 1 else 'its'} wait counted too)" if others else "")
        size = f"whole batches of {loader.batch_size}" if loader.whole_batches else f"batch_size {loader.batch_size}"
        notes.append(f"DataLoader: {size}, num_workers {loader.num_workers}, "
                     f"pin_memory {loader.pin_memory}{persistent}{also}.")
        restarts = loader.meter.restarts
        if restarts:
            what = "starting it, and shutting the last one's workers down" if loader.num_workers else "starting it"
            notes.append(f"A new pass over the DataLoader was started {restarts:,} times after a single batch "
                         f"(iter(loader) in the loop), {1000 * _restart_s(loader.meter):.2f} ms each ({what}): "
                         f"counted as input wait, and as one epoch, not {restarts + 1:,}.")
    notes.append(f"{count:,} parameters in {', '.join(dtypes) or 'no dtype'}.")
    micro = run.batches_stepped / run.timed if run.timed and run.batches_stepped else 1.0
    batch = loader.batch_size if loader is not None else None
    if micro >= 1.5:  # gradient accumulation: a step's samples are its micro-batches'
        notes.append(f"{micro:.0f} batches per optimizer step (gradient accumulation): a step is all of them.")
        batch = round(batch * micro) if batch else None
    if run.skipped:
        notes.append(f"GradScaler skipped the update of {run.skipped} of {run.steps} steps (inf or NaN gradients): "
                     f"counted as steps, their time spent; a few at the start are normal while the scale settles.")
    device = normalise_device(devices[0]) if devices else None
    dtype = compute_dtype(run.autocast, devices, dtypes)
    if run.autocast:
        notes.append("autocast: " + ", ".join(f"{kind} in {dt}" for kind, dt in sorted(run.autocast.items())) + ".")
    owner, wrappers = _unwrapped(_owner(run, params))
    if wrappers:
        notes.append(f"The model ran inside {' inside '.join(wrappers)}.")
    return FitFacts(
        signature=ModelSignature(layers=[type(m).__name__ for m in owner.modules() if not any(True for _ in m.children())],
                                 params=count) if owner is not None else None,
        compute_dtype=dtype,
        tf32=frameworks.tf32_enabled("torch"),
        framework_memory_peak=frameworks.framework_memory_peak("torch", device),
        framework_memory_reserved=frameworks.torch_memory_reserved(device),
        skipped_steps=run.skipped,
        epochs_seen=loader is not None,  # a new pass over a DataLoader starts an epoch: none, no epochs
        loop=LOOP,
        model=type(owner).__name__ if owner is not None else f"{type(run.optimizer).__name__} optimizer",
        backend="torch",
        device=device,
        devices=[normalise_device(d) for d in devices],
        batch_size=batch,
        batch_note=None if loader is not None else "unknown: no DataLoader fed the steps",
        input_wait=_input_wait(run),
        flops_per_step=run.flops,
        flops_method=FLOPS_METHOD if run.flops is not None else None,
        notes=notes,
    )


FLOPS_METHOD = "torch's FlopCounterMode over the second step (forward, backward and update)"


def _input_wait(run: Any) -> InputWait | None:
    timed = run.timed
    if run.loader is None or timed < 1 or run.steps_s <= 0:
        return None
    step = run.steps_s / timed
    share = min(1.0, run.wait_s / run.steps_s)
    feed = run.loader
    loader = Loader(dataset=feed.kind[0].__name__, batch_size=feed.batch_size, num_workers=feed.num_workers,
                    pin_memory=feed.pin_memory, persistent_workers=feed.persistent_workers,
                    batch_wait_s=run.wait_s / max(run.batches_stepped, timed),
                    ready_share=feed.meter.ready / feed.meter.asked if feed.meter.asked else None,
                    others=len(run.others), restarts=feed.meter.restarts, restart_s=_restart_s(feed.meter),
                    whole_batches=feed.whole_batches)
    return InputWait(step_s=step, compute_step_s=step * (1 - share), wait_share=share, check_s=0.0, steps=timed,
                     wait_share_interval=None, source="DataLoader", loader=loader)


def _restart_s(meter: Any) -> float:
    """What starting a pass over costs, each time: its start, and the shutdown of the pass it replaced."""
    return (meter.restart_s + meter.dropped_s) / meter.restarts if meter.restarts else 0.0
