import json
import os
import subprocess
import sys

import psutil
import pytest
from IPython.core.error import UsageError

from colab_magic import nvml
from colab_magic.devices import DeviceInfo
from tests.fake_pynvml import NVML_ERROR_DRIVER_NOT_LOADED, a100, t4


def _two_gpus(fake_nvml):
    return fake_nvml(
        [
            a100(processes=[(os.getpid(), 5 * 2**30), (1, 2**30)], clock_events=0x4 | 0x40),
            t4(),
        ]
    )


def test_two_gpus_side_by_side_in_text(ip, fake_nvml, capsys):
    fake = _two_gpus(fake_nvml)
    ip.run_line_magic("device_info", "")
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "GPU 0" in line and "GPU 1" in line)
    assert header.index("GPU 0") < header.index("GPU 1")
    assert "NVIDIA A100-SXM4-40GB" in out and "Tesla T4" in out
    assert "driver 550.54.15, CUDA (driver) 12.4" in out
    assert "2.0 GiB / 40.0 GiB (5%)" in out
    assert "250 W of 400 W" in out
    assert "sw_power_cap, hw_thermal (throttling)" in out
    # The T4 doesn't report MIG mode: shown as n/a, not an error.
    mig = next(line for line in out.splitlines() if line.strip().startswith("MIG"))
    assert "off" in mig and "n/a" in mig
    me = next(line for line in out.splitlines() if f" {os.getpid()} " in line)
    assert "this kernel" in me and "5.0 GiB" in me
    assert "Host" in out and "Frameworks" in out
    assert not nvml.active() and fake.shutdown_calls == 1


def test_json_output_is_complete(ip, fake_nvml, capsys):
    _two_gpus(fake_nvml)
    ip.run_line_magic("device_info", "--json")
    data = json.loads(capsys.readouterr().out)
    assert [g["name"] for g in data["gpus"]] == ["NVIDIA A100-SXM4-40GB", "Tesla T4"]
    assert data["gpus"][0]["power_limit_w"] == 400.0
    assert data["gpus"][1]["mig_enabled"] is None
    assert data["host"]["ram_total"] == psutil.virtual_memory().total
    assert data["host"]["logical_cores"] == psutil.cpu_count()
    assert data["gpu_error"] is None


def test_o_returns_object_and_q_is_silent(ip, fake_nvml, capsys):
    _two_gpus(fake_nvml)
    info = ip.run_line_magic("device_info", "-o -q")
    assert capsys.readouterr().out == ""
    assert isinstance(info, DeviceInfo)
    assert len(info.gpus) == 2 and info.gpus[0].processes[1].is_self
    assert json.loads(json.dumps(info.to_dict()))["gpus"][1]["name"] == "Tesla T4"
    assert ip.run_line_magic("device_info", "-q") is None
    assert capsys.readouterr().out == ""


def test_html_is_escaped_tables(ip, fake_nvml):
    fake_nvml([a100(name="<script>alert(1)</script> GPU")])
    info = ip.run_line_magic("device_info", "-o -q")
    page = info._repr_html_()
    # Runtime, GPUs, Host; Frameworks where one is imported (other tests in this process may have), and
    # then a Diagnosis (each sees no GPU beside the fake one)
    assert page.count("<table>") == 3 + bool(info.frameworks) + bool(info.diagnosis)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; GPU" in page
    assert "<caption>GPUs (NVML)</caption>" in page


def test_pretty_repr_is_the_text_report(ip, fake_nvml):
    from IPython.lib.pretty import pretty

    fake_nvml([t4()])
    info = ip.run_line_magic("device_info", "-o -q")
    assert pretty(info) == str(info)
    assert "Tesla T4" in pretty(info)


def test_missing_nvml_library_is_one_line_and_host_still_shown(ip, no_pynvml, capsys):
    ip.run_cell("%device_info")
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    gpu_line = [line for line in captured.out.splitlines() if "nvidia-ml-py is not installed" in line]
    assert gpu_line, captured.out
    assert "Host" in captured.out and "RAM used" in captured.out


def test_no_driver_gives_diagnosis(ip, fake_nvml, capsys):
    fake_nvml([], init_error=NVML_ERROR_DRIVER_NOT_LOADED)
    info = ip.run_line_magic("device_info", "-o -q")
    assert info.gpus == []
    assert "no NVIDIA driver" in info.gpu_error
    assert any("training runs on the CPU" in line for line in info.diagnosis)


def test_colab_cpu_runtime_diagnosis_says_change_runtime(ip, fake_nvml, monkeypatch):
    monkeypatch.setenv("COLAB_GPU", "0")
    fake_nvml([], init_error=NVML_ERROR_DRIVER_NOT_LOADED)
    info = ip.run_line_magic("device_info", "-o -q")
    assert info.runtime.kind == "colab" and info.runtime.accelerator == "CPU"
    assert any("Runtime > Change runtime type" in line for line in info.diagnosis)


def test_tpu_attached_is_said(ip, fake_nvml, monkeypatch):
    monkeypatch.setenv("COLAB_GPU", "0")
    monkeypatch.setenv("COLAB_TPU_ADDR", "10.0.0.2:8470")
    fake_nvml([], init_error=NVML_ERROR_DRIVER_NOT_LOADED)
    info = ip.run_line_magic("device_info", "-o -q")
    assert info.tpu_attached and info.runtime.accelerator == "TPU"
    assert any("TPU is attached" in line for line in info.diagnosis)
    assert not any("Change runtime type" in line for line in info.diagnosis)


@pytest.mark.keras
def test_gpu_present_but_tensorflow_sees_none(ip, fake_nvml):
    tf = pytest.importorskip("tensorflow")
    assert not tf.config.list_physical_devices("GPU")  # this machine has no CUDA: the real situation
    fake_nvml([t4()])
    info = ip.run_line_magic("device_info", "-o -q")
    names = [fw.name for fw in info.frameworks]
    assert "tensorflow" in names
    tf_info = info.frameworks[names.index("tensorflow")]
    assert tf_info.version == tf.__version__ and tf_info.gpu_count == 0 and "CPU:0" in tf_info.devices
    line = next(d for d in info.diagnosis if "TensorFlow sees no GPU" in d)
    assert 'pip install "tensorflow[and-cuda]"' in line
    jax_info = next((fw for fw in info.frameworks if fw.name == "jax"), None)
    if jax_info is not None and not jax_info.asked:  # TensorFlow imported it, nothing started it: no word on it
        assert not any("JAX" in d for d in info.diagnosis)


def test_bad_flag_is_a_one_line_usage_error(ip, capsys):
    with pytest.raises(UsageError, match="unrecognized arguments: --nope"):
        ip.run_line_magic("device_info", "--nope")
    ip.run_cell("%device_info --nope")
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "UsageError: unrecognized arguments: --nope" in text
    assert "Traceback" not in text


def _fresh_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


FRAMEWORKS = ("tensorflow", "keras", "jax", "torch")


def test_frameworks_only_asked_when_imported_or_requested():
    out = _fresh_python(
        "import sys, json\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'colab_magic')\n"
        "plain = ip.run_line_magic('device_info', '-o -q')\n"
        f"before = [m for m in {FRAMEWORKS!r} if m in sys.modules]\n"
        "asked = ip.run_line_magic('device_info', '--frameworks -o -q')\n"
        "jax = [f.to_dict() for f in asked.frameworks if f.name == 'jax']\n"
        "bridge = sys.modules.get('jax._src.xla_bridge')\n"
        "started = bridge.backends_are_initialized() if bridge else None\n"
        "print(json.dumps([before, [f.name for f in plain.frameworks], [f.name for f in asked.frameworks], jax,"
        " started]))\n"
    )
    before, plain, asked, jax, started = json.loads(out.splitlines()[-1])
    assert before == [] and plain == []
    from colab_magic.frameworks import JAX_NOT_STARTED, installed

    assert set(asked) - {"jax"} == set(installed(("tensorflow", "keras", "torch")))
    assert {"tensorflow", "keras"} <= set(asked)
    # TensorFlow imports JAX where both are installed: listed, not asked, and its backends not started
    # (on a GPU that would take GPU memory in a process that trains with TensorFlow or PyTorch)
    if jax:
        assert jax[0]["asked"] is False and jax[0]["devices"] == [] and jax[0]["notes"] == [JAX_NOT_STARTED]
        assert started is False


def test_frameworks_named_are_the_only_ones_imported():
    """A PyTorch notebook asks PyTorch alone: TensorFlow (seconds to import) is left unimported."""
    pytest.importorskip("torch")
    out = _fresh_python(
        "import sys, json\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'colab_magic')\n"
        "asked = ip.run_line_magic('device_info', '--frameworks PyTorch -o -q')\n"
        f"loaded = [m for m in {FRAMEWORKS!r} if m in sys.modules]\n"
        "torch_info = asked.frameworks[0]\n"
        "print(json.dumps([loaded, [f.name for f in asked.frameworks], torch_info.devices[0]]))\n"
    )
    loaded, asked, first_device = json.loads(out.splitlines()[-1])
    assert loaded == ["torch"] and asked == ["torch"]
    assert first_device == "cpu"


def test_frameworks_list_is_read_with_aliases_and_an_unknown_name_is_one_line(ip):
    from colab_magic.frameworks import requested

    assert requested("tf, pytorch,TORCH") == ["tensorflow", "torch"]
    assert requested("jax") == ["jax"]
    with pytest.raises(UsageError) as raised:
        ip.run_line_magic("device_info", "--frameworks mxnet")
    assert str(raised.value) == "--frameworks: unknown framework 'mxnet' (one of: tensorflow, keras, torch, jax)"


def test_with_none_imported_the_note_names_what_frameworks_would_import(ip, monkeypatch, capsys):
    """The note says what --frameworks would do here: the installed frameworks, by name."""
    from colab_magic import frameworks

    for names, said in (((), "none imported, and none of TensorFlow, Keras or PyTorch is installed"),
                        (("torch",), "none imported yet: --frameworks imports PyTorch to ask them"),
                        (("tensorflow", "keras", "torch"), "none imported yet: --frameworks imports TensorFlow, "
                         "Keras and PyTorch to ask them; --frameworks torch, PyTorch alone"),
                        (("tensorflow", "keras"), "none imported yet: --frameworks imports TensorFlow and Keras "
                         "to ask them")):
        monkeypatch.setattr(frameworks, "installed", lambda found=names: list(found))
        monkeypatch.setattr(frameworks, "survey", lambda to_import=(): [])
        ip.run_line_magic("device_info", "")
        text = " ".join(capsys.readouterr().out.split())
        assert said in text, (said, text)
