"""Mutation testing (mutmut 3.8) of the modules that make the numbers, on the fast tests.

Not in CI: it runs the covering tests once per mutant (tens of minutes on 2 cores). It works in a copy
of the repository, so neither the repo's pyproject.toml nor its tree gets mutmut's files, and writes
a report with the kill rate per module and every surviving mutant's diff:

    .venv/bin/pip install "mutmut>=3.8,<3.9"
    .venv/bin/python bench/mutation.py                       # all the modules below
    .venv/bin/python bench/mutation.py --modules stats history --out /tmp/m.md

A survivor is either a gap in the tests (write the test that kills it) or an equivalent mutant (the
program cannot behave differently); bench/results/README.md says which for the committed report.
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

ROOT = Path(__file__).resolve().parent.parent
MODULES = ["stats", "timing", "sampler", "summarise", "report", "run_summary", "history", "verdicts",
           "comparison", "drive"]
# The fast tests: none that trains a real Keras model (marker "keras"; those take seconds each, and
# every fit reaches the timer and the sampler), nor the real-kernel notebooks, the browser, other
# backends' subprocesses or the pip dry runs: about 140 tests, 15 s. mutmut runs, for each mutant,
# only those of them that reached the mutated function.
FAST = ["-m", "not keras"]
SLOW_TESTS = ["test_examples.py", "test_browser.py", "test_backends.py", "test_colab_parity.py",
              "test_input_bound.py"]
STATUS = re.compile(r"^\s*(colab_magic\.[\w.]+__mutmut_\d+): (.+)$")


def prepare(workdir: Path, modules: list[str]) -> None:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    shutil.copytree(ROOT / "colab_magic", workdir / "colab_magic", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tests", workdir / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    tests = sorted(p.name for p in (ROOT / "tests").glob("test_*.py") if p.name not in SLOW_TESTS)
    config = "\n".join([
        "",
        "[tool.mutmut]",
        'source_paths = ["colab_magic"]',
        "only_mutate = [" + ", ".join(f'"colab_magic/{m}.py"' for m in modules) + "]",
        "pytest_add_cli_args_test_selection = [" + ", ".join(f'"tests/{t}"' for t in tests) + "]",
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", ' + ", ".join(f'"{a}"' for a in FAST) + "]",
        # TensorFlow's threads do not survive a fork from a process that has run tests: fork each
        # mutant's run from a server that has only imported them.
        'process_isolation = "forkserver"',
        "use_git_change_detection = false",
        "",
    ])
    (workdir / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text() + config)


def mutmut(workdir: Path, *args: str, check: bool = True) -> str:
    exe = Path(sys.executable).parent / "mutmut"
    env = dict(os.environ, PYTHONPATH=str(workdir))
    proc = subprocess.run([str(exe), *args], cwd=workdir, env=env, text=True, capture_output=True)
    if check and proc.returncode != 0:
        sys.exit(f"mutmut {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def report(workdir: Path, modules: list[str], seconds: float) -> str:
    listing = mutmut(workdir, "results", "--all", "true")
    by_module: dict[str, dict[str, list[str]]] = {m: {} for m in modules}
    for line in listing.splitlines():
        match = STATUS.match(line)
        if match:
            name, status = match.groups()
            module = name.split(".")[1]
            by_module.setdefault(module, {}).setdefault(status.strip(), []).append(name)
    lines = [
        f"# Mutation testing: mutmut on the fast tests ({datetime.date.today().isoformat()})",
        "",
        f"Command: `.venv/bin/python bench/mutation.py --modules {' '.join(modules)}`; {seconds / 60:.0f} min "
        f"on {os.cpu_count()} cores.",
        "",
        "| module | mutants | killed | survived | timeout | other | kill rate |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    totals = [0, 0, 0, 0, 0]
    survivors = []
    for module in modules:
        counts = by_module.get(module, {})
        killed = len(counts.get("killed", []))
        survived = len(counts.get("survived", []))
        timeout = len(counts.get("timeout", []))
        total = sum(len(v) for v in counts.values())
        other = total - killed - survived - timeout
        survivors += counts.get("survived", [])
        # a mutant that makes the tests hang is caught: the timeout counts as a kill
        rate = 100.0 * (killed + timeout) / (killed + timeout + survived) if killed + timeout + survived else 0.0
        lines.append(f"| {module} | {total} | {killed} | {survived} | {timeout} | {other} | {rate:.1f}% |")
        for i, n in enumerate((total, killed, survived, timeout, other)):
            totals[i] += n
    rate = 100.0 * (totals[1] + totals[3]) / (totals[1] + totals[2] + totals[3]) if totals[0] else 0.0
    lines.append(f"| **all** | {totals[0]} | {totals[1]} | {totals[2]} | {totals[3]} | {totals[4]} | **{rate:.1f}%** |")
    lines += ["", "'other': mutants no selected test reached (no tests), or skipped.", "", "## Survivors", ""]
    for name in survivors:
        diff = mutmut(workdir, "show", name, check=False).strip()
        lines += [f"### {name}", "", "```diff", diff, "```", ""]
    if not survivors:
        lines.append("None.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", nargs="+", default=MODULES, choices=MODULES)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/colab_magic_mutation"))
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "mutation.md")
    args = parser.parse_args()
    prepare(args.workdir, args.modules)
    began = time.monotonic()
    print(f"mutmut run in {args.workdir} (this takes a while)...", flush=True)
    mutmut(args.workdir, "run", "--max-children", str(args.max_children), check=False)
    text = report(args.workdir, args.modules, time.monotonic() - began)
    args.out.write_text(text)
    print(text.split("## Survivors")[0])
    print(f"report: {args.out}")


if __name__ == "__main__":
    main()
