"""The example notebooks, executed in a real Jupyter kernel (ipykernel) through nbclient."""

import importlib.util
import re
from pathlib import Path

import psutil
import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytestmark = [pytest.mark.keras, pytest.mark.solo]  # solo: judges measured shares of time (pyproject)

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
    # The answer first: the cell's first output is the display kept for it when the cell started, filled
    # with the summary at the end, in text and in HTML; Keras' own log (verbose=2) below it
    first = timed.outputs[0]
    assert first.output_type == "display_data", [o.output_type for o in timed.outputs]
    assert first["data"]["text/plain"].startswith("sequential on the CPU: ")
    html = first["data"]["text/html"]
    assert html.index('<p class="cm-answer">sequential on the CPU: ') < html.index("<table>")
    log = "".join(o.get("text", "") for o in timed.outputs if o.get("name") == "stdout")
    assert "Epoch 1/2" in log and "Epoch 2/2" in log and "loss" in log
    flat = " ".join(summary.split())
    # the short text: the headline, the figures, one line for --compare, the history; at most 20 lines
    text = first["data"]["text/plain"]
    assert len(text.splitlines()) <= 20, text
    assert re.search(r"--compare \(training only, projected\): CPU:0 [\d.]+ ms/step, [\d.]+ \([\d.]+-[\d.]+\) "
                     r"s/epoch\. No GPU here: run this cell in a GPU runtime", flat)
    assert flat.count("No NVIDIA GPU here") == 1  # the missing GPU, explained once
    # the details in the HTML, folded: per epoch (columns that add up), hardware
    for words in ("<caption>Training</caption>", "ms/step", "first step", "samples/s", "<details>",
                  "<caption>Per epoch</caption>", "<th>before</th>", "<caption>Hardware: host (CPU)</caption>",
                  "utilisation mean / p95"):
        assert words in html, words
    # --plot: the timeline inside the summary, right after the verdicts (not a separate output)
    assert html.index('<p class="cm-title">Verdicts</p>') < html.index('<img src="data:image/png;base64,') \
        < html.index("<caption>Training</caption>")
    # --compare's progress: tqdm's widget bar where ipywidgets is installed (Colab has 7.7.1), replaced by
    # nothing when done; without it, no bar at all (a text bar's lines would stay behind). Nothing is left.
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in timed.outputs)
    stderr = "".join(o.get("text", "") for o in timed.outputs if o.get("name") == "stderr")
    assert "--compare" not in stderr and "%|" not in stderr and "trials" not in flat
    if importlib.util.find_spec("ipywidgets") is not None:  # the bar was there, in a display now blank
        assert any(o.get("data", {}).get("text/plain") == "" for o in timed.outputs[1:])
    assert "Run history" in by_source["%fit_history"] and "compare" in by_source["%fit_history"]
    assert (tmp_path / "drive" / "MyDrive" / "colab_magic" / "runs.jsonl").exists()


def test_input_pipeline_verdict_then_fix(monkeypatch, tmp_path):
    cells, text_of = execute("input_pipeline", monkeypatch, tmp_path)
    timed = [outputs(c, text_of) for c in cells if c.source.startswith("%%timed_fit")]
    naive, fixed = timed
    assert "Highly input-bound" in naive and "num_parallel_calls=tf.data.AUTOTUNE" in naive
    assert re.search(r"Highly input-bound: \d+% \(\d+-\d+\) of each step waits for data", " ".join(naive.split()))
    assert "Highly input-bound" not in fixed


def test_pytorch_quickstart(monkeypatch, tmp_path):
    """A PyTorch loop in a real kernel: the answer first, the DataLoader wait measured in the user's own
    steps, the fix (worker processes) measured by the same cell run again, and both runs in the history."""
    pytest.importorskip("torch")
    monkeypatch.setenv("HOME", str(tmp_path))  # the history, in a home of its own
    cells, text_of = execute("pytorch_quickstart", monkeypatch, tmp_path, PYTORCH_QUICKSTART_SAMPLES="1024")
    assert not any(o.output_type == "error" for c in cells for o in c.get("outputs", []))
    by_source = {c.source.splitlines()[0]: outputs(c, text_of) for c in cells}
    assert "synthetic CIFAR-sized images (no dataset is downloaded)" in by_source["import os, time"]
    first, fixed = (c for c in cells if c.source.startswith("%%timed_fit"))
    answer = first.outputs[0]
    assert answer.output_type == "display_data" and answer["data"]["text/plain"].startswith("Net on the CPU: ")
    text = " ".join(answer["data"]["text/plain"].split())
    # 32 images of 0.3 ms each per batch, made between the steps: most of each step waits for them (on a
    # loaded machine the model's share of a step grows, and the wait may read only "moderately")
    assert re.search(r"(Highly|Moderately) input-bound: \d+% of each step waits for data \(fix: DataLoader num_workers="
                     + str(psutil.cpu_count(logical=True)), text)
    assert "2 epochs, batch 32" in text and "DataLoader: batch_size 32, num_workers 0, pin_memory False." in text
    # the details say what the first step is for a PyTorch loop (no compiling, no misleading duration)
    html = answer["data"]["text/html"]
    assert "left out of ms/step (its warm-up)" in html and "tracing and compiling" not in html
    fixed_text = " ".join(outputs(fixed, text_of).split())
    assert "DataLoader: batch_size 32, num_workers 2, pin_memory False, persistent_workers True." in fixed_text
    if "input-bound" in fixed_text and psutil.cpu_count(logical=True) <= 2:  # workers on every core already
        assert "(fix: a cheaper Dataset __getitem__)" in fixed_text, fixed_text
    line = by_source["before, after = first.reports[0], fixed.reports[0]"]
    waits = re.search(r"Waiting for data: (\d+)% of a step with num_workers=0, (\d+)% with 2; ([\d.]+) ms -> ([\d.]+) ms", line)
    # the workers make batches while the model trains: the step is shorter (its wait share can move either
    # way on a busy machine, where the model's own share of the step grows)
    assert waits and float(waits[4]) < float(waits[3]), line
    # PyTorch asked, and only PyTorch: a PyTorch notebook does not import TensorFlow to be told
    device = " ".join(by_source["%device_info --frameworks torch"].split())
    assert re.search(r"torch \d+\.\d+\S* cpu", device) and "tensorflow" not in device, device
    history = " ".join(by_source["%fit_history -n 2"].split())
    assert history.count("model: Net (62,006 params)") == 2
