"""Where the kernel runs: Colab, Kaggle, VS Code, Jupyter, terminal IPython or plain Python.

Only environment variables, ``sys.modules`` and the shell's class are read: nothing is imported,
so detection is cheap and safe to call from any magic. :func:`front_end` decides how output can be
shown (widgets, notebook, terminal).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Runtime:
    kind: str  # "colab" | "kaggle" | "vscode" | "jupyter" | "ipython" | "python"
    label: str  # what a person would call it
    accelerator: str | None = None  # Colab's runtime type: "GPU", "TPU" or "CPU"; None elsewhere

    @property
    def is_colab(self) -> bool:
        return self.kind == "colab"

    def to_dict(self) -> dict:
        return asdict(self)


def detect(shell: Any = None, environ: Mapping[str, str] | None = None,
           modules: Mapping[str, Any] | None = None) -> Runtime:
    environ = os.environ if environ is None else environ
    modules = sys.modules if modules is None else modules
    # Colab sets COLAB_GPU ("0" or "1") in every runtime, before google.colab is imported.
    if "google.colab" in modules or "COLAB_GPU" in environ or "COLAB_RELEASE_TAG" in environ:
        accel = _colab_accelerator(environ)
        return Runtime("colab", f"Google Colab ({accel} runtime)", accel)
    if "KAGGLE_KERNEL_RUN_TYPE" in environ or "KAGGLE_URL_BASE" in environ:
        return Runtime("kaggle", "Kaggle notebook")
    shell_class = type(shell).__name__ if shell is not None else ""
    if any(key in environ for key in ("VSCODE_PID", "VSCODE_CWD", "VSCODE_IPC_HOOK_CLI")):
        where = "notebook" if shell_class == "ZMQInteractiveShell" else "terminal"
        return Runtime("vscode", f"VS Code ({where})")
    if shell_class == "ZMQInteractiveShell":
        return Runtime("jupyter", "Jupyter kernel")
    if shell_class == "TerminalInteractiveShell":
        return Runtime("ipython", "terminal IPython")
    if shell is not None:
        return Runtime("ipython", f"IPython ({shell_class})")
    return Runtime("python", "plain Python")


def _colab_accelerator(environ: Mapping[str, str]) -> str:
    # COLAB_TPU_ADDR: the old TPU-node runtime; TPU_ACCELERATOR_TYPE / TPU_NAME: TPU-VM runtimes.
    if any(key in environ for key in ("COLAB_TPU_ADDR", "TPU_ACCELERATOR_TYPE", "TPU_NAME")):
        return "TPU"
    if environ.get("COLAB_GPU", "0") not in ("", "0"):
        return "GPU"
    return "CPU"


def tpu_attached(environ: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    if any(key in environ for key in ("COLAB_TPU_ADDR", "TPU_ACCELERATOR_TYPE", "TPU_NAME")):
        return True
    # TPU-VM hosts expose their chips as /dev/accel*.
    try:
        return any(name.startswith("accel") for name in os.listdir("/dev"))
    except OSError:
        return False


def front_end(shell: Any = None) -> str:
    """How output can be shown, decided in this one place: "widgets" (a Jupyter kernel with
    ipywidgets: tqdm's widget bar), "notebook" (a kernel without them: HTML and images, text bars)
    or "terminal" (text only)."""
    if type(shell).__name__ != "ZMQInteractiveShell":
        return "terminal"
    try:
        widgets = importlib.util.find_spec("ipywidgets") is not None
    except ValueError:  # a module set to None in sys.modules
        widgets = False
    return "widgets" if widgets else "notebook"
