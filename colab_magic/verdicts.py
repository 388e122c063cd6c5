"""Plain-language findings about a timed fit: what the numbers say, with the evidence and the fix.

Each rule is a small function of a :class:`~colab_magic.report.FitReport` that returns a
:class:`Finding` or None; :func:`findings` keeps at most three. Rules read only the report, so they are
tested on synthetic reports as well as on real fits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

IDLE_PCT = 5.0  # mean GPU utilisation below this: the GPU did nothing to speak of
MAX_FINDINGS = 3


@dataclass
class Finding:
    rule: str
    title: str
    evidence: str
    fix: str

    def to_dict(self) -> dict:
        return asdict(self)


def _gpu_label(g: dict) -> str:
    return f"GPU {g['index']}" + (f" ({g['name']})" if g.get("name") else "")


def gpu_unused(r) -> Finding | None:
    """The framework trained on the CPU while a GPU was there."""
    if not r.gpus or not (r.device or "").startswith("CPU"):
        return None
    utils = ", ".join(f"{_gpu_label(g)} {g['util_mean']:.0f}% busy" for g in r.gpus if g["util_mean"] is not None)
    return Finding(
        "gpu_unused",
        "GPU present but unused: the model trained on the CPU",
        f"weights on {r.device}; {utils or 'GPU utilisation not readable'}",
        "run %device_info: if the framework sees no GPU it says why and how to fix it; "
        "otherwise build and fit the model outside any CPU device scope",
    )


def idle_gpus(r) -> Finding | None:
    """Several GPUs, and some of them sat idle while the fit ran on another."""
    if len(r.gpus) < 2 or not (r.device or "").startswith("GPU"):
        return None
    used = int(r.device.split(":")[1])
    idle = [g for g in r.gpus if g["index"] != used and g["util_mean"] is not None and g["util_mean"] < IDLE_PCT]
    if not idle:
        return None
    busy = next((g for g in r.gpus if g["index"] == used), None)
    names = ", ".join(f"{_gpu_label(g)} ({g['util_mean']:.0f}%)" for g in idle)
    where = f"{_gpu_label(busy)} ({busy['util_mean']:.0f}%)" if busy and busy["util_mean"] is not None else r.device
    return Finding(
        "idle_gpus",
        f"{len(idle)} of {len(r.gpus)} GPUs sat idle: " + ", ".join(_gpu_label(g) for g in idle),
        f"mean utilisation {names}, while the fit ran on {where}",
        "to train on every GPU, build and compile the model under tf.distribute.MirroredStrategy() "
        "(TensorFlow) or keras.distribution.set_distribution(keras.distribution.DataParallel()) (JAX)",
    )


RULES = (gpu_unused, idle_gpus)


def findings(report) -> list[Finding]:
    found = []
    for rule in RULES:
        finding = rule(report)
        if finding is not None:
            found.append(finding)
    return found[:MAX_FINDINGS]
