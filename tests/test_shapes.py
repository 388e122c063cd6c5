"""The shapes that other code and people rely on: the public key set of a result, history files
written by earlier versions, and imports that run one way."""

import ast
import json
from pathlib import Path

import pytest

from colab_magic.history import HistoryView, read, select
from colab_magic.tables import to_text

DATA = Path(__file__).parent / "data"
PACKAGE = Path(__file__).parent.parent / "colab_magic"


def keys(obj, prefix=""):
    out = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            path = f"{prefix}.{k}" if prefix else k
            out.add(path)
            if k not in ("timeline", "clock_events"):  # their keys depend on the data
                out |= keys(v, path)
    elif isinstance(obj, list) and obj:
        out |= keys(obj[0], prefix + "[]")
    return out


@pytest.mark.keras
def test_result_keeps_every_public_key(ip, tmp_path):
    """to_dict() and --json gain keys, never lose them: the key set of a real --compare result, as
    version 0.1.0 wrote it (tests/data/result_keys_v0.json), is all still there."""
    ip.run_cell('''
import numpy as np, keras
x = np.random.default_rng(0).random((256, 8), dtype=np.float32)
y = (x.sum(axis=1) > 4).astype("float32")
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)], name="tiny")
model.compile(optimizer="sgd", loss="mse")
''').raise_error()
    ip.run_cell(f"%%timed_fit --compare --steps 6 -q -v R --history {tmp_path / 'runs.jsonl'}\n"
                "model.fit(x, y, batch_size=32, epochs=2, verbose=0)").raise_error()
    result = ip.user_ns["R"].to_dict()
    json.dumps(result)
    before = set(json.loads((DATA / "result_keys_v0.json").read_text()))
    missing = before - keys(result)
    assert not missing, sorted(missing)
    (record,) = [r for r in read(tmp_path / "runs.jsonl")[0] if r["kind"] == "fit"]
    old_record = json.loads((DATA / "history_v0.jsonl").read_text().splitlines()[0])
    assert set(old_record) <= set(record)


def test_history_written_by_version_0_1_reads_unchanged():
    """A history file of today's format (two fits and a --compare run) lists and compares as it did."""
    path = DATA / "history_v0.jsonl"
    records, warnings = read(path)
    assert len(records) == 3 and warnings == []
    listing = HistoryView(str(path), records)
    # at a width that needs no wrapping (a terminal's own width is tested in test_views.py)
    wide = lambda view: to_text(view.tables(), width=200).replace(str(path), "HISTORY") + "\n"  # noqa: E731
    assert wide(listing) == (DATA / "history_v0_list.txt").read_text()
    chosen, note = select(records, None)
    side_by_side = HistoryView(str(path), chosen, compare=True, note=note)
    assert wide(side_by_side) == (DATA / "history_v0_compare.txt").read_text()
    assert [r["id"] for r in chosen] == ["80986aa6", "f3836a8f"]  # the user's fit beats the --compare run
    assert "8.0x" in str(side_by_side)


def package_imports() -> dict[str, set[str]]:
    """Module -> the package modules it imports, anywhere in it (inside functions too)."""
    graph = {}
    for path in PACKAGE.glob("*.py"):
        name = path.stem
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("colab_magic"):
                found.add((node.module.split(".") + ["__init__"])[1])
            elif isinstance(node, ast.Import):
                found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("colab_magic."))
        graph[name] = found - {name}
    return graph


def test_imports_run_one_way():
    graph = package_imports()
    # nothing imports the magics but the extension's entry point
    assert [m for m, deps in graph.items() if "magics" in deps] == ["__init__"]
    # no cycle, counting imports inside functions
    state: dict[str, int] = {}

    def visit(module, trail):
        if state.get(module) == 1:
            raise AssertionError("import cycle: " + " -> ".join(trail + [module]))
        if state.get(module) == 2:
            return
        state[module] = 1
        for dep in sorted(graph.get(module, ())):
            visit(dep, trail + [module])
        state[module] = 2

    for module in sorted(graph):
        visit(module, [])


VIEWS = ("fit_view", "brief_view", "history_view", "device_view", "drive_view", "plot")


def test_views_import_only_types_and_tables():
    graph = package_imports()
    for view in VIEWS:
        assert graph[view] <= {"parts", "tables", "units", *VIEWS}, (view, graph[view])


def test_imports_inside_functions_are_heavy_dependencies_or_the_lazy_entry_points():
    """Inside functions: Keras, TensorFlow, JAX, torch, matplotlib and the like; package modules only
    in magics (loaded with the extension, it imports the core when a magic first runs) and __init__, and
    the package's modules that import a framework when loaded (keras_callback: Keras)."""
    framework_modules = {"keras_callback"}
    heavy = {"keras", "tensorflow", "jax", "torch", "matplotlib", "google", "tqdm", "pynvml", "IPython", "h5py"}
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for fn in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module not in framework_modules:
                    assert path.stem in ("magics", "__init__"), f"{path.name}: from .{node.module} inside {fn.name}"
                elif isinstance(node, (ast.Import, ast.ImportFrom)) and not (isinstance(node, ast.ImportFrom) and node.level):
                    names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                    assert all(n.split(".")[0] in heavy for n in names), f"{path.name}: import {names} inside {fn.name}"


def functions():
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path, node


def test_functions_are_short_and_take_few_parameters():
    """No function over 60 lines, none with more than 7 parameters (self and cls not counted)."""
    long, wide = [], []
    for path, fn in functions():
        if fn.end_lineno - fn.lineno + 1 > 60:
            long.append(f"{path.name}:{fn.name} ({fn.end_lineno - fn.lineno + 1} lines)")
        a = fn.args
        names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
        names += [x.arg for x in (a.vararg, a.kwarg) if x is not None]
        if len(names) > 7:
            wide.append(f"{path.name}:{fn.name} ({len(names)} parameters)")
    assert not long and not wide, long + wide


def magic_methods():
    tree = ast.parse((PACKAGE / "magics.py").read_text())
    for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        names = {d.id if isinstance(d, ast.Name) else getattr(d, "attr", "") for d in fn.decorator_list}
        if names & {"line_magic", "cell_magic"}:
            yield fn


def test_magics_are_thin():
    """Parse, one call into the core, show: no magic's body over 40 lines (its docstring left out)."""
    found = list(magic_methods())
    assert {fn.name for fn in found} == {"device_info", "timed_fit", "mount_drive", "fit_history"}
    for fn in found:
        body = fn.body[1:] if ast.get_docstring(fn) else fn.body
        lines = body[-1].end_lineno - body[0].lineno + 1
        assert lines <= 40, f"{fn.name}: {lines} lines"


def test_views_are_reached_by_ordinary_imports():
    """The result types import their views (which import only types): no importlib and no module
    named in a string, so the import test above sees every edge."""
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
                arg = node.args[0] if node.args else None
                assert not (isinstance(arg, ast.Constant) and str(arg.value).startswith("colab_magic")), path.name
                assert path.stem == "frameworks", f"{path.name}: importlib.import_module"
            if isinstance(node, ast.Assign):
                assert not any(getattr(t, "id", "") == "_view" for t in node.targets), path.name
    graph = package_imports()
    assert "fit_view" in graph["report"] and "history_view" in graph["history"] and "device_view" in graph["devices"]


def test_the_public_api_is_declared_and_importable_without_loading_a_framework():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import colab_magic\n"
        "from colab_magic import DeviceInfo, FitReport, HistoryView, RunSummary, TimedFitResult, step\n"
        "assert sorted(colab_magic.__all__) == sorted(['DeviceInfo', 'FitReport', 'HistoryView', 'RunSummary', "
        "'TimedFitResult', 'step', 'load_ipython_extension', 'unload_ipython_extension'])\n"
        "step()\n"  # outside a cell: nothing

        "assert all(hasattr(colab_magic, name) for name in colab_magic.__all__)\n"
        "assert TimedFitResult.__module__ == 'colab_magic.report' and DeviceInfo.__module__ == 'colab_magic.devices'\n"
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"  # the result types import no deep-learning framework
    import colab_magic

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        colab_magic.Nope  # noqa: B018


def test_each_default_lives_in_one_place_and_the_help_shows_it():
    """Every flag with a default names it in its help, from the same constant the core uses."""
    from colab_magic import cell, defaults, drive, magics, sampler, trials

    checked = 0
    for name in ("timed_fit", "device_info", "mount_drive", "fit_history"):
        parser = getattr(magics.ColabMagics, name).parser
        for action in parser._actions:
            default = action.default
            if default in (None, False, "") or action.help is None or action.dest == "help":
                continue
            shown = f"{default:g}" if isinstance(default, float) else str(default)
            assert f"default {shown}" in action.help.replace("%%", "%"), (name, action.dest, action.help)
            checked += 1
    assert checked >= 8
    # the core's defaults are these very constants
    assert sampler.Sampler.__init__.__defaults__[0] == defaults.DEFAULT_INTERVAL
    assert cell.TimedFitOptions().interval == defaults.DEFAULT_INTERVAL
    assert cell.TimedFitOptions().trials.budget == defaults.DEFAULT_BUDGET
    assert cell.TimedFitOptions().trials.steps == defaults.MIN_TIMED_STEPS == trials.Plan.__dataclass_fields__["min_steps"].default
    assert magics.DEFAULT_BUDGET_PCT == 100 * defaults.DEFAULT_BUDGET
    assert drive.DEFAULT_MOUNTPOINT in magics.ColabMagics.mount_drive.parser.format_help()


def test_reports_and_results_are_not_changed_once_assembled():
    """A report is assembled once (colab_magic.fit_report, then the cell's extras in one place) and
    frozen after: a view, a verdict or the history cannot change what another one shows."""
    import dataclasses

    from tests import builders

    report = builders.report()
    result = builders.result([report])
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.findings = []
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.notes = ["changed"]


def test_units_are_formatted_in_one_module():
    """Views and verdicts format times, bytes and FLOPs through colab_magic.units: no milliseconds,
    GiB or FLOP units made by hand elsewhere."""
    import re

    by_hand = re.compile(r"\* 1000\b|/ 2\s?\*\*\s?30|/ 1024|1e(?:6|9|12|15)\b")
    for name in ("fit_view", "history_view", "device_view", "drive_view", "verdicts", "headline", "live", "plot"):
        text = (PACKAGE / f"{name}.py").read_text()
        assert not by_hand.search(text), (name, by_hand.search(text).group(0))


def test_the_module_map_lists_exactly_the_package_modules():
    import re

    readme = (PACKAGE.parent / "CONTRIBUTING.md").read_text()
    section = readme[readme.index("## Development"):]
    section = section[:section.index("- A new loop source")]
    listed = set(re.findall(r"`(\w+)\.py`", section))
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    assert listed == modules, (sorted(listed - modules), sorted(modules - listed))
