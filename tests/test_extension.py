import subprocess
import sys

import pytest
from IPython.core.error import UsageError


def test_unload_removes_magics_and_reload_brings_them_back(ip):
    assert "device_info" in ip.magics_manager.magics["line"]
    ip.run_line_magic("unload_ext", "colab_magic")
    assert "device_info" not in ip.magics_manager.magics["line"]
    with pytest.raises(UsageError, match="not found"):
        ip.run_line_magic("device_info", "-q")
    ip.run_line_magic("load_ext", "colab_magic")
    ip.run_line_magic("reload_ext", "colab_magic")
    assert ip.run_line_magic("device_info", "-q -o") is not None


def test_unload_keeps_other_magics(ip):
    ip.run_line_magic("unload_ext", "colab_magic")
    assert "timeit" in ip.magics_manager.magics["line"]
    assert "time" in ip.magics_manager.magics["cell"]
    ip.run_line_magic("load_ext", "colab_magic")


def test_loading_imports_no_framework():
    code = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'colab_magic')\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'jax', 'torch', 'pynvml') if m in sys.modules))\n"
        "print('device_info' in ip.magics_manager.magics['line'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["[]", "True"]
