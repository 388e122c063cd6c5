"""The changes ``%%timed_fit --whatif`` measures: the fixes the verdicts name, each one a variant of the
user's model that a trial can build and time.

A variant says what it changes (the compile config, the batch, the compute dtype) and, for a given
model, backend and device, why it cannot run there, or why it does not apply (already on).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPE = 32  # steps per call: Keras' docs suggest a few dozen for small models; gains flatten after that


@dataclass(frozen=True)
class Variant:
    key: str  # the name --whatif takes
    label: str  # the change, as the user would write it
    compile_changes: dict = field(default_factory=dict)  # merged into the user's compile config
    batch_factor: int = 1
    mixed: bool = False  # a mixed-precision compute dtype (float16 on a GPU, bfloat16 on a CPU)


AS_IS = Variant("as_is", "as it is")
CATALOGUE = {
    v.key: v
    for v in (
        Variant("steps_per_execution", f"steps_per_execution={SPE}", {"steps_per_execution": SPE}),
        Variant("batch_x4", "batch x4", batch_factor=4),
        Variant("mixed_precision", "mixed precision", mixed=True),
        Variant("jit_compile", "jit_compile=True", {"jit_compile": True}),
    )
}
ALIASES = {"spe": "steps_per_execution", "batch": "batch_x4", "mixed": "mixed_precision", "jit": "jit_compile"}
# The fixes each verdict names, for quoting what was measured beside them
FIXES_OF_RULE = {
    "dispatch_bound": ("steps_per_execution", "batch_x4", "jit_compile"),
    "sms_idle": ("batch_x4",),
    "tensor_cores_idle": ("mixed_precision",),
    "memory_full": ("mixed_precision",),
}


def names() -> str:
    return ", ".join(f"{key} ({alias})" for alias, key in ALIASES.items())


def parse(text: str | None) -> list[Variant] | None:
    """``--whatif``'s list: None for the default (every variant that applies). Raises ValueError naming
    the valid ones for an unknown name."""
    if not text:
        return None
    chosen = []
    for word in (w.strip().lower() for w in text.split(",")):
        if not word:
            continue
        key = ALIASES.get(word, word)
        if key not in CATALOGUE:
            raise ValueError(f"--whatif: unknown change {word!r}; the valid ones are {names()}")
        if CATALOGUE[key] not in chosen:
            chosen.append(CATALOGUE[key])
    if not chosen:
        raise ValueError(f"--whatif needs at least one of {names()}")
    return chosen


def policy(variant: Variant, device: str) -> str | None:
    """The dtype policy a mixed-precision variant uses on ``device`` ("GPU:0", "CPU:0")."""
    if not variant.mixed:
        return None
    return "mixed_float16" if device.startswith("GPU") else "mixed_bfloat16"


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU has bfloat16 instructions (AVX-512 BF16 or AMX), from /proc/cpuinfo's flags."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def cannot_run(variant: Variant, backend: str, device: str, model: Any, x: Any = None, batch_size: int | None = None,
               cpuinfo: str | None = None) -> str | None:
    """Why ``variant`` cannot be timed for this model, backend and device (its error line), or None."""
    if variant.key == "steps_per_execution" and backend == "torch":
        return "Keras' torch backend runs one step per call (steps_per_execution must be 1 there)"
    if variant.key == "jit_compile" and backend != "tensorflow":
        return {"jax": "JAX always compiles the step with XLA: jit_compile is TensorFlow's switch",
                "torch": "on torch, jit_compile=True means torch.compile, which this check does not time"}.get(
            backend, f"jit_compile is TensorFlow's switch, not {backend}'s")
    if variant.mixed and device.startswith("CPU") and not cpu_has_bf16(cpuinfo):
        return "this CPU has no bfloat16 instructions (avx512_bf16 or amx_bf16), so mixed precision would be emulated"
    if variant.batch_factor > 1:
        if batch_size is None:
            return "the batch size of this input is unknown, so it cannot be made larger"
        if not _is_array(x) and not hasattr(x, "element_spec"):
            return "a larger batch can be tried on arrays and tf.data datasets, not on this input"
    return None


def already_on(variant: Variant, model: Any) -> str | None:
    """Why the variant is what the model already does, or None."""
    if variant.key == "steps_per_execution" and (getattr(model, "steps_per_execution", 1) or 1) >= SPE:
        return f"the model already runs {model.steps_per_execution} steps per call"
    if variant.key == "jit_compile" and getattr(model, "jit_compile", False) is True:
        return "the model already compiles with XLA (jit_compile is on)"
    if variant.mixed:
        name = getattr(getattr(model, "dtype_policy", None), "name", "float32")
        if name.startswith("mixed") or name in ("float16", "bfloat16"):
            return f"the model already computes in {name}"
    return None


def _is_array(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "__getitem__") or (
        isinstance(x, (list, tuple, dict)) and all(hasattr(v, "shape") for v in (x.values() if isinstance(x, dict) else x)))
