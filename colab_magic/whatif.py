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
    asked = _asked(chosen, keras.backend.backend(), device, captured, plan, cpuinfo)
    todo = [variant for variant, why in asked if why is None]
    if not asked:
        result.skipped = "none of the changes applies to this model here"
        return result
    result.budget_s, result.budget_share = plan.budget_s(options.budget), options.budget
    # what one trial costs: from the user's fit (compiling included) until a trial here has run
    each = trials.least_cost_s(user_report, options.steps)
    left_out: list[Variant] = []
    with trials.stopped_by_ctrl_c(result):  # what finished is kept; the caller raises Ctrl-C again
        if chosen is None:
            _named_first(todo, user_report)
        # the default list keeps within its budget: nothing runs when the model as it is and one change
        # cannot both fit (asked for by name, they run anyway)
        if todo and baseline is None and chosen is None and _over(result, start, each, 2):
            left_out, todo = todo, []
        if todo and baseline is None:
            baseline = trials.run_shown(progress, f"--whatif: {name} as it is", plan, device.lower(), interval=options.interval,
                                        kind="whatif")
        result.baseline = baseline
        each = baseline.trial_s if baseline is not None and baseline.trial_s else each
        for variant, why in asked:
            if why is not None:
                result.runs.append(RunSummary(device, kind="whatif", model=name, variant=variant.label, error=why))
        step_s = user_report.step.mean if user_report is not None and user_report.step is not None else 0.0
        for n, variant in enumerate(todo):
            cost = each + trials.extra_cost_s(variant, options.steps, step_s) if each is not None else None
            if chosen is None and _over(result, start, cost, 1):
                left_out.append(variant)
                continue
            spent = time.perf_counter() - start
            share = max(0.0, result.budget_s - spent) / (len(todo) - n) if result.budget_s is not None else None
            result.runs.append(trials.run_shown(progress, f"--whatif: {name} with {variant.label}", plan, device.lower(),
                                                variant, interval=options.interval, budget_s=share, kind="whatif"))
    _close(result, chosen, left_out, device)
    result.wall_s = time.perf_counter() - start
    step_s = user_report.step.mean if user_report is not None and user_report.step is not None else 0.0
    extra = sum(trials.extra_cost_s(v, options.steps, step_s) for v in left_out)
    result.needed_budget = _needed_budget(result, plan, len(left_out), each, extra)
    return result


def _needed_budget(result: WhatIf, plan: trials.Plan, left_out: int, each: float | None, extra: float) -> int | None:
    """The --budget that would have held the whole list (changes were left out), or the trials that ran
    (compiling alone went over the budget)."""
    if left_out and each and plan.epoch_s and result.wall_s is not None:
        whole = result.wall_s + each * (left_out + (result.baseline is None)) + extra
        return trials.budget_pct(whole, plan.epoch_s)
    ran = [r for r in [result.baseline, *result.runs] if r is not None and r.report is not None]
    return trials.needed_budget(result.wall_s, sum(r.first_step_s or 0.0 for r in ran), result.budget_s,
                                result.budget_share)


def _asked(chosen: list[Variant] | None, backend: str, device: str, captured: CapturedFit, plan: trials.Plan,
           cpuinfo: str | None) -> list[tuple[Variant, str | None]]:
    """The changes asked for, each with why it cannot run or does not apply (None: it can run); the
    default list leaves out what does not apply."""
    asked = []
    model, x = captured.model, captured.arguments.get("x")
    for variant in chosen if chosen is not None else variants.CATALOGUE.values():
        why = variants.cannot_run(variant, backend, device, model, x, plan.batch_size, cpuinfo) \
            or variants.already_on(variant, model)
        if why is None or chosen is not None:
            asked.append((variant, why))
    return asked


def _over(result: WhatIf, start: float, each: float | None, trials_: int) -> bool:
    """Whether ``trials_`` more trials of about ``each`` seconds would take the what-if over its budget."""
    if result.budget_s is None or each is None:
        return False
    return time.perf_counter() - start + trials_ * each > result.budget_s


def _named_first(todo: list[Variant], user_report: FitReport | None) -> None:
    """The default list keeps within the budget: the fixes the verdicts name first, then the others while
    one more trial (about what the model as it is cost: compiling is most of it) still fits."""
    named = [key for f in (user_report.findings if user_report else []) for key in variants.FIXES_OF_RULE.get(f.rule, ())]
    todo.sort(key=lambda v: named.index(v.key) if v.key in named else len(named))


def _close(result: WhatIf, chosen: list[Variant] | None, left_out: list[Variant], device: str) -> None:
    """The runs in the order asked, their speed-ups, and the notes on what was left out or changed."""
    result.left_out = [next(a for a, k in variants.ALIASES.items() if k == v.key) for v in left_out]
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
