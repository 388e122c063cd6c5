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
    kip.run_cell(f"%%timed_fit -q --no-history --interval 0.05 -v R\n{CELL}").raise_error()
    r = kip.user_ns["R"]
    fig = r.plot()
    util, mem, cpu = fig.axes
    labels = [line.get_label() for line in util.get_lines() if not line.get_label().startswith("_")]
    # GPM lines only for the GPU that has GPM (the H100), none for the T4
    assert labels == ["GPU 0 kernel running", "GPU 0 SMs busy (GPM)", "GPU 0 tensor cores (GPM)", "GPU 1 kernel running"]
    assert len(mem.get_lines()) >= 2 and len(cpu.get_lines()) >= 2
    assert max(util.get_lines()[0].get_ydata()) == pytest.approx(87)  # the fake H100's utilisation
    assert set(util.get_lines()[1].get_ydata()) == {40.0}  # its GPM SM activity
    dashed = [line for line in cpu.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == len(r[0].timeline["epoch_ends"]) == 3
    assert len(cpu.patches) == 1  # the shaded first step
    assert "shaded, the first step" in fig.get_suptitle()


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
