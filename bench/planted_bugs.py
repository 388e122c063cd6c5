"""The one-line bugs of the "tests that catch real bugs" issue, planted one at a time in a copy of the
package, each against the fast tests (those of bench/mutation.py): every one must fail at least one test. Not in CI (a few
minutes); the result goes under bench/results/.

    .venv/bin/python bench/planted_bugs.py [--out bench/results/planted_bugs.md]
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutation import FAST, ROOT, SLOW_TESTS  # noqa: E402

# (what the bug is, file, the line(s) as they are, the line(s) with the bug)
BUGS = [
    ("percentile without interpolation", "stats.py",
     "    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)",
     "    return sorted_values[lo]"),
    ('"p90" computed at 0.95', "stats.py", "p90=quantile_of(ordered, 0.9),", "p90=quantile_of(ordered, 0.95),"),
    ("reservoir slot drawn from randrange(capacity)", "stats.py",
     "slot = self._rng.randrange(self.count)", "slot = self._rng.randrange(self.capacity)"),
    ("reservoir extremes taken from the sample (fixed this round)", "stats.py",
     "min=extremes[0] if extremes else ordered[0],", "min=ordered[0],"),
    ("series decimation off its grid after halving (fixed this round)", "stats.py",
     "            self._stride *= 2\n", "            self._stride *= 2\n            self._skip = self._stride - 1\n"),
    ("history append without the flock", "history.py",
     "            fcntl.flock(fd, fcntl.LOCK_EX)", "            pass"),
    ("history epoch_mean_s from the first epoch only", "report.py",
     "return sum(e.time_s or 0.0 for e in closed) / len(closed) if closed else None",
     "return closed[0].time_s if closed else None"),
    ("memory-full verdict threshold 0.95 -> 0.50", "verdicts.py",
     "MEMORY_FULL = 0.95", "MEMORY_FULL = 0.50"),
    ('"reserved up front" ratio 0.5 -> 0.9', "verdicts.py", "own < 0.5 * peak", "own < 0.9 * peak"),
    ("util_mean reported as the peak", "fit_report.py", 'util_mean=s["util"].mean,', 'util_mean=s["util"].peak,'),
    ("per-epoch energy counted from the fit's start", "fit_report.py",
     "sampler.energy_j_between(g, n, n + 1)", "sampler.energy_j_between(g, 0, n + 1)"),
    ("driver-sample cursor never advanced (samples read twice)", "sampler.py",
     "                    track.last_sample_us = samples[-1][0]", "                    pass"),
    ("Model.fit not restored after an exception", "keras_loop.py",
     "    def __exit__(self, *exc: object) -> None:\n        if self._own is None:",
     "    def __exit__(self, *exc: object) -> None:\n        if exc[0] is not None:\n            return\n        if self._own is None:"),
]
FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.M)


def run_one(workdir: Path, bug) -> tuple[str, list[str], float]:
    what, filename, before, after = bug
    if workdir.exists():
        shutil.rmtree(workdir)
    shutil.copytree(ROOT / "colab_magic", workdir / "colab_magic", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tests", workdir / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", workdir / "pyproject.toml")
    target = workdir / "colab_magic" / filename
    source = target.read_text()
    if source.count(before) != 1:
        return "not planted: the line is not in the code as written", [], 0.0
    target.write_text(source.replace(before, after))
    tests = [f"tests/{p.name}" for p in sorted((ROOT / "tests").glob("test_*.py")) if p.name not in SLOW_TESTS]
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *FAST, *tests],
        cwd=workdir, env=dict(os.environ, PYTHONPATH=str(workdir)), text=True, capture_output=True,
    )
    seconds = time.monotonic() - began
    failed = FAILED.findall(proc.stdout)
    if proc.returncode == 0:
        return "SURVIVED", [], seconds
    return ("caught" if failed else f"pytest exit {proc.returncode}"), failed, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/colab_magic_planted"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "planted_bugs.md")
    args = parser.parse_args()
    lines = [
        f"# Planted bugs against the fast tests ({datetime.date.today().isoformat()})",
        "",
        "Command: `.venv/bin/python bench/planted_bugs.py`. Each bug alone in a copy of the package; "
        "pytest stops at the first failing test (`-x`). The fast tests: no real Keras training "
        "(`-m 'not keras'`), as for bench/mutation.py.",
        "",
        "| planted bug | result | first failing test | s |",
        "|---|---|---|---:|",
    ]
    survived = 0
    for bug in BUGS:
        result, failed, seconds = run_one(args.workdir, bug)
        survived += result != "caught"
        first = failed[0] if failed else ""
        lines.append(f"| {bug[0]} | {result} | `{first}` | {seconds:.0f} |")
        print(lines[-1], flush=True)
    lines += ["", f"{len(BUGS) - survived} of {len(BUGS)} caught."]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"{len(BUGS) - survived} of {len(BUGS)} caught; report: {args.out}")
    sys.exit(1 if survived else 0)


if __name__ == "__main__":
    main()
