import os

from colab_magic import nvml
from tests.fake_pynvml import NVML_ERROR_DRIVER_NOT_LOADED, NVML_ERROR_UNKNOWN, a100, t4


def test_static_and_live_readings_convert_units(fake_nvml):
    fake_nvml([a100(), t4()])
    with nvml.session() as ok:
        assert ok
        assert nvml.device_count() == 2
        assert nvml.driver_version() == "550.54.15"
        assert nvml.cuda_driver_version() == "12.4"
        static = nvml.static_info(1)
        assert static["name"] == "Tesla T4"
        assert static["compute_capability"] == "7.5"
        assert static["power_limit_w"] == 70.0
        now = nvml.reading(0)
        assert now["power_w"] == 250.0
        assert now["memory_used"] == 2 * 2**30
        assert now["util_gpu"] == 87
        assert now["sm_clock_mhz"] == 1410 and now["mem_clock_mhz"] == 1215
        assert now["clock_events"] == []
        assert nvml.energy_mj(0) >= 1_000_000
        quick = nvml.reading(0, full=False)  # the sampler's every-tick reading: the cheap calls only
        assert quick["power_w"] == 250.0 and quick["memory_used"] == 2 * 2**30
        assert quick["temperature_c"] is None and quick["clock_events"] is None


def test_unsupported_metric_reads_none_not_error(fake_nvml):
    fake_nvml([t4(unsupported={"nvmlDeviceGetPowerUsage", "nvmlDeviceGetMigMode", "nvmlDeviceGetSamples"})])
    with nvml.session():
        assert nvml.reading(0)["power_w"] is None
        assert nvml.static_info(0)["mig_enabled"] is None
        assert nvml.utilization_samples(0, 0) is None
        assert nvml.reading(0)["temperature_c"] == 44


def test_lost_gpu_reads_as_gap(fake_nvml):
    fake = fake_nvml([a100()])
    with nvml.session():
        assert nvml.reading(0) is not None
        fake.gpus[0].lost = True
        assert nvml.reading(0) is None
        assert nvml.processes(0) is None


def test_missing_library_gives_reason(no_pynvml):
    assert nvml.start() is False
    assert "nvidia-ml-py is not installed" in nvml.reason()
    assert not nvml.active()


def test_driver_not_loaded_gives_reason(fake_nvml):
    fake_nvml([a100()], init_error=NVML_ERROR_DRIVER_NOT_LOADED)
    assert nvml.start() is False
    assert "no NVIDIA driver" in nvml.reason()


def test_other_init_error_is_reported(fake_nvml):
    fake_nvml([a100()], init_error=NVML_ERROR_UNKNOWN)
    with nvml.session() as ok:
        assert not ok
    assert nvml.reason() == "NVML failed to initialise: Unknown Error"


def test_reference_counting_shuts_down_once(fake_nvml):
    fake = fake_nvml([a100()])
    assert nvml.start() and nvml.start()
    nvml.stop()
    assert nvml.active() and fake.shutdown_calls == 0
    nvml.stop()
    assert not nvml.active() and fake.shutdown_calls == 1
    nvml.stop()  # one too many is harmless
    assert fake.shutdown_calls == 1


def test_clock_events_decoded():
    assert nvml.decode_clock_events(None) is None
    assert nvml.decode_clock_events(0) == []
    assert nvml.decode_clock_events(0x1 | 0x4 | 0x40) == ["gpu_idle", "sw_power_cap", "hw_thermal"]


def test_processes_merge_and_hide_sentinel_memory(fake_nvml):
    fake_nvml([a100(processes=[(os.getpid(), 3 * 2**30), (4242, 2**64 - 1)])])
    with nvml.session():
        assert nvml.processes(0) == sorted([(4242, None), (os.getpid(), 3 * 2**30)])


def test_utilization_samples_only_newer_than_timestamp(fake_nvml):


    gpu = a100(util_gpu=73)
    gpu.created -= 2.0  # two seconds of samples in the driver's buffer
    fake_nvml([gpu])
    with nvml.session():
        samples = nvml.utilization_samples(0, 0)
        assert len(samples) >= 10
        assert all(value == 73.0 for _, value in samples)
        newest = samples[-1][0]
        # the driver answers NOT_FOUND when nothing is newer: that is "no samples yet", not "unsupported"
        assert nvml.utilization_samples(0, newest + 10**9) == []
        cutoff = samples[5][0]
        assert all(ts > cutoff for ts, _ in nvml.utilization_samples(0, cutoff))
