"""``%%timed_fit --whatif``: the fixes the verdicts name, measured. Each variant of a model the cell
trained (:mod:`colab_magic.variants`) is timed by a trial on the device the model trained on, from the
same start, beside a trial of the model as it is; the speed-up is in samples per second, with its
interval.
"""

from __future__ import annotations

import time
from typing import Any

from . import trials, variants
from .comparison import TrialOptions
from .keras_loop import CapturedFit
from .report import FitReport
from .run_summary import RunSummary, WhatIf
from .variants import Variant


def whatif_fit(captured: CapturedFit, user_report: FitReport | None, chosen: list[Variant] | None,
               options: TrialOptions, baseline: RunSummary | None = None, progress: Any = None,
               cpuinfo: str | None = None) -> WhatIf:
    """``chosen``: the variants asked for (None: each that applies). ``options``: the trials' steps,
    budget and sampling. ``baseline``: a trial of the model as it is on this device that already ran
    (--compare's), else one is run."""
    import keras

    start = time.perf_counter()
    model = captured.model
    device = (user_report.device if user_report else None) or "CPU:0"
    name = getattr(model, "name", type(model).__name__)
    result = WhatIf(model=name, device=device)
    try:
        plan = trials.Plan.for_fit(captured, user_report, options.steps)
    except trials.TrialError as exc:
        result.skipped = str(exc)
        return result
    backend = keras.backend.backend()
    x = captured.arguments.get("x")
    asked = []  # (variant, why it cannot run or does not apply, or None)
    for variant in chosen if chosen is not None else variants.CATALOGUE.values():
        why = variants.cannot_run(variant, backend, device, model, x, plan.batch_size, cpuinfo) \
            or variants.already_on(variant, model)
        if why is None or chosen is not None:  # the default list leaves out what does not apply
            asked.append((variant, why))
    todo = [variant for variant, why in asked if why is None]
    if not asked:
        result.skipped = "none of the changes applies to this model here"
        return result
    result.budget_s = plan.budget_s(options.budget)
    left_out: list[Variant] = []
    each = None
    with trials.stopped_by_ctrl_c(result):  # what finished is kept; the caller raises Ctrl-C again
        if todo and baseline is None:
            baseline = trials.run_shown(progress, f"--whatif: {name} as it is", plan, device.lower(), interval=options.interval,
                                        kind="whatif")
        result.baseline = baseline
        each = baseline.trial_s if baseline is not None and baseline.trial_s else None
        if chosen is None:
            _named_first(todo, user_report)
        for variant, why in asked:
            if why is not None:
                result.runs.append(RunSummary(device, kind="whatif", model=name, variant=variant.label, error=why))
        for n, variant in enumerate(todo):
            spent = time.perf_counter() - start
            if chosen is None and n and result.budget_s is not None and each and spent + each > result.budget_s:
                left_out.append(variant)
                continue
            share = max(0.0, result.budget_s - spent) / (len(todo) - n) if result.budget_s is not None else None
            result.runs.append(trials.run_shown(progress, f"--whatif: {name} with {variant.label}", plan, device.lower(),
                                                variant, interval=options.interval, budget_s=share, kind="whatif"))
    _close(result, chosen, left_out, each, options.budget, device)
    result.wall_s = time.perf_counter() - start
    note = trials.over_budget(result.wall_s, result.budget_s, options.budget, result.runs)
    if note:
        result.notes.append(note)
    return result


def _named_first(todo: list[Variant], user_report: FitReport | None) -> None:
    """The default list keeps within the budget: the fixes the verdicts name first, then the others while
    one more trial (about what the model as it is cost: compiling is most of it) still fits."""
    named = [key for f in (user_report.findings if user_report else []) for key in variants.FIXES_OF_RULE.get(f.rule, ())]
    todo.sort(key=lambda v: named.index(v.key) if v.key in named else len(named))


def _close(result: WhatIf, chosen: list[Variant] | None, left_out: list[Variant], each: float | None,
           budget: float, device: str) -> None:
    """The runs in the order asked, their speed-ups, and the notes on what was left out or changed."""
    if left_out:
        keys = ",".join(next(a for a, k in variants.ALIASES.items() if k == v.key) for v in left_out)
        result.notes.append(
            f"Not timed, to keep within the budget ({result.budget_s:.2f} s, {100 * budget:.0f}% of your epoch; "
            f"one trial costs about {each:.2f} s, mostly compiling): {', '.join(v.label for v in left_out)}. "
            f"--whatif {keys} times them anyway, or raise --budget.")
    order = [v.label for v in (chosen or variants.CATALOGUE.values())]  # the order asked, else the catalogue's
    result.runs.sort(key=lambda r: order.index(r.variant or ""))  # every run here has its variant
    result.add_speedups()
    timed = [r.variant for r in result.runs if r.error is None]
    if variants.CATALOGUE["batch_x4"].label in timed:
        result.notes.append("batch x4 is compared in samples/s, for the same epoch of data; a larger batch may "
                            "need a larger learning rate (or a warm-up) to reach the same accuracy.")
    if variants.CATALOGUE["mixed_precision"].label in timed:
        result.notes.append(f"mixed precision: {variants.policy(variants.CATALOGUE['mixed_precision'], device)}, "
                            "with the last layer kept in float32.")


def planned(chosen: list | None) -> int:
    """How many trials whatif_fit will run at most for this model (the progress bar's total)."""
    return 1 + len(chosen if chosen is not None else variants.CATALOGUE)
