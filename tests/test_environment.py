import pytest

from colab_magic.environment import detect


class ZMQInteractiveShell:
    pass


class TerminalInteractiveShell:
    pass


@pytest.mark.parametrize(
    "environ, modules, shell, kind, label",
    [
        ({"COLAB_GPU": "1"}, {}, ZMQInteractiveShell(), "colab", "Google Colab (GPU runtime)"),
        ({"COLAB_GPU": "0"}, {}, ZMQInteractiveShell(), "colab", "Google Colab (CPU runtime)"),
        ({"COLAB_GPU": "0", "TPU_ACCELERATOR_TYPE": "v2-8"}, {}, None, "colab", "Google Colab (TPU runtime)"),
        ({}, {"google.colab": object()}, None, "colab", "Google Colab (CPU runtime)"),
        ({"KAGGLE_KERNEL_RUN_TYPE": "Interactive"}, {}, ZMQInteractiveShell(), "kaggle", "Kaggle notebook"),
        ({"VSCODE_PID": "123"}, {}, ZMQInteractiveShell(), "vscode", "VS Code (notebook)"),
        ({"VSCODE_PID": "123"}, {}, TerminalInteractiveShell(), "vscode", "VS Code (terminal)"),
        ({}, {}, ZMQInteractiveShell(), "jupyter", "Jupyter kernel"),
        ({}, {}, TerminalInteractiveShell(), "ipython", "terminal IPython"),
        ({}, {}, None, "python", "plain Python"),
    ],
)
def test_detect(environ, modules, shell, kind, label):
    runtime = detect(shell, environ=environ, modules=modules)
    assert (runtime.kind, runtime.label) == (kind, label)
    assert runtime.is_colab == (kind == "colab")
