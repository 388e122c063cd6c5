"""The example notebooks, executed in a real Jupyter kernel (ipykernel) through nbclient."""

import importlib.util
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytestmark = pytest.mark.keras

EXAMPLES = Path(__file__).parent.parent / "examples"


def execute(name, monkeypatch, tmp_path, **env):
    import sys

    sys.path.insert(0, str(EXAMPLES))
    try:
        from run_notebook import run, text_of
    finally:
        sys.path.remove(str(EXAMPLES))
    # The kernel inherits this environment: its own home and drive, and (quickstart) fewer samples.
    monkeypatch.setenv("COLAB_MAGIC_DRIVE", str(tmp_path / "drive"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    nb = run(str(EXAMPLES / f"{name}.ipynb"), timeout=600)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    return cells, text_of


def outputs(cell, text_of):
    return "".join(text_of(o) for o in cell.get("outputs", []))


def test_notebooks_are_committed_without_outputs():
    for path in EXAMPLES.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code"), path


def test_quickstart(monkeypatch, tmp_path):
    cells, text_of = execute("quickstart", monkeypatch, tmp_path, QUICKSTART_SAMPLES="1600")
    assert not any(o.output_type == "error" for c in cells for o in c.get("outputs", []))
    by_source = {c.source.splitlines()[0]: outputs(c, text_of) for c in cells}
    assert "local folder" in by_source["%mount_drive"] and str(tmp_path / "drive") in by_source["%mount_drive"]
    assert "Host" in by_source["%device_info"] and "Frameworks" in by_source["%device_info"]
    assert "synthetic images of the same shape stand in" in by_source["import os, socket"]
    summary = by_source["%%timed_fit --compare --plot"]
    timed = next(c for c in cells if c.source.startswith("%%timed_fit"))
    # The answer first: the cell's first output starts with the headline, in text and in HTML. (Where
    # ipywidgets is installed, tqdm's --compare bar comes before it; it is closed when done, leave=False,
    # and a closed widget is not drawn.)
    shown = [o for o in timed.outputs if "application/vnd.jupyter.widget-view+json" not in o.get("data", {})]
    first = shown[0]
    assert first.output_type == "display_data", [o.output_type for o in timed.outputs]
    assert first["data"]["text/plain"].startswith("sequential on the CPU: ")
    html = first["data"]["text/html"]
    assert html.index('<p class="cm-answer">sequential on the CPU: ') < html.index("<table>")
    flat = " ".join(summary.split())
    assert re.search(r"--compare: sequential CPU:0: [\d.]+ ms/step median, [\d.]+ \([\d.]+-[\d.]+\) s/epoch projected", flat)
    for words in ("Verdicts", "s/epoch projected (training only)",
                  "Training", "ms/step median", "first step", "samples/s", "Per epoch", "overhead (s)",
                  "Hardware: host (CPU)", "utilisation mean / p95"):
        assert words in flat, words
    assert flat.count("No NVIDIA GPU here") == 1  # the missing GPU, explained once
    # --plot: the timeline inside the summary, right after the verdicts (not a separate output)
    assert html.index('<p class="cm-title">Verdicts</p>') < html.index('<img src="data:image/png;base64,') \
        < html.index("<caption>Training</caption>")
    # --compare's progress: tqdm's widget bar where ipywidgets is installed (Colab has 7.7.1); without
    # it, no bar at all (a text bar cannot be redrawn in a notebook: its lines would stay behind)
    widget = [o for o in timed.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    stderr = "".join(o.get("text", "") for o in timed.outputs if o.get("name") == "stderr")
    assert "--compare" not in stderr and "%|" not in stderr
    assert bool(widget) == (importlib.util.find_spec("ipywidgets") is not None)
    assert "Run history" in by_source["%fit_history"] and "compare" in by_source["%fit_history"]
    assert (tmp_path / "drive" / "MyDrive" / "colab_magic" / "runs.jsonl").exists()


def test_input_pipeline_verdict_then_fix(monkeypatch, tmp_path):
    cells, text_of = execute("input_pipeline", monkeypatch, tmp_path)
    timed = [outputs(c, text_of) for c in cells if c.source.startswith("%%timed_fit")]
    naive, fixed = timed
    assert "Highly input-bound" in naive and "num_parallel_calls=tf.data.AUTOTUNE" in naive
    assert re.search(r"Highly input-bound: \d+% \(\d+-\d+\) of each step waits for data", " ".join(naive.split()))
    assert "Highly input-bound" not in fixed
