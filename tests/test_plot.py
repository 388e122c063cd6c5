import sys

import pytest
from IPython.core.error import UsageError

from tests.fake_pynvml import h100, t4

pytest.importorskip("keras")
pytest.importorskip("matplotlib")
pytestmark = pytest.mark.keras

CELL = "m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])\nm.compile('sgd', 'mse')\n_h = m.fit(x, y, epochs=3, verbose=0)"


@pytest.fixture
def kip(ip):
    ip.run_cell("import numpy as np, keras, time\nx = np.ones((256, 4), 'float32'); y = np.ones((256, 1), 'float32')").raise_error()
    return ip


def test_figure_has_gpu_memory_and_cpu_panels_with_epochs_and_compile_marked(kip, fake_nvml):
    fake_nvml([h100(), t4()])
    # the fake driver keeps a utilisation sample every 1/6 s: the fit must span some (a tiny fit on a
    # fast moment of this machine once ended before the first, and the utilisation line was missing)
    slow = "\n_h = m.fit(x, y, epochs=3, verbose=0, callbacks=[keras.callbacks.LambdaCallback(" \
           "on_epoch_end=lambda e, l: time.sleep(0.15))])"
    kip.run_cell(f"%%timed_fit -q --no-history --interval 0.05 -v R\n{CELL.rsplit(chr(10), 1)[0]}{slow}").raise_error()
    r = kip.user_ns["R"]
    fig = r.plot()
    util, mem, cpu = fig.axes[:3]
    labels = [line.get_label() for line in util.get_lines() if not line.get_label().startswith("_")]
    # GPM lines only for the GPU that has GPM (the H100), none for the T4
    h, t = "GPU 0 (NVIDIA H100 80GB HBM3)", "GPU 1 (Tesla T4)"
    assert labels == [f"{h}: a kernel running", f"{h}: SMs busy (GPM)", f"{h}: tensor cores busy (GPM)",
                      f"{t}: a kernel running"]
    assert max(util.get_lines()[0].get_ydata()) == pytest.approx(87)  # the fake H100's utilisation
    assert set(util.get_lines()[1].get_ydata()) == {40.0}  # its GPM SM activity
    # percent axes 0-100 whatever the readings; memory from 0 to the larger GPU's total, drawn
    assert util.get_ylim() == (0, 105) and cpu.get_ylim() == (0, 105)
    assert mem.get_ylim()[0] == 0 and mem.get_ylim()[1] == pytest.approx(80 * 1.02)
    assert len(mem.get_lines()) >= 2 and len(cpu.get_lines()) >= 2
    dashed = [line for line in cpu.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == len(r[0].timeline["epoch_ends"]) == 3
    assert len(cpu.patches) == 1  # the shaded first step
    assert fig.get_suptitle() == f"{r[0].model} on CPU:0"
    # the legend sits outside the axes, clear of the lines
    assert util.get_legend()._loc == 2 and util.get_legend().get_bbox_to_anchor().x0 > util.bbox.x1 - 1


def test_cpu_only_fit_gets_the_cpu_panel_alone_in_one_unit(kip, no_pynvml):
    kip.run_cell(f"%%timed_fit -q --no-history --interval 0.05 -v R\n{CELL}").raise_error()
    r = kip.user_ns["R"][0]
    fig = r.plot()
    (cpu,) = fig.axes[:1]
    assert len([ax for ax in fig.axes if ax.get_ylabel()]) == 1  # no empty GPU panels
    assert cpu.get_ylabel() == f"CPU, % of {r.host.logical_cores} cores" and cpu.get_ylim() == (0, 105)
    system, process = [line for line in cpu.get_lines() if not line.get_label().startswith("_")]
    cores = r.host.logical_cores
    raw = [v for _, v in r.timeline["host"]["cpu_process"]]
    assert list(process.get_ydata()) == pytest.approx([v / cores for v in raw])  # % of all cores, as the other


def test_idle_gpu_keeps_full_scale_axes(kip, fake_nvml):
    fake_nvml([t4(util_gpu=0)])  # idle: 0% and 300 MiB of 15 GiB
    kip.run_cell(f"%%timed_fit -q --no-history --interval 0.05 -v R\n{CELL}").raise_error()
    util, mem = kip.user_ns["R"].plot().axes[:2]
    assert util.get_ylim() == (0, 105)
    assert mem.get_ylim() == pytest.approx((0, 15 * 1.02))


def test_plot_file_saves_a_png_per_fit(kip, tmp_path, capsys):
    target = tmp_path / "timeline.png"
    kip.run_cell(f"%%timed_fit --no-history --plot-file {target}\n{CELL}\n{CELL}").raise_error()
    for n in (1, 2):
        data = (tmp_path / f"timeline_{n}.png").read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000
    assert f"saved to {tmp_path / 'timeline_1.png'}" in capsys.readouterr().out


def test_plot_in_a_terminal_points_to_plot_file(kip, capsys):
    kip.run_cell(f"%%timed_fit --no-history -q --plot\n{CELL}").raise_error()
    assert capsys.readouterr().out == ""
    kip.run_cell(f"%%timed_fit --no-history --plot\n{CELL}").raise_error()
    assert "in a terminal use --plot-file PATH" in capsys.readouterr().out


def test_missing_matplotlib_gives_the_install_hint(kip, monkeypatch):
    kip.run_cell(f"%%timed_fit -q --no-history -v R\n{CELL}").raise_error()
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(UsageError, match="plots need matplotlib: pip install matplotlib"):
        kip.run_cell_magic("timed_fit", "--plot", "pass")
    with pytest.raises(ImportError, match="pip install matplotlib"):
        kip.user_ns["R"].plot()


def test_several_fits_never_replace_a_file_the_user_did_not_name(kip, tmp_path, capsys):
    """--plot-file out.png with two fits used to write out_1.png over the user's own file."""
    target = tmp_path / "timeline.png"
    mine = tmp_path / "timeline_1.png"
    mine.write_bytes(b"the user's own file")
    kip.run_cell(f"%%timed_fit --no-history --plot-file {target}\n{CELL}\n{CELL}").raise_error()
    assert mine.read_bytes() == b"the user's own file"
    first, second = tmp_path / "timeline_1-2.png", tmp_path / "timeline_2.png"
    assert first.read_bytes().startswith(b"\x89PNG") and second.read_bytes().startswith(b"\x89PNG")
    out = capsys.readouterr().out
    assert f"Timeline of fit 1 saved to {first}" in out and f"Timeline of fit 2 saved to {second}" in out


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="no named pipes on this system")
def test_a_plot_file_that_is_not_a_regular_file_is_refused_before_the_cell_runs(kip, tmp_path):
    """A FIFO used to block the cell inside savefig until Ctrl-C."""
    import os

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path):  # a pipe, a folder
        kip.user_ns.pop("ran", None)
        with pytest.raises(UsageError) as err:
            kip.run_cell_magic("timed_fit", f"--no-history --plot-file {path}", "ran = True")
        assert str(err.value) == f"--plot-file: {path} is there and is not a regular file; give a new path or a file"
        assert "ran" not in kip.user_ns
