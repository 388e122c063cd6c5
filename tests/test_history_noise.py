"""%fit_history with the intervals trials record: differences within the noise marked, what-if runs
kept apart from the model's runs on each device."""

from colab_magic.history import HistoryView, latest_per_device
from colab_magic.run_summary import RunSummary
from colab_magic.tables import to_text


def record(id_, device, mean, interval=None, kind="fit", variant=None, time="2026-11-26T10:00:00+00:00", name=None):
    return {"id": id_, "time": time, "kind": kind, "model": "net", "signature_id": "sig", "device": device,
            "device_name": name or ("CPU" if device.startswith("CPU") else "NVIDIA H100"), "step_median_s": mean,
            "step_mean_s": mean, "step_mean_interval_s": interval, "variant": variant,
            "env": {"runtime": "local", "host": "box"}}


def text(view) -> str:
    return " ".join(to_text(view.tables(), width=200).split())


def test_a_difference_inside_the_intervals_is_marked_as_noise():
    records = [record("cpu00001", "CPU:0", 0.010, [0.0095, 0.0105]),
               record("gpu00001", "GPU:0", 0.0098, [0.009, 0.0106], kind="compare"),
               record("gpu00002", "GPU:1", 0.002, [0.0019, 0.0021], kind="compare")]
    out = text(HistoryView("H", records, compare=True))
    cpu, same, fast = (RunSummary.from_record(r) for r in records)
    _, near = same.throughput_over(cpu)
    _, far = fast.throughput_over(cpu)
    assert near[0] < 1 < near[1] and far[0] > 1
    assert f"{cpu.step_mean_s / same.step_mean_s:.2f}x ({near[0]:.2f}-{near[1]:.2f}) ~" in out
    assert f"5.00x ({far[0]:.2f}-{far[1]:.2f}) " in out and f"({far[0]:.2f}-{far[1]:.2f}) ~" not in out
    assert "10.00 (9.50-10.50)" in out  # the mean step in ms, with its interval
    assert "~: the interval holds 1.0x, so the difference from the CPU is within the noise." in out
    assert "In brackets: 95% intervals" in out


def test_no_intervals_no_marks():
    records = [record("cpu00001", "CPU:0", 0.010), record("gpu00001", "GPU:0", 0.0098, kind="compare")]
    out = text(HistoryView("H", records, compare=True))
    assert "1.0x" in out and "~" not in out and "In brackets" not in out


def test_whatif_runs_show_their_change_and_stay_out_of_the_latest_per_device():
    records = [record("cpu00001", "CPU:0", 0.010, time="2026-11-26T10:00:00+00:00"),
               record("spe00001", "CPU:0", 0.003, kind="whatif", variant="steps_per_execution=32",
                      time="2026-11-26T11:00:00+00:00")]
    listing = text(HistoryView("H", records))
    assert "whatif (steps_per_execution=32)" in listing
    latest = latest_per_device([RunSummary.from_record(r) for r in records], "sig")
    assert [run.id for run in latest] == ["cpu00001"]
    side = text(HistoryView("H", records, compare=True))
    assert "CPU:0, steps_per_execution=32" in side


def test_a_malformed_interval_is_read_as_none():
    for bad in ([1], ["a", "b"], [True, 1.0], "0.1-0.2", {"lo": 1}):
        assert RunSummary.from_record(record("x", "CPU:0", 0.01, bad)).step_mean_interval_s is None
    assert RunSummary.from_record(record("x", "CPU:0", 0.01, [0.009, 0.011])).step_mean_interval_s == (0.009, 0.011)
