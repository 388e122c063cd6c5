"""The answer first: the headline leads every form of the summary, the evidence follows in a fixed
order, a missing GPU is explained once in the user's terms, text follows the terminal's width, and
-o shows the summary once."""

import dataclasses
import io
import re

import pytest

from colab_magic import environment
from colab_magic.headline import no_gpu_advice
from colab_magic.keras_loop import batch_note_of, batch_size_of
from colab_magic.parts import Epoch
from colab_magic.tables import Table, to_html, to_text
from tests import builders
from tests.fake_pynvml import a100, t4

SETUP = '''
import numpy as np, keras
x = np.random.default_rng(0).random((256, 8), dtype=np.float32)
y = (x.sum(axis=1) > 4).astype("float32")
def make_model(name=None):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)], name=name)
    model.compile(optimizer="sgd", loss="mse")
    return model
'''
FIT = "make_model('net').fit(x, y, batch_size=32, epochs=2, verbose=0)"


def flat(text: str) -> str:
    return " ".join(text.split())


def epochs(*seconds):
    return [Epoch(epoch=n, time_s=s, train_s=s, val_s=0.0, steps=10, steps_s=s, step_median_s=s / 10, complete=True,
                  energy_j=[]) for n, s in enumerate(seconds, 1)]


# --- the headline ---------------------------------------------------------------------------------


def test_headline_says_where_how_fast_and_the_first_finding_with_its_fix():
    gpu = builders.gpu(util=2.0, name="NVIDIA A100")
    report = builders.report(device="CPU:0", gpus=[gpu], step=0.0125, epochs=epochs(1.5, 2.5), model="net")
    from colab_magic.verdicts import findings

    report = dataclasses.replace(report, findings=findings(report))
    assert report.findings[0].rule == "gpu_unused"
    assert report.headline == ("net on the CPU: 12.5 ms/step, 2.00 s/epoch. GPU present but unused: the model "
                               "trained on the CPU (fix: %device_info says why).")
    fine = builders.report(device="GPU:0", gpus=[builders.gpu(util=95.0)], step=0.25, epochs=epochs(30.0), model="big")
    assert fine.headline == "big on GPU 0 (A100): 250 ms/step, 30.0 s/epoch. No bottleneck found."
    stopped = builders.report(device="GPU:0", gpus=[builders.gpu()], step=None, complete=False,
                              error="KeyboardInterrupt", model="m")
    assert stopped.headline == "m on GPU 0 (A100): no step timed (stopped: KeyboardInterrupt)."


def test_headline_gives_the_speed_up_with_its_interval_either_way():
    from colab_magic.headline import fit_headline
    from colab_magic.run_summary import Comparison, RunSummary

    report = builders.report(device="CPU:0", step=0.01, epochs=epochs(1.0), model="net")
    faster = Comparison("net", 20, 100, 32, runs=[RunSummary("CPU:0", speedup=1.0),
                                                 RunSummary("GPU:0", speedup=8.3, speedup_interval=(7.9, 8.8))])
    assert "; GPU:0 8.3x faster than the CPU (7.9-8.8x)." in fit_headline(report, faster)
    slower = Comparison("net", 20, 100, 32, runs=[RunSummary("CPU:0", speedup=1.0),
                                                 RunSummary("GPU:0", speedup=0.5, speedup_interval=(0.4, 0.625))])
    # "2.0x slower": its interval in the same terms, 1/0.625 to 1/0.4
    assert "; GPU:0 2.0x slower than the CPU (1.6-2.5x)." in fit_headline(report, slower)
    bare = Comparison("net", 20, 100, 32, runs=[RunSummary("CPU:0", speedup=1.0), RunSummary("GPU:0", speedup=4.0)])
    assert "; GPU:0 4.0x faster than the CPU." in fit_headline(report, bare)


@pytest.mark.keras
def test_headline_leads_text_html_and_dict_one_line_per_fit(kip, capsys):
    kip.run_cell(f"%%timed_fit --no-history -v R\n{FIT}\nmake_model('other').fit(x, y, epochs=1, verbose=0)").raise_error()
    out = capsys.readouterr().out
    result = kip.user_ns["R"]
    lines = result.headline.splitlines()
    assert len(lines) == 2 and lines[0].startswith("Fit 1: net on the CPU: ") and lines[1].startswith("Fit 2: other on")
    assert result.to_dict()["headline"] == result.headline
    # first in the text (printed and str()), wrapped to the width but the same words
    brief = str(result)
    first_block = brief.split("\n\n")[0]
    assert flat(first_block).startswith(flat(result.headline))
    assert flat(out).startswith(flat(result.headline))
    text = str(dataclasses.replace(result, detailed=True))  # -d: every table, the headline first
    assert flat(text.split("\n\n")[0]) == flat(result.headline)
    # first in the HTML, before any table; the details collapsed, verdicts and training not
    page = result._repr_html_()
    body = page[page.index('<div class="cm-report">'):]
    assert body.index('<p class="cm-answer">Fit 1: net on the CPU') < body.index("<table>")
    assert body.index('<p class="cm-title">Fit 1: verdicts</p>') < body.index("<caption>Fit 1: training</caption>") \
        < body.index("<details>") < body.index("<caption>Fit 1: per epoch</caption>") \
        < body.index('<p class="cm-title">Fit 2: verdicts</p>')
    # the same order in text
    order = [text.index(t) for t in ("Fit 1: verdicts", "Fit 1: training", "Fit 1: per epoch",
                                     "Fit 1: hardware", "Fit 2: verdicts")]
    assert order == sorted(order)


# --- a missing GPU, once, in the user's terms --------------------------------------------------------


@pytest.mark.parametrize("runtime, accelerator, words", [
    ("colab", "CPU", "Runtime > Change runtime type"),
    ("colab", "TPU", "this Colab runtime has a TPU"),
    ("kaggle", None, "Settings > Accelerator"),
    ("jupyter", None, "`nvidia-smi` lists it"),
])
def test_no_gpu_advice_fits_the_place(runtime, accelerator, words):
    assert words in no_gpu_advice(runtime, accelerator)


@pytest.mark.keras
def test_missing_gpu_explained_once_per_cell_in_colab_terms(kip, no_pynvml, capsys, monkeypatch):
    monkeypatch.setenv("COLAB_GPU", "0")  # a Colab CPU runtime
    kip.run_cell(f"%%timed_fit --compare --steps 4 --no-history -v R\n{FIT}\n{FIT}").raise_error()
    out = flat(capsys.readouterr().out)
    assert out.count("Runtime > Change runtime type") == 1
    assert "NVML" not in out and "nvidia-ml-py" not in out  # the library's reason: in the data only
    result = kip.user_ns["R"]
    assert result.runtime == "colab" and "nvidia-ml-py" in result.reports[0].gpu_note
    assert "nvidia-ml-py" in str(result.to_dict()["reports"][0]["gpu_note"])
    assert "CPU vs GPU" not in out  # no one-column table: one line


@pytest.mark.keras
def test_colab_history_note_once_per_session(kip, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("COLAB_GPU", "0")
    kip.magics_manager.registry["ColabMagics"]._session.said.discard("colab history")  # a new session
    kip.run_cell(f"%%timed_fit\n{FIT}").raise_error()
    kip.run_cell(f"%%timed_fit\n{FIT}").raise_error()
    out = flat(capsys.readouterr().out)
    assert out.count("which goes when Colab recycles this runtime: run %mount_drive first") == 1


# --- width ------------------------------------------------------------------------------------------


@pytest.mark.keras
def test_text_follows_an_80_column_terminal(kip, fake_nvml, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("COLUMNS", "80")
    fake_nvml([a100(), t4(clock_events=0x20)])
    history = tmp_path / "runs.jsonl"
    kip.run_cell(f"%%timed_fit --compare --steps 4 --history {history}\n{FIT}").raise_error()
    kip.run_cell(f"%%timed_fit -d --compare --steps 4 --history {history}\n{FIT}").raise_error()
    kip.run_line_magic("device_info", "")
    kip.run_line_magic("fit_history", f"--history {history}")
    kip.run_line_magic("fit_history", f"--history {history} --compare")
    out = capsys.readouterr().out
    assert "Hardware" in out and "Run history" in out and "side by side" in out
    too_wide = [line for line in out.splitlines() if len(line) > 80]
    assert not too_wide, too_wide


def test_wide_terminals_stop_at_100_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    table = Table("t", [["name", "word " * 60]], notes=["note " * 60])
    assert max(len(line) for line in to_text([table]).splitlines()) <= 100


def test_numbers_right_aligned_with_one_unit_per_column():
    table = Table("Per epoch", [["1", "1.204", "n/a"], ["2", "12.5", "0.25"]], ["epoch", "time (s)", "ms/step"])
    lines = to_text([table], width=80).splitlines()
    assert lines[3] == "  1         1.204      n/a" and lines[4] == "  2          12.5     0.25"
    assert to_html([table]).count('class="cm-num"') == 4


def test_a_figure_with_its_interval_in_other_units():
    from colab_magic.units import fmt_interval

    assert fmt_interval(8.31, (7.94, 8.76), ".1f", "x") == "8.3x (7.9-8.8)"
    assert fmt_interval(0.12, (0.049, 0.191), ".1f", "%", 100) == "12.0% (4.9-19.1)"
    assert fmt_interval(0.01234, [0.0111, 0.0137], ".2f", scale=1000) == "12.34 (11.10-13.70)"
    assert fmt_interval(0.12, None, ".0f", "%", 100) == "12%"  # no interval: the figure alone, scaled too
    assert fmt_interval(None, (1, 2)) == "n/a"


def test_a_too_wide_table_turns_to_one_block_per_row_or_column():
    rows = [["r1", "a" * 30, "b" * 30, "c" * 30]]
    by_row = to_text([Table("T", rows, ["id", "x", "y", "z"])], width=60)
    assert by_row.splitlines()[1] == "  id: r1" and "x: " + "a" * 30 in flat(by_row)
    by_column = to_text([Table("T", [["metric", "1" * 30, "2" * 30]], ["", "GPU 0 (A100)", "GPU 1 (T4)"])], width=50)
    assert "\n  GPU 0 (A100)\n    metric: " in by_column


# --- shown once, progress, checks that pass --------------------------------------------------------


@pytest.mark.keras
def test_o_shows_the_summary_once(kip, capsys):
    kip.run_cell(f"%%timed_fit --no-history -o\n{FIT}").raise_error()
    out = capsys.readouterr().out
    assert out.count("net on the CPU: ") == 1  # the headline, in Out[n] only
    assert re.search(r"Out\[\d+\]: \n?net on the CPU", out)


def test_no_progress_bar_where_the_front_end_cannot_redraw_one(kip, monkeypatch):
    from argparse import Namespace

    from colab_magic import magics

    args = Namespace(quiet=False, live=False, output=False, json=False)
    monkeypatch.setattr(magics, "front_end", lambda shell=None: "notebook")
    monkeypatch.setattr(magics, "display", lambda *objs, **kw: None)  # the place kept for the answer
    assert magics._FrontEnd(kip, args).progress(10) is None
    quiet = Namespace(quiet=True, live=False, output=False, json=False)
    assert magics._FrontEnd(kip, quiet).progress(10) is None  # -q: no bar
    monkeypatch.setattr(magics, "front_end", lambda shell=None: "terminal")
    bar = magics._FrontEnd(kip, args).progress(10)
    try:
        assert bar.leave is False  # cleared when done
    finally:
        bar.close()


@pytest.mark.parametrize("done", [0, 2, 6])
def test_the_notebook_progress_bar_is_never_left_behind_red(kip, monkeypatch, done):
    """A --whatif that leaves trials out (its budget) closed tqdm's widget at n < total: the bar turned
    red (bar_style 'danger') and stayed in the saved notebook. Now it ends complete and is removed.
    Checked on the ipywidgets each run installs: 7.7.1 (Colab's, the parity run) and 8.x (Kaggle's)."""
    from argparse import Namespace

    import ipywidgets

    from colab_magic import magics

    monkeypatch.setattr(magics, "front_end", lambda shell=None: "widgets")
    handles = []

    class Handle:  # IPython's DisplayHandle, as display(..., display_id=True) returns it
        def __init__(self, obj):
            self.shown = [obj]

        def update(self, obj):
            self.shown.append(obj)

    def display(obj, display_id=False, raw=False):
        handles.append(Handle(obj))
        return handles[-1]

    monkeypatch.setattr(magics, "display", display)
    bar = magics._FrontEnd(kip, Namespace(quiet=False, live=False, output=True, json=False)).progress(6)
    (handle,) = handles  # -o: no place kept for the answer; the bar in a display of its own
    # the widget's view under our display id (no text fallback left to show "trials: 0%")
    view = handle.shown[0]["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == bar.container.model_id and handle.shown[0]["text/plain"] == ""
    bar.update(done)
    bar.close()
    progress = bar.container.children[1]
    assert isinstance(progress, ipywidgets.FloatProgress)
    assert progress.bar_style != "danger", (ipywidgets.__version__, progress.bar_style)
    assert bar.n == bar.total == done
    # then its display is replaced by nothing: no widget, and no text of one, in the saved notebook
    blank = handle.shown[-1]
    assert len(handle.shown) == 2 and repr(blank) == "" and blank._repr_html_() == ""
    bar.close()  # twice (tqdm's own __del__ does): nothing more
    assert len(handle.shown) == 2


@pytest.mark.keras
def test_compare_progress_is_labelled_with_what_is_timed(kip, capsys):
    kip.run_cell(f"%%timed_fit --compare --steps 4 --no-history\n{FIT}").raise_error()
    assert "--compare: net on CPU:0" in capsys.readouterr().err


def test_an_input_check_that_passes_says_so():
    from colab_magic.brief_view import _fit_lines
    from colab_magic.fit_view import _fit_tables
    from colab_magic.verdicts import findings

    def text(share, interval=None):
        report = builders.report(device="GPU:0", gpus=[builders.gpu()], step=0.030,
                                 input_wait=builders.input_wait(share, interval=interval))
        report = dataclasses.replace(report, findings=findings(report))
        return flat(to_text(_fit_tables(report, 1, None)))

    assert "Input check passed: 4.7% of each step waits for data: not input-bound" in text(0.047)
    moderate = text(0.05)  # the verdicts' threshold: input-bound, so not "passed"
    assert "Moderately input-bound: 5% of each step waits for data" in moderate and "Input check passed" not in moderate
    # a wait the noise could explain (the interval's low end under the threshold) passes, and says so
    assert ("Input check passed: 12.0% (4.9-19.1) of each step waits for data: not input-bound beyond the noise "
            "of the timing (20 steps of a copy of the model, 600.0 ms).") in text(0.12, (0.049, 0.191))
    # a PyTorch loop's wait is measured in its own steps: no check ran, and none is named
    report = builders.report(device="GPU:0", gpus=[builders.gpu()], step=0.030, loop="torch",
                             input_wait=builders.loader_wait(0.031, 2))
    report = dataclasses.replace(report, findings=findings(report))
    detail = flat(to_text(_fit_tables(report, 1, None)))
    assert "Not input-bound: 3.1% of each step waits in the DataLoader (20 steps)." in detail
    assert "Input check" not in detail
    brief = _fit_lines(report, "", None, None)  # the default text
    assert "Not input-bound: 3.1% of each step waits in the DataLoader." in brief
    assert not any("Input check" in line for line in brief)


def test_batch_size_of_a_tf_data_input():
    tf = pytest.importorskip("tensorflow")
    data = tf.data.Dataset.from_tensor_slices((tf.zeros((100, 4)), tf.zeros((100,))))
    assert batch_size_of(data.batch(32), None) == 32  # the batch dimension is None in its spec
    assert batch_size_of(data.batch(32).map(lambda a, b: (a * 2, b)).prefetch(2), None) == 32
    assert batch_size_of(data.batch(32, drop_remainder=True), None) == 32
    assert batch_note_of(data.batch(32)) is None
    assert batch_size_of(data.batch(32).unbatch().batch(8), None) == 8  # the last .batch() counts
    batches = tf.data.Dataset.from_generator(lambda: iter([]), output_signature=tf.TensorSpec((None, 4)))
    assert batch_size_of(batches, None) is None
    assert batch_note_of(batches) == "unknown: no .batch() found in the dataset"
    assert batch_note_of(iter([1, 2])) == "unknown: list_iterator inputs do not say it"


def test_help_explains_sections_verdicts_and_compare(kip):
    doc = kip.find_cell_magic("timed_fit").__doc__
    for words in ("headline", "verdicts", "input-bound", "trains copies of your model", "%%timed_fit --compare",
                  "-o"):
        assert words in doc, words
    for magic, words in (("device_info", "Diagnosis"), ("mount_drive", "Examples"), ("fit_history", "Columns")):
        assert words in kip.find_line_magic(magic).__doc__


def test_dark_theme_html_takes_the_notebooks_colours():
    page = to_html([Table("t", [["a", "1"]])])
    assert "color:inherit" in page and "#fff" not in page and "background:white" not in page
    assert io is not None and environment is not None


def test_o_on_the_line_magics_shows_once_too(ip, capsys, tmp_path):
    ip.run_cell("%device_info -o").raise_error()
    out = capsys.readouterr().out
    assert out.count("Runtime") == 1 and re.search(r"Out\[\d+\]: \n?Runtime", out)
    ip.run_cell(f"%fit_history -o --history {tmp_path / 'none.jsonl'}").raise_error()
    out = capsys.readouterr().out
    assert out.count("No runs recorded yet.") == 1 and "Out[" in out


def test_a_long_last_cell_wraps_and_the_rule_under_the_header_stays_within_the_width():
    table = Table("Hardware", [["memory", "word " * 30]], ["", "Host (CPU)"])
    lines = to_text([table], width=80).splitlines()
    assert max(map(len, lines)) <= 80 and lines[2].strip().startswith("-") and len(lines) > 4
