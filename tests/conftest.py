import sys
import threading
import time

import pytest

from colab_magic import nvml
from tests.fake_pynvml import FakeNvml


@pytest.fixture(scope="session")
def shell():
    """One IPython shell for the session (IPython keeps one instance; its history thread lives on)."""
    from IPython.core.interactiveshell import InteractiveShell

    return InteractiveShell.instance()


@pytest.fixture(autouse=True)
def private_home(monkeypatch, tmp_path):
    """Each test gets its own home: the run history (~/.colab_magic) and drive (~/colab_drive) go there."""
    from colab_magic import drive

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    drive.forget()
    yield home
    drive.forget()


@pytest.fixture(autouse=True)
def leaves_nothing_running(shell):
    """Fail any test that leaves a thread running, NVML initialised or Keras' fit patched."""
    threads_before = set(threading.enumerate())
    fit_before = _keras_fit()
    yield
    deadline = time.monotonic() + 2.0
    leftover = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    while leftover and time.monotonic() < deadline:
        time.sleep(0.02)
        leftover = [t for t in leftover if t.is_alive()]
    problems = []
    if leftover:
        problems.append(f"threads left running: {[t.name for t in leftover]}")
    if nvml.active():
        nvml.stop_all()
        problems.append("NVML left initialised")
    fit_after = _keras_fit()
    if fit_after is not fit_before and fit_before is not None:
        problems.append("keras.Model.fit left patched")
    assert not problems, "; ".join(problems)


def _keras_fit():
    keras = sys.modules.get("keras")
    model = getattr(keras, "Model", None) if keras else None
    return model.__dict__.get("fit") if model is not None else None


@pytest.fixture
def fake_nvml(monkeypatch):
    """Install a fake pynvml: ``fake = fake_nvml([a100(), t4()])``."""

    def install(gpus, **kw):
        fake = FakeNvml(gpus, **kw)
        monkeypatch.setitem(sys.modules, "pynvml", fake.module)
        return fake

    return install


@pytest.fixture
def no_pynvml(monkeypatch):
    # None in sys.modules makes `import pynvml` raise ImportError, as if it were not installed.
    monkeypatch.setitem(sys.modules, "pynvml", None)


@pytest.fixture
def ip(shell):
    shell.run_line_magic("load_ext", "colab_magic")
    yield shell
    shell.run_line_magic("unload_ext", "colab_magic")
