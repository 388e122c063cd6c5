import importlib.util
import os
import shutil
import sys
import threading
import time

import pytest

from colab_magic import nvml
from tests.fake_pynvml import FakeNvml


def pytest_sessionstart(session):
    """Under CI, a test dependency that .ci/setup installs must be there: a missing one would turn
    whole modules into skip lines and hide that nothing was tested."""
    if not os.environ.get("CI"):
        return
    required = ["keras", "tensorflow", "jax", "hypothesis", "matplotlib", "nbclient", "nbconvert", "nbformat", "ipykernel", "PIL", "ipywidgets"]
    if os.environ.get("COLAB_PARITY") != "1":  # Colab's torch is a CUDA build the parity run goes without
        required += ["torch", "transformers", "accelerate", "lightning"]
    missing = [name for name in required if importlib.util.find_spec(name) is None]
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        missing.append("chromium (the browser check)")
    if missing:
        pytest.exit(f"CI: test dependencies missing: {', '.join(missing)} (.ci/setup installs them)", returncode=1)


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
    # Text follows the terminal's width: the same width whether pytest runs in a terminal or not
    # (tests of narrower terminals set their own).
    monkeypatch.setenv("COLUMNS", "100")
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
    # keras.Model has no "fit" of its own (the backend's trainer defines it): anything left in the
    # class's own dict, or a changed one, is a patch that leaked, blamed on the test that leaked it.
    if _keras_fit() is not fit_before:
        problems.append("keras.Model.fit left patched")
    if _torch_hooks():
        problems.append(f"torch hooks or patches left: {_torch_hooks()}")
    watchers = [f for f in sys.meta_path if type(f).__name__ == "ImportWatcher"]
    if watchers:
        problems.append(f"import watchers left on sys.meta_path: {[w.name for w in watchers]}")
        for watcher in watchers:
            sys.meta_path.remove(watcher)
    assert not problems, "; ".join(problems)


def _torch_hooks() -> list[str]:
    """PyTorch's global optimizer and module hooks, and DataLoader iterators, as they must be outside a cell."""
    if "torch" not in sys.modules:
        return []
    import torch.optim.optimizer as optim
    from torch.nn.modules import module
    from torch.utils.data import dataloader

    left = [name for name, hooks in (("optimizer step pre", optim._global_optimizer_pre_hooks),
                                     ("optimizer step post", optim._global_optimizer_post_hooks),
                                     ("module forward pre", module._global_forward_pre_hooks),
                                     ("module forward", module._global_forward_hooks)) if hooks]
    base, multi = dataloader._BaseDataLoaderIter, dataloader._MultiProcessingDataLoaderIter
    left += ["DataLoader worker iterator __next__"] if "__next__" in vars(multi) else []
    theirs = [("DataLoader iterator __init__", base.__init__), ("DataLoader iterator __next__", base.__next__),
              ("DataLoader iterator _reset", base._reset), ("DataLoader._get_iterator", dataloader.DataLoader._get_iterator),
              ("DataLoader worker iterator _shutdown_workers", vars(multi)["_shutdown_workers"])]
    return left + [name for name, function in theirs if function.__module__ != "torch.utils.data.dataloader"]


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


@pytest.fixture
def kip(ip, request):
    """The loaded shell with the test module's ``SETUP`` run in it (its Keras imports, data and models)."""
    ip.run_cell(request.module.SETUP).raise_error()
    return ip
