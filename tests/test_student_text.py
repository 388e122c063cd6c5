"""What a student reads: a short default text (at 80 columns: 20 lines for a plain fit, 30 with --compare
--whatif), every table with -d, each thing said once per session, numbers that add up in one unit, the
answer after the framework's last line in a terminal, and a plot readable in a dark theme."""

import dataclasses
import io
import json

import pytest

from colab_magic import history
from colab_magic.units import flop_count, fmt_interval, seconds_interval
from tests import builders

SETUP = '''
import numpy as np, keras
x = np.random.default_rng(0).random((1024, 8), dtype=np.float32)
y = (x.sum(axis=1) > 4).astype("float32")
def make_model(name="net"):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)], name=name)
    model.compile(optimizer="sgd", loss="mse")
    return model
'''
FIT = "h = make_model().fit(x, y, batch_size=32, epochs=2, verbose=0)"


def lines_of(text: str) -> list[str]:
    return [line for line in text.strip("\n").splitlines()]


@pytest.mark.keras
def test_the_default_text_is_short_and_d_shows_every_table(kip, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    kip.run_cell(f"%%timed_fit --no-history\n{FIT}").raise_error()
    plain = lines_of(capsys.readouterr().out)
    assert len(plain) <= 20 and max(map(len, plain)) <= 80, plain
    assert plain[0].startswith("net on the CPU: ") and "Per epoch, hardware and sampler: %%timed_fit -d" in plain[-1]
    assert not any(word in " ".join(plain) for word in ("p10", "p90", "RSS", "MFU", "MFLOP", "tracing"))
    kip.run_cell(f"%%timed_fit --no-history --compare --whatif --budget 100\n{FIT}").raise_error()
    trials = lines_of(capsys.readouterr().out)
    assert len(trials) <= 30 and max(map(len, trials)) <= 80, trials
    flat = " ".join(" ".join(trials).split())
    assert flat.count("--compare (training only, projected): CPU:0") == 1 and flat.count("--whatif on CPU:0") == 1
    assert flat.count("In brackets: 95% intervals") <= 1  # the interval's meaning once per cell
    kip.run_cell(f"%%timed_fit -d --no-history\n{FIT}").raise_error()
    detailed = capsys.readouterr().out
    for title in ("Verdicts", "Training", "Per epoch", "Hardware: host (CPU)"):
        assert f"\n{title}\n" in detailed, title


@pytest.mark.keras
def test_said_once_per_session_then_cpu_only_in_the_headline(kip, capsys, tmp_path):
    path = tmp_path / "runs.jsonl"
    kip.run_cell(f"%%timed_fit --history {path}\n{FIT}").raise_error()
    first = " ".join(capsys.readouterr().out.split())
    kip.run_cell(f"%%timed_fit --history {path}\n{FIT}").raise_error()
    second = " ".join(capsys.readouterr().out.split())
    assert "No NVIDIA GPU here" in first and "No NVIDIA GPU here" not in second
    assert f"Recorded in {path}" in first and f"Recorded in {path}" not in second
    assert second.startswith("net on the CPU (CPU only: no GPU here): ")
    other = tmp_path / "other.jsonl"  # a new place is said again
    kip.run_cell(f"%%timed_fit --history {other}\n{FIT}").raise_error()
    assert f"Recorded in {other}" in " ".join(capsys.readouterr().out.split())


@pytest.mark.keras
def test_in_a_terminal_the_answer_follows_the_frameworks_last_line(kip, capsys):
    kip.run_cell("%%timed_fit --no-history\nmake_model().fit(x, y, batch_size=32, epochs=2, verbose=2)").raise_error()
    out = capsys.readouterr().out
    log_end = out.rindex("Epoch 2/2")
    answer = out.index("net on the CPU: ")
    assert log_end < answer and "\n\n" in out[log_end:answer]  # a blank line between them


def test_fit_history_compare_never_sets_a_cpu_run_beside_itself(tmp_path):
    path = tmp_path / "runs.jsonl"
    report = builders.report(device="CPU:0", step=0.01, model="net")
    from colab_magic.run_summary import RunSummary

    env = {"runtime": "Jupyter kernel", "host": "laptop"}
    for kind in ("fit", "compare"):
        history.append(RunSummary.from_report(report, kind=kind).to_record(env), path)
    records, _ = history.read(path)
    chosen, note = history.select(records, None)
    assert chosen == [] and note.startswith("No GPU run of net in the history yet")
    assert "run the same cell in a gpu runtime" in note.lower() and "%fit_history --compare" in note
    view = history.HistoryView(str(path), chosen, compare=True, note=note)
    assert "1.0x" not in str(view) and "No GPU run of net" in str(view)


def test_one_unit_per_quantity_and_no_question_marks():
    assert flop_count(5.16e5) == "516 kFLOP" and flop_count(1.03e6) == "1.03 MFLOP"  # not "5.16e+05 FLOP"
    # an interval shows enough digits for its ends to differ from the figure ("0.6 (0.5-0.6)" said nothing)
    assert fmt_interval(0.6, (0.52, 0.64)) == "0.60 (0.52-0.64)"
    assert fmt_interval(8.31, (7.94, 8.76), ".1f", "x") == "8.3x (7.9-8.8)"
    assert seconds_interval(7.31, (5.3, 9.4)) == "7.31 (5.30-9.40)" and seconds_interval(12.0, (11.0, 13.5)) == "12.0 (11.0-13.5)"
    from colab_magic.fit_view import _hardware

    host = dataclasses.replace(builders.host(), cpu_system_mean=50.0, cpu_system_p95=60.0, cpu_process_mean=150.0,
                               cpu_process_p95=180.0, logical_cores=4, ram_used_peak=2 * 2**30, own_peak=2**30,
                               rss_peak=1.5 * 2**30, ram_total=16 * 2**30)
    table = _hardware(builders.report(device="CPU:0", host=host), "Hardware")
    rows = {row[0]: row[1] for row in table.rows}
    # the process in % of all cores, as the machine, the plot and the live line show it (150% of one core: 38% of 4)
    assert rows["utilisation mean / p95"] == "50% / 60% of 4 cores"
    assert rows["this process"] == "38% / 45% of 4 cores"
    assert rows["memory peak / total"].startswith("2.0 GiB / 16.0 GiB; this process 1.0 GiB of it")


def test_the_timeline_reads_in_a_dark_theme():
    pytest.importorskip("matplotlib")
    from PIL import Image

    from colab_magic import plot

    report = builders.report(device="CPU:0", step=0.01, timeline={"host": {"cpu_system": [[0, 10.0], [1, 80.0]],
                                                                          "cpu_process": [[0, 50.0], [1, 150.0]]},
                                                                 "epoch_ends": [1.0]})
    image = Image.open(io.BytesIO(plot.png(plot.figure(report)))).convert("RGBA")
    corner = image.getpixel((2, 2))
    assert corner[3] == 0  # a transparent background: the notebook's own shows through (no white box)
    opaque = [p for p in image.getdata() if p[3] > 200]
    # what is drawn is neither white nor black (it would vanish on one theme or the other)
    assert opaque and not any(p[:3] in ((255, 255, 255), (0, 0, 0)) for p in opaque)
    json.dumps(report.to_dict())
