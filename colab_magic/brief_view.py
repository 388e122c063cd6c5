"""The short text a ``%%timed_fit`` cell shows by default in a terminal or a notebook's text output:
the headline, the verdicts with their fixes, one line per trial flag, and the notes that matter. The
full tables (``%%timed_fit -d``, and the HTML, where they are folded) are :mod:`colab_magic.fit_view`'s.

Said once per session (the cell decides, ``TimedFitResult.told``): why there is no GPU, and where the
history is.
"""

from __future__ import annotations

from typing import Any

from .tables import Table
from .units import NA, fmt, fmt_interval, fmt_s, ms_or_na, seconds_interval

INTERVAL_MEANING = ("In brackets: 95% intervals (the timed steps' scatter, and how much windows as short varied "
                    "during your fit on this machine).")
WHOLE_EPOCH = 100  # in % of an epoch: the most --budget takes (a trial times an epoch at most)
DETAILS_HINT = "Per epoch, hardware and sampler: %%timed_fit -d (or the result's to_dict())."
NO_EPOCHS_DETAILS_HINT = "Hardware and sampler: %%timed_fit -d (or the result's to_dict())."  # no per-epoch table


def brief(result: Any) -> list[Table]:
    """The cell in a few lines: an "answer" block (the headlines, the missing GPU), then the evidence."""
    lines = list(result.headlines)
    if result.no_gpu and "no gpu" in result.told:
        lines[0] = lines[0].replace(" on the CPU", " on the CPU (CPU only: no GPU here)", 1)
    answer = Table(lines[0], [], notes=lines[1:], kind="answer")
    if result.no_gpu and "no gpu" not in result.told:
        answer.notes.append(result.no_gpu)
    body: list[str] = []
    numbered = len(result.reports) > 1
    for r in result.reports:
        body += _fit_lines(r, f"Fit {r.index}: " if numbered else "", result.comparison_for(r),
                           result.whatif_for(r))
    if any(has_interval(c) for c in [*result.comparisons, *result.whatifs]):
        body.append(INTERVAL_MEANING)
    body += result.notes
    failed = all(r.failed for r in result.reports)
    if result.history_path and "history" not in result.told and not failed:
        body.append(f"Recorded in {result.history_path} (%fit_history lists it).")
    if not failed:
        body.append(DETAILS_HINT if any(r.epochs_seen for r in result.reports) else NO_EPOCHS_DETAILS_HINT)
    return [answer] + ([Table(body[0], [], notes=body[1:], kind="answer")] if body else [])


def _fit_lines(r: Any, which: str, comparison: Any, whatif: Any) -> list[str]:
    if r.failed:  # the headline says where; the user's traceback follows the output
        return []
    lines = [which + _figures(r)] if r.step is not None else []
    lines += [f"{which}({n}) {f.title}. Fix: {f.fix}." for n, f in enumerate(r.findings, 1)]
    check = r.input_wait
    if check is not None and all(f.rule != "input_bound" for f in r.findings):
        share = fmt_interval(check.wait_share, check.wait_share_interval, ".1f", "%", 100)
        passed = ("Not input-bound: {} of each step waits in the DataLoader." if check.source == "DataLoader"
                  else "Input check passed: {} of each step waits for data.")
        lines.append(which + passed.format(share))
    if comparison is not None:
        lines.append(which + compare_line(comparison))
    if whatif is not None:
        lines.append(which + whatif_line(whatif))
    return lines + [which + note for note in r.notes]


def epochs_unseen(r: Any) -> str:
    """Why a fit has no epochs (``r.epochs_seen`` False)."""
    if r.loop == "marked":
        return "colab_magic.step() marks steps, not epochs"
    return "no DataLoader fed the steps, and a new pass over one is what starts an epoch"


def _figures(r: Any) -> str:
    epochs = len(r.epochs)
    if not r.epochs_seen:
        text = f"{r.total_steps:,} steps, no epochs seen ({epochs_unseen(r)})"
    else:
        text = f"{epochs} epoch{'s' if epochs != 1 else ''}"
        if r.steps_per_epoch:
            text += f" of {r.steps_per_epoch:,} steps"
    if r.batch_size:
        text += f", batch {r.batch_size:,}"
    if r.samples_per_s:
        text += f": {fmt(r.samples_per_s, ',.0f')} samples/s"
    if r.first_step_s is not None and r.loop == "keras":
        text += f"; the first step took {fmt_s(r.first_step_s)} (compiling; left out of ms/step)"
    elif r.first_step_s is not None:  # timed from its own optimizer step only: its duration would mislead
        text += "; the first step left out of ms/step (its warm-up)"
    return text + "."


def has_interval(trials: Any) -> bool:
    runs = [*trials.runs, *([trials.baseline] if getattr(trials, "baseline", None) else [])]
    return any(r.speedup_interval or r.projected_epoch_interval_s for r in runs)


def compare_line(c: Any) -> str:
    """--compare in one line: each device's projected epoch and speed-up, what the trials cost."""
    if c.skipped:
        return f"--compare skipped: {c.skipped}."
    parts = []
    for run in c.runs:
        if run.error is not None:
            parts.append(f"{run.device} failed ({run.error})")
            continue
        text = (f"{run.device} {ms_or_na(run.step_median_s)} ms/step, "
                f"{seconds_interval(run.projected_epoch_s, run.projected_epoch_interval_s)} s/epoch")
        if run.speedup is not None and not run.is_cpu:
            text += f", {fmt_interval(run.speedup, run.speedup_interval, '.1f', 'x')} the CPU's speed"
        if run.source != "measured now":
            text += " (from the history)"
        parts.append(text)
    line = "--compare (training only, projected): " + "; ".join(parts) + "."
    if not any(run.is_gpu and run.error is None for run in c.runs):
        line += (" No GPU here: run this cell in a GPU runtime (with %mount_drive the history follows), then "
                 "%fit_history --compare sets the two side by side.")
    return line + cost(c)


def whatif_line(w: Any) -> str:
    """--whatif in one line: each change's speed-up over the model as it is, what was left out, the cost."""
    head = f"--whatif on {w.device}"
    if w.skipped:
        return f"{head} skipped: {w.skipped}."
    parts = []
    if w.baseline is not None and w.baseline.error is not None:
        parts.append(f"the model as it is failed ({w.baseline.error})")
    for run in w.runs:
        if run.error is not None:
            parts.append(f"{run.variant} cannot run ({run.error})")
        elif run.speedup is not None:
            parts.append(f"{run.variant} {fmt_interval(run.speedup, run.speedup_interval, '.2f', 'x')}")
        else:
            parts.append(f"{run.variant} {NA}")
    line = head + (" (samples/s over the model as it is): " + "; ".join(parts) + "." if parts else ":")
    if w.left_out:
        line += (f" Not run, to keep within the budget: {', '.join(w.left_out)} "
                 f"(--whatif {','.join(w.left_out)} runs them anyway).")
    return line + cost(w)


def cost(trials: Any) -> str:
    """" Cost 0.98 s of a 0.82 s budget (10% of an epoch)", and the --budget that would hold them all
    when compiling alone went over it or changes were left out to keep within it."""
    if trials.wall_s is None:
        return ""
    text = f" Cost {fmt_s(trials.wall_s)}"
    if trials.budget_s is not None:
        text += f" of a {fmt_s(trials.budget_s)} budget ({100 * trials.budget_share:.0f}% of an epoch)"
    needed = trials.needed_budget  # compiling alone went over the budget, or changes were left out
    if needed is not None and needed <= WHOLE_EPOCH:
        text += f"; --budget {needed} would hold them all"
    elif needed is not None:
        text += "; they take longer than an epoch, the most --budget allows"
    return text + "."
