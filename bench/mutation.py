"""Mutation testing (mutmut 3.8) of the modules that make the numbers, on the fast tests.

Not in CI: it runs the covering tests once per mutant (tens of minutes on 2 cores). It works in a copy
of the repository, so neither the repo's pyproject.toml nor its tree gets mutmut's files, and writes
a report with the kill rate per module and every surviving mutant's diff:

    .venv/bin/pip install "mutmut>=3.8,<3.9"
    .venv/bin/python bench/mutation.py                       # all the modules below
    .venv/bin/python bench/mutation.py --modules stats history --out /tmp/m.md
    .venv/bin/python bench/mutation.py --retest-survivors    # after new tests: only the survivors again
    .venv/bin/python bench/mutation.py --verify-survivors    # each survivor against every fast test

A survivor is either a gap in the tests (write the test that kills it) or an equivalent mutant (the
program cannot behave differently); bench/results/README.md says which for the committed report.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import difflib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = ["stats", "timing", "sampler", "fit_report", "report", "run_summary", "history", "verdicts",
           "comparison", "drive", "intervals", "variants", "input_check"]
# The fast tests: none that trains a real Keras model (marker "keras"; those take seconds each, and
# every fit reaches the timer and the sampler), nor the real-kernel notebooks, the browser, other
# backends' subprocesses or the pip dry runs: about 140 tests, 15 s. mutmut runs, for each mutant,
# only those of them that reached the mutated function.
FAST = ["-m", "not keras"]
SLOW_TESTS = ["test_examples.py", "test_browser.py", "test_backends.py", "test_colab_parity.py",
              "test_input_bound.py"]


def prepare(workdir: Path, modules: list[str]) -> None:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    shutil.copytree(ROOT / "colab_magic", workdir / "colab_magic", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tests", workdir / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    write_config(workdir, modules)


def write_config(workdir: Path, modules: list[str]) -> None:
    """mutmut's settings, appended to a copy of the repo's pyproject.toml, with the test files there
    are now."""
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


def status(code) -> str:
    """A mutant's test run's exit code in mutmut's own words (killed, survived, timeout, no tests...)."""
    from mutmut.stats import status_by_exit_code

    return status_by_exit_code[code]


def _functions(path: Path) -> dict[str, str]:
    """Every function of a mutmut-made module (the original and each mutant), by name, as source."""
    lines = path.read_text().splitlines()
    return {node.name: "\n".join(lines[node.lineno - 1:node.end_lineno]) for node in ast.walk(ast.parse("\n".join(lines)))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _diff(functions: dict[str, str], name: str) -> str:
    """The mutant against the original function: mutmut's `show`, without a process per mutant."""
    name = name.rsplit(".", 1)[-1]  # colab_magic.stats.x_quantile__mutmut_3 -> the function's own name
    base = name.rsplit("__mutmut_", 1)[0]
    original, mutant = functions.get(base + "__mutmut_orig"), functions.get(name)
    if original is None or mutant is None:
        return "(source not found)"
    # the two copies differ in their names: compare them under one, so a changed default shows
    original = original.replace(base + "__mutmut_orig", base, 1)
    mutant = mutant.replace(name, base, 1)
    lines = difflib.unified_diff(original.splitlines(), mutant.splitlines(), lineterm="", n=0)
    return "\n".join(line for line in lines if not line.startswith(("---", "+++", "@@")))


def report(workdir: Path, modules: list[str], seconds: float) -> str:
    lines = [
        f"# Mutation testing: mutmut on the fast tests ({datetime.date.today().isoformat()})",
        "",
        f"Command: `.venv/bin/python bench/mutation.py --modules {' '.join(modules)}` at commit "
        f"{(workdir / 'commit').read_text() if (workdir / 'commit').exists() else '?'}; {seconds / 60:.0f} min "
        f"on {os.cpu_count()} cores. Tests: {' '.join(FAST)}, without {', '.join(SLOW_TESTS)}."
        + (f" Then `--retest-survivors`: {(workdir / 'retest').read_text()}." if (workdir / "retest").exists() else ""),
        "",
        "| module | mutants | killed | survived | timeout | no tests | other | kill rate |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    totals = {"mutants": 0, "killed": 0, "survived": 0, "timeout": 0, "no tests": 0, "other": 0}
    survivors = []
    for module in modules:
        path = workdir / "mutants" / "colab_magic" / f"{module}.py"
        meta = json.loads(path.with_name(path.name + ".meta").read_text())["exit_code_by_key"]
        counts = {"mutants": len(meta), "killed": 0, "survived": 0, "timeout": 0, "no tests": 0, "other": 0}
        functions = _functions(path)
        for name, code in sorted(meta.items()):
            what = status(code)
            counts[what if what in counts else "other"] += 1
            if what == "survived":
                survivors.append((name, _diff(functions, name)))
        for key in totals:
            totals[key] += counts[key]
        lines.append(f"| {module} | {counts['mutants']} | {counts['killed']} | {counts['survived']} | "
                     f"{counts['timeout']} | {counts['no tests']} | {counts['other']} | {_rate(counts)} |")
    lines.append(f"| **all** | {totals['mutants']} | {totals['killed']} | {totals['survived']} | {totals['timeout']} | "
                 f"{totals['no tests']} | {totals['other']} | **{_rate(totals)}** |")
    lines += ["", "Kill rate: (killed + timeout) / (killed + timeout + survived); a mutant that makes the tests hang "
              "is caught. 'no tests': no fast test reaches the function (left out of the rate). 'other': not checked, "
              "suspicious or skipped, in mutmut's words.", "",
              "## Survivors", ""]
    for name, diff in survivors:
        lines += [f"### {name}", "", "```diff", diff, "```", ""]
    if not survivors:
        lines.append("None.")
    return "\n".join(lines) + "\n"


def _survivors(workdir: Path, modules: list[str]) -> list[str]:
    names = []
    for module in modules:
        meta = workdir / "mutants" / "colab_magic" / f"{module}.py.meta"
        names += [k for k, v in json.loads(meta.read_text())["exit_code_by_key"].items() if status(v) == "survived"]
    return names


def verify(workdir: Path, names: list[str]) -> dict[str, str]:
    """Each survivor against the whole fast test selection, not only the tests mutmut's map says reach
    its function: mutmut chooses the mutant by the MUTANT_UNDER_TEST variable, which wins over its
    own choice. A survivor that fails here was missed by mutmut's selection, not by the tests."""
    config = (workdir / "mutants" / "pyproject.toml").read_text()
    selection = [t.strip().strip('"') for t in
                 config.split("pytest_add_cli_args_test_selection = [", 1)[1].split("]", 1)[0].split(",")]
    results = {}
    for i, name in enumerate(names, 1):
        env = dict(os.environ, MUTANT_UNDER_TEST=name, PYTHONPATH=str(workdir / "mutants"))
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *FAST,
                               *selection], cwd=workdir / "mutants", env=env, text=True, capture_output=True)
        results[name] = {0: "survived", 1: "killed"}.get(proc.returncode, f"exit {proc.returncode}")
        print(f"{i}/{len(names)} {results[name]:9} {name}", flush=True)
    return results


def _git_head() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip() or "?"


def _rate(c: dict) -> str:
    caught = c["killed"] + c["timeout"]
    return f"{100.0 * caught / (caught + c['survived']):.1f}%" if caught + c["survived"] else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", nargs="+", default=MODULES, choices=MODULES)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/colab_magic_mutation"))
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "mutation.md")
    parser.add_argument("--report-only", action="store_true", help="write the report of the last run in --workdir")
    parser.add_argument("--retest-survivors", action="store_true",
                        help="copy the current tests into the last run's --workdir and run its survivors again")
    parser.add_argument("--verify-survivors", action="store_true",
                        help="run every fast test against each survivor of the last run in --workdir")
    parser.add_argument("--sample", type=int, default=0, metavar="N", help="with --verify-survivors: only N of them")
    args = parser.parse_args()
    began = time.monotonic()
    if args.verify_survivors:
        names = _survivors(args.workdir, args.modules)
        if args.sample:  # every k-th: a spread over the modules, for a check that takes minutes, not an hour
            names = names[:: max(1, len(names) // args.sample)][: args.sample]
        results = verify(args.workdir, names)
        (args.workdir / "verified.json").write_text(json.dumps(results, indent=1))
        killed = sorted(n for n, r in results.items() if r != "survived")
        print(f"{len(killed)} of {len(results)} survivors fail the whole fast selection:", *killed, sep="\n")
        return
    if args.retest_survivors:
        survivors = _survivors(args.workdir, args.modules)
        for target in (args.workdir / "tests", args.workdir / "mutants" / "tests"):
            shutil.rmtree(target)
            shutil.copytree(ROOT / "tests", target, ignore=shutil.ignore_patterns("__pycache__"))
        # mutmut runs, for each mutant, the tests its stats say reach the function: select the test
        # files there are now and collect the stats again, or new tests would never run
        write_config(args.workdir, args.modules)
        shutil.copy(args.workdir / "pyproject.toml", args.workdir / "mutants" / "pyproject.toml")
        (args.workdir / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
        print(f"retesting {len(survivors)} survivors with the current tests...", flush=True)
        mutmut(args.workdir, "run", "--max-children", str(args.max_children), *survivors, check=False)
        (args.workdir / "retest").write_text(f"{len(survivors)} survivors retested with the tests of "
                                            f"{_git_head()}")
    elif not args.report_only:
        prepare(args.workdir, args.modules)
        print(f"mutmut run in {args.workdir} at {_git_head()} (this takes a while)...", flush=True)
        (args.workdir / "commit").write_text(_git_head())
        mutmut(args.workdir, "run", "--max-children", str(args.max_children), check=False)
        (args.workdir / "run_seconds").write_text(f"{time.monotonic() - began:.0f}")
    seconds = float((args.workdir / "run_seconds").read_text()) if (args.workdir / "run_seconds").exists() else 0.0
    text = report(args.workdir, args.modules, seconds)
    args.out.write_text(text)
    print(text.split("## Survivors")[0])
    print(f"report: {args.out}")


if __name__ == "__main__":
    main()
