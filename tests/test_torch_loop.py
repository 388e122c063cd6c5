"""PyTorch loops under %%timed_fit: steps from torch.optim's global hooks, epochs and the input wait from
DataLoader iterators, the model named by its outermost module; colab_magic.step() for any other loop;
everything taken off after the cell. Real torch (CPU), real threads."""

import os
import subprocess
import sys
import textwrap

import psutil
import pytest

torch = pytest.importorskip("torch")

SETUP = '''
import time, torch
from torch.utils.data import DataLoader, Dataset
class Slow(Dataset):
    def __init__(self, n=256, sleep=0.002):
        self.n, self.sleep = n, sleep
    def __len__(self):
        return self.n
    def __getitem__(self, i):
        time.sleep(self.sleep)
        return torch.randn(16), torch.randn(1)
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    def forward(self, x):
        return self.body(x)
def train(model, opt, loader, epochs, val=None):
    for epoch in range(epochs):
        for xb, yb in loader:
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(xb), yb).backward()
            opt.step()
        if val is not None:
            with torch.no_grad():
                for xb, yb in val:
                    model(xb)
'''


def hooks_left():
    import torch.optim.optimizer as optim
    from torch.nn.modules import module
    from torch.utils.data import dataloader

    return (len(optim._global_optimizer_pre_hooks), len(optim._global_optimizer_post_hooks),
            len(module._global_forward_pre_hooks), len(module._global_forward_hooks),
            any(f.__module__ != "torch.utils.data.dataloader" for f in (
                dataloader._BaseDataLoaderIter.__init__, dataloader._BaseDataLoaderIter.__next__,
                dataloader._BaseDataLoaderIter._reset, dataloader.DataLoader._get_iterator,
                vars(dataloader._MultiProcessingDataLoaderIter)["_shutdown_workers"]))
            or "__next__" in vars(dataloader._MultiProcessingDataLoaderIter))


def test_a_torch_loop_is_one_report_with_epochs_steps_and_the_input_wait(kip):
    kip.run_cell("%%timed_fit -q -v R --no-history\nmodel = Net()\nopt = torch.optim.SGD(model.parameters(), lr=0.01)\n"
                 "train(model, opt, DataLoader(Slow(), batch_size=32), 3, val=DataLoader(Slow(64), batch_size=64))"
                 ).raise_error()
    (r,) = kip.user_ns["R"].reports
    assert (r.loop, r.model, r.device, r.backend, r.batch_size) == ("torch", "Net", "CPU:0", "torch", 32)
    assert r.epochs_seen and r.epoch_mean_s is not None
    assert r.total_steps == 24 and [e.steps for e in r.epochs] == [8, 8, 8]  # exactly; validation starts no epoch
    wait = r.input_wait
    assert wait.source == "DataLoader" and wait.steps == 20  # each epoch's first step apart, and the FLOP-counted
    # 32 samples of a 2 ms sleep: at least 64 ms of each step waits in the DataLoader
    assert wait.step_s - wait.compute_step_s >= 0.064 and wait.wait_share > 0.5
    loader = wait.loader
    assert (loader.dataset, loader.batch_size, loader.num_workers, loader.pin_memory, loader.persistent_workers) == (
        "Slow", 32, 0, False, False)
    assert 0.064 <= loader.batch_wait_s <= wait.step_s  # 32 samples of 2 ms, in a step
    finding, cores = r.findings[0], psutil.cpu_count(logical=True)
    assert finding.rule == "input_bound" and "DataLoader's __next__" in finding.evidence
    # the fix from the loader's settings and this machine's cores; on the CPU, pinned memory helps nothing
    assert f"num_workers={cores}, persistent_workers=True" in finding.fix and "num_workers=0 now" in finding.fix
    assert "pin_memory" not in finding.fix
    assert "DataLoader: batch_size 32, num_workers 0, pin_memory False." in r.notes
    assert loader.others == 0  # the validation loader, drawn between epochs, feeds no step
    assert r.headline.startswith("Net on the CPU: ") and f"(fix: DataLoader num_workers={cores})" in r.headline
    assert hooks_left() == (0, 0, 0, 0, False)


def test_a_tensor_dataset_fed_by_a_worker_is_told_to_make_its_batches_here(kip):
    """Receiving a batch from a worker process costs more than indexing tensors held in memory
    (bench/loader_handoff.py): the fix is num_workers=0, not more workers."""
    kip.run_cell("%%timed_fit -q -v R --no-history\nmodel = Net()\nopt = torch.optim.SGD(model.parameters(), lr=0.01)\n"
                 "data = torch.utils.data.TensorDataset(torch.randn(320, 16), torch.randn(320, 1))\n"
                 "train(model, opt, DataLoader(data, batch_size=16, num_workers=1, persistent_workers=True), 2)"
                 ).raise_error()
    (r,) = kip.user_ns["R"].reports
    assert (r.input_wait.loader.dataset, r.input_wait.loader.num_workers) == ("TensorDataset", 1)
    (finding,) = [f for f in r.findings if f.rule == "input_bound"]
    assert finding.action == "num_workers=0" and finding.fix.startswith("num_workers=0: a TensorDataset's batch")
    assert hooks_left() == (0, 0, 0, 0, False)


def test_two_loaders_zipped_into_each_step_both_count_in_the_wait(kip):
    """zip(labelled, unlabelled): each step draws from both. The slow one is drawn first, so the feed (the
    loader drawn last before the first step) is the fast one; the slow one's wait counts all the same, and
    the epochs follow the feed. A validation loader between epochs is not taken for one."""
    kip.run_cell(textwrap.dedent("""
        %%timed_fit -q -v R --no-history
        from torch.utils.data import TensorDataset
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        slow = DataLoader(Slow(64, sleep=0.005), batch_size=16)
        fast = DataLoader(TensorDataset(torch.randn(64, 16)), batch_size=16)
        val = DataLoader(Slow(32), batch_size=16)
        for epoch in range(3):
            for (xs, ys), (xf,) in zip(slow, fast):
                opt.zero_grad()
                (torch.nn.functional.mse_loss(model(xs), ys) + model(xf).pow(2).mean()).backward()
                opt.step()
            with torch.no_grad():
                for xb, yb in val:
                    model(xb)
        """)).raise_error()
    (r,) = kip.user_ns["R"].reports
    assert r.total_steps == 12 and [e.steps for e in r.epochs] == [4, 4, 4]
    wait = r.input_wait
    # 16 samples of a 5 ms sleep a step, against a tiny model: most of each step (0.004 when only the fast
    # loader's wait was counted; beside the suite's other process, torch's threads can take 30 ms a step)
    assert wait.wait_share > 0.5, wait
    assert (wait.loader.dataset, wait.loader.others) == ("TensorDataset", 1)
    assert ("DataLoader: batch_size 16, num_workers 0, pin_memory False; and 1 other DataLoader feeding the same "
            "steps (its wait counted too).") in r.notes
    assert hooks_left() == (0, 0, 0, 0, False)


def test_a_pass_started_over_for_each_batch_is_one_epoch_and_its_starting_is_input_wait(kip):
    """next(iter(loader)) in the loop: each step starts a new pass, which with workers starts their processes
    (and the last pass's shut down) for one batch. Not an epoch a step, and not "no bottleneck": the
    starting is input wait, and the fix is one iterator, made once."""
    kip.run_cell(textwrap.dedent("""
        %%timed_fit -q -v R --no-history
        from torch.utils.data import TensorDataset
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        loader = DataLoader(TensorDataset(torch.randn(256, 16), torch.randn(256, 1)), batch_size=16, num_workers=1)
        for step in range(8):
            xb, yb = next(iter(loader))
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(xb), yb).backward()
            opt.step()
        """)).raise_error()
    (r,) = kip.user_ns["R"].reports
    assert r.total_steps == 8 and len(r.epochs) == 1  # not 8 epochs of a step
    wait = r.input_wait
    assert (wait.loader.restarts, wait.loader.num_workers) == (7, 1)
    # a worker process started and one shut down for each batch: tens of ms, against a step of well under one
    assert wait.loader.restart_s > 0.005 and wait.wait_share > 0.5, wait
    finding = next(f for f in r.findings if f.rule == "input_bound")
    assert finding.action == "one DataLoader iterator, made once"
    assert "it = iter(loader) before the loop, next(it) in it" in finding.fix and "7 times" in finding.fix
    assert any(n.startswith("A new pass over the DataLoader was started 7 times after a single batch") for n in r.notes)
    assert hooks_left() == (0, 0, 0, 0, False)


def test_whole_batches_from_a_batch_sampler_have_their_batch_size(kip):
    """The fix the verdicts give a TensorDataset (whole batches, batch_size=None): its batch size is the
    BatchSampler's, and the fix is not given again."""
    kip.run_cell(textwrap.dedent("""
        %%timed_fit -q -v R --no-history
        from torch.utils.data import BatchSampler, RandomSampler, TensorDataset
        data = TensorDataset(torch.randn(512, 16), torch.randn(512, 1))
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        loader = DataLoader(data, sampler=BatchSampler(RandomSampler(data), 64, False), batch_size=None)
        train(model, opt, loader, 2)
        """)).raise_error()
    (r,) = kip.user_ns["R"].reports
    assert (r.batch_size, r.input_wait.loader.batch_size, r.input_wait.loader.whole_batches) == (64, 64, True)
    assert "DataLoader: whole batches of 64, num_workers 0, pin_memory False." in r.notes
    assert all("BatchSampler(RandomSampler" not in f.fix for f in r.findings)


def test_an_epoch_left_early_is_still_an_epoch(kip):
    """A loop that leaves each pass after a few batches (a break) runs short epochs, not passes started over."""
    kip.run_cell(textwrap.dedent("""
        %%timed_fit -q -v R --no-history
        from torch.utils.data import TensorDataset
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        loader = DataLoader(TensorDataset(torch.randn(256, 16), torch.randn(256, 1)), batch_size=16)
        for epoch in range(3):
            for i, (xb, yb) in enumerate(loader):
                opt.zero_grad()
                torch.nn.functional.mse_loss(model(xb), yb).backward()
                opt.step()
                if i == 3:
                    break
        """)).raise_error()
    (r,) = kip.user_ns["R"].reports
    assert [e.steps for e in r.epochs] == [4, 4, 4] and r.input_wait.loader.restarts == 0


def test_the_flop_counted_step_is_left_out_of_the_wait_share(kip):
    """The second step runs under torch's FlopCounterMode, several times slower in a model of many small
    layers: counted in the wait share's steps, it made a short loop's steps look longer and its wait smaller."""
    kip.run_cell(textwrap.dedent("""
        %%timed_fit -q -v R --no-history
        from torch.utils.data import TensorDataset
        deep = torch.nn.Sequential(*[torch.nn.Linear(8, 8) for _ in range(40)])
        opt = torch.optim.SGD(deep.parameters(), lr=0.001)
        for _ in range(2):
            for xb, in DataLoader(TensorDataset(torch.randn(256, 8)), batch_size=32):
                opt.zero_grad()
                deep(xb).sum().backward()
                opt.step()
        """)).raise_error()
    (r,) = kip.user_ns["R"].reports
    assert r.total_steps == 16 and r.flops_per_step
    wait = r.input_wait
    assert wait.steps == 16 - 2 - 1  # the epochs' first steps and the counted one apart
    # the wait share's steps are the timer's steady steps (which leave the counted one out as a warm-up)
    assert wait.step_s <= 1.3 * r.step.mean, (wait.step_s, r.step.mean)  # 1.0 here; 1.8 with it counted


def test_workers_that_keep_up_are_told_from_workers_too_slow(kip):
    """With worker processes, whether each batch was already received when asked for: nearly all when
    a worker makes a batch far faster than a step trains (the wait is the receiving: a larger batch
    helps, more workers would not), few when it makes a batch far slower."""
    cell = textwrap.dedent('''
        def run(model, opt, loader):  # the loader and its workers go with the call
            for epoch in range(2):
                for xb, yb in loader:
                    opt.zero_grad(); torch.nn.functional.mse_loss(model(xb), yb).backward(); opt.step()
                    time.sleep({step})
        model = Net()
        run(model, torch.optim.SGD(model.parameters(), lr=0.01),
            DataLoader(Slow({n}, {sleep}), batch_size=16, num_workers=1, persistent_workers=True))
    ''')
    for n, sleep, step in ((640, 0, 0.006), (320, 0.002, 0)):  # a batch: about 0.1 ms against 6 ms steps; 32 ms against 1
        kip.run_cell(f"%%timed_fit -q -v R --no-history\n{cell.format(n=n, sleep=sleep, step=step)}").raise_error()
        (r,) = kip.user_ns["R"].reports
        ready = r.input_wait.loader.ready_share
        actions = [f.action for f in r.findings if f.rule == "input_bound"]
        if sleep == 0:
            assert ready >= 0.9 and all(a == "a larger batch_size" for a in actions), (ready, r.findings)
        else:
            assert ready <= 0.3 and actions and actions != ["a larger batch_size"], (ready, r.findings)
    assert hooks_left() == (0, 0, 0, 0, False)


def test_a_loop_without_a_dataloader_and_two_optimizers(kip):
    cell = textwrap.dedent('''
        g, d = torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)
        og, od = torch.optim.Adam(g.parameters()), torch.optim.SGD(d.parameters(), lr=0.1)
        x = torch.randn(8, 4)
        for i in range(30):
            od.zero_grad(); d(g(x).detach()).mean().backward(); od.step()
            og.zero_grad(); (-d(g(x))).mean().backward(); og.step()
    ''')
    kip.run_cell(f"%%timed_fit -q -v R --no-history\n{cell}").raise_error()
    reports = kip.user_ns["R"].reports
    assert [(r.loop, r.total_steps, len(r.epochs)) for r in reports] == [("torch", 30, 1), ("torch", 30, 1)]
    assert reports[0].input_wait is None and reports[0].batch_note == "unknown: no DataLoader fed the steps"
    # the first step apart; the first optimizer's second step too: it began under the FLOP counter, whose
    # count was dropped when the second optimizer appeared (it would have counted both)
    assert [r.step.n for r in reports] == [28, 29] and [r.flops_per_step for r in reports] == [None, None]
    # no DataLoader: no epoch boundary was seen, so the steps are one span, not "1 epoch" with its s/epoch
    r = reports[0]
    assert not r.epochs_seen and r.epoch_mean_s is None and "s/epoch" not in r.headline
    text = " ".join(str(kip.user_ns["R"]).split())
    assert "30 steps, no epochs seen (no DataLoader fed the steps, and a new pass over one is what starts an epoch)" in text
    assert "1 epoch" not in text and "Hardware and sampler: %%timed_fit -d" in text and "Per epoch" not in text


def test_hooks_go_after_an_exception_and_ctrl_c(kip):
    cell = ("model = Net()\nopt = torch.optim.SGD(model.parameters(), lr=0.01)\n"
            "for i, (xb, yb) in enumerate(DataLoader(Slow(64, 0), batch_size=8)):\n"
            "    model(xb).sum().backward(); opt.step()\n"
            "    if i == 3: raise {}")
    res = kip.run_cell("%%timed_fit -q -v R --no-history\n" + cell.format("ValueError('boom')"))
    assert isinstance(res.error_in_exec, ValueError) and hooks_left() == (0, 0, 0, 0, False)
    assert kip.user_ns["R"][0].total_steps == 4 and kip.user_ns["R"][0].failed
    res = kip.run_cell("%%timed_fit -q -v R --no-history\n" + cell.format("KeyboardInterrupt"))
    assert isinstance(res.error_in_exec, KeyboardInterrupt) and hooks_left() == (0, 0, 0, 0, False)


def test_an_optimizer_step_that_raises_is_the_users_exception(kip):
    cell = textwrap.dedent('''
        class Broken(torch.optim.SGD):
            def step(self, closure=None):
                raise RuntimeError("my optimizer broke")
        w = torch.nn.Linear(2, 1)
        Broken(w.parameters(), lr=0.1).step()
    ''')
    res = kip.run_cell(f"%%timed_fit -q --no-history\n{cell}")
    assert isinstance(res.error_in_exec, RuntimeError) and str(res.error_in_exec) == "my optimizer broke"
    assert hooks_left() == (0, 0, 0, 0, False)


def test_marked_steps_from_any_loop(kip):
    kip.run_cell("%%timed_fit -q -v R --no-history\nimport colab_magic\nfor i in range(20):\n"
                 "    time.sleep(0.003)\n    colab_magic.step()").raise_error()
    (r,) = kip.user_ns["R"].reports
    assert (r.loop, r.total_steps, r.step.n) == ("marked", 20, 19)
    assert not r.epochs_seen and r.epoch_mean_s is None and r.to_dict()["epochs_seen"] is False
    from colab_magic.fit_view import _fit_tables
    from colab_magic.tables import to_text

    details = " ".join(to_text(_fit_tables(r, 1, None)).split())  # what -d shows
    assert "steps 20 (no epochs seen: colab_magic.step() marks steps, not epochs)" in details
    assert "Per epoch" not in details and "s/epoch" not in details
    assert r.step.median == pytest.approx(0.003, abs=0.002)
    import colab_magic

    colab_magic.step()  # outside a cell: nothing happens


def test_trials_on_a_torch_loop_are_one_line_and_no_step_names_both_ways(kip, capsys):
    kip.run_cell("%%timed_fit --compare --no-history -v R\nw = torch.nn.Linear(2, 1)\n"
                 "o = torch.optim.SGD(w.parameters(), lr=0.1)\nfor i in range(5):\n    w(torch.ones(1, 2)).sum().backward(); o.step()"
                 ).raise_error()
    r = kip.user_ns["R"]
    assert r.comparisons == [] and any(n.startswith("--compare and --whatif train the model again") for n in r.notes)
    kip.run_cell("%%timed_fit --no-history\nx = 1").raise_error()
    out = " ".join(capsys.readouterr().out.split())
    assert ("No training step was seen in this cell: a Keras model.fit, a torch.optim optimizer's step(), or "
            "colab_magic.step() in your own loop marks one") in out


def test_torch_imported_inside_the_cell_is_still_seen_and_keras_is_never_imported_for_it(tmp_path):
    """The hooks go in when the cell imports torch (Colab ships it, but a cell may be the first to import
    it); a PyTorch cell does not import Keras or TensorFlow (seconds, and memory, for nothing); a later cell
    that imports Keras itself has its fit timed."""
    code = textwrap.dedent('''
        import sys
        from IPython.core.interactiveshell import InteractiveShell
        ip = InteractiveShell.instance()
        ip.run_line_magic("load_ext", "colab_magic")
        assert "torch" not in sys.modules
        ip.run_cell("%%timed_fit -q -v R\\nimport torch\\nw = torch.nn.Linear(2, 1)\\n"
                    "o = torch.optim.SGD(w.parameters(), lr=0.1)\\nfor i in range(7):\\n    w(torch.ones(1, 2)).sum().backward(); o.step()").raise_error()
        r = ip.user_ns["R"]
        print(len(r.reports), r.reports[0].loop, r.reports[0].total_steps, r.reports[0].model)
        print("keras" in sys.modules, "tensorflow" in sys.modules)
        ip.run_cell("%%timed_fit -q -v K --no-history\\nimport keras, numpy as np\\n"
                    "k = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]); k.compile('sgd', 'mse')\\n"
                    "_ = k.fit(np.zeros((64, 2)), np.zeros((64, 1)), epochs=2, verbose=0)").raise_error()
        k = ip.user_ns["K"]
        print(len(k.reports), k.reports[0].loop, k.reports[0].total_steps, "fit" in vars(sys.modules["keras"].Model),
              [type(f).__name__ for f in sys.meta_path if type(f).__name__ == "ImportWatcher"])
    ''')
    env = dict(os.environ, HOME=str(tmp_path))  # the run is recorded (the history is written) in a home of its own
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / ".colab_magic" / "runs.jsonl").exists()
    assert out.stdout.strip().splitlines()[-3:] == ["1 torch 7 Linear", "False False", "1 keras 4 False []"]


def test_flops_of_an_mlp_step_match_a_hand_count(kip):
    kip.run_cell("%%timed_fit -q -v R --no-history\nmodel = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), "
                 "torch.nn.Linear(64, 1))\nopt = torch.optim.SGD(model.parameters(), lr=0.01)\n"
                 "train(model, opt, DataLoader(Slow(256, 0), batch_size=32), 1)").raise_error()
    (r,) = kip.user_ns["R"].reports
    # batch 32, 16 -> 64 -> 1: forward 2*32*16*64 + 2*32*64*1; backward: the second layer's input and
    # weight gradients (2*32*1*64 each), the first layer's weight gradient (2*32*16*64; the data needs none)
    hand = 2 * 32 * 16 * 64 + 2 * 32 * 64 * 1 + 2 * (2 * 32 * 64 * 1) + 2 * 32 * 16 * 64
    assert r.flops_per_step == pytest.approx(hand, rel=0.01) and "FlopCounterMode" in r.flops_method
    assert r.achieved_flops_per_s == pytest.approx(r.flops_per_step / r.step.mean)
    # the counted (second) step is left out of the statistics, as the first is
    assert r.total_steps == 8 and r.step.n == 6


def test_gradient_accumulation_counts_a_step_with_its_micro_batches(kip):
    cell = textwrap.dedent('''
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        for epoch in range(2):
            for i, (xb, yb) in enumerate(DataLoader(Slow(256, 0), batch_size=16)):
                torch.nn.functional.mse_loss(model(xb), yb).backward()
                if i % 4 == 3:
                    opt.step(); opt.zero_grad()
    ''')
    kip.run_cell(f"%%timed_fit -q -v R --no-history\n{cell}").raise_error()
    (r,) = kip.user_ns["R"].reports
    assert r.total_steps == 8 and [e.steps for e in r.epochs] == [4, 4]  # optimizer steps, not batches
    assert r.batch_size == 64 and "4 batches per optimizer step (gradient accumulation): a step is all of them." in r.notes


def test_module_hooks_come_off_when_modules_run_without_an_optimizer(kip, monkeypatch):
    from colab_magic import torch_loop

    monkeypatch.setattr(torch_loop, "MODULE_CALLS_WATCHED", 5)  # inference only: no step ever comes
    kip.run_cell("%%timed_fit -q --no-history\nfrom torch.nn.modules import module as _m\nnet = Net()\n"
                 "before = len(_m._global_forward_pre_hooks)\nfor i in range(10):\n    net(torch.ones(1, 16))\n"
                 "after = len(_m._global_forward_pre_hooks)").raise_error()
    assert (kip.user_ns["before"], kip.user_ns["after"]) == (1, 0)


def test_gradscaler_skipped_steps_are_counted_and_said(kip):
    """A GradScaler that finds inf gradients skips optimizer.step(): the step was worked all the same."""
    cell = textwrap.dedent('''
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        scaler = torch.amp.GradScaler("cpu")
        x, y = torch.randn(16, 16), torch.randn(16, 1)
        for i in range(10):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y) * (float("inf") if i in (3, 6) else 1.0)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
    ''')
    kip.run_cell("%%timed_fit -q -v R --no-history\n" + cell).raise_error()
    (r,) = kip.user_ns["R"].reports
    assert (r.total_steps, r.skipped_steps) == (10, 2)
    assert any(n.startswith("GradScaler skipped the update of 2 of 10 steps") for n in r.notes)
    from torch.amp.grad_scaler import GradScaler

    assert GradScaler.step.__module__ == "torch.amp.grad_scaler"  # put back


def test_autocast_dtype_and_tf32_reach_the_report(kip):
    """What matrix products ran in: autocast's dtype on the weights' device, else the weights' own."""
    kip.run_cell("%%timed_fit -q -v R --no-history\nmodel = Net()\nopt = torch.optim.SGD(model.parameters(), lr=0.01)\n"
                 "for i in range(4):\n    opt.zero_grad()\n"
                 "    with torch.autocast('cpu', dtype=torch.bfloat16):\n        out = model(torch.randn(8, 16))\n"
                 "    out.float().sum().backward()\n    opt.step()").raise_error()
    (r,) = kip.user_ns["R"].reports
    assert r.compute_dtype == "bfloat16" and "autocast: cpu in bfloat16." in r.notes
    assert r.tf32 is (torch.backends.cuda.matmul.allow_tf32 or torch.get_float32_matmul_precision() != "highest")
    kip.run_cell("%%timed_fit -q -v R --no-history\nmodel = Net().to(torch.bfloat16)\n"
                 "opt = torch.optim.SGD(model.parameters(), lr=0.01)\nfor i in range(3):\n"
                 "    opt.zero_grad(); model(torch.randn(8, 16, dtype=torch.bfloat16)).float().sum().backward(); opt.step()"
                 ).raise_error()
    assert kip.user_ns["R"].reports[0].compute_dtype == "bfloat16"
    kip.run_cell("%%timed_fit -q -v R --no-history\nmodel = Net()\nopt = torch.optim.SGD(model.parameters(), lr=0.01)\n"
                 "for i in range(3):\n    opt.zero_grad(); model(torch.randn(8, 16)).sum().backward(); opt.step()").raise_error()
    assert kip.user_ns["R"].reports[0].compute_dtype == "float32"


def test_compute_dtype_rule():
    from colab_magic.torch_facts import compute_dtype

    assert compute_dtype({"cuda": "float16"}, ["cuda:0"], ["float32"]) == "float16"
    assert compute_dtype({"cpu": "bfloat16"}, ["cuda:0"], ["float32"]) == "float32"  # autocast on another device
    assert compute_dtype({}, ["cuda:0"], ["bfloat16"]) == "bfloat16"
    assert compute_dtype({}, ["cuda:0"], ["bfloat16", "float32"]) == "float32"


def test_mfu_of_a_counted_torch_step_uses_its_dtype_and_tf32():
    """The torch source counts its own FLOPs: the report's MFU is against the peak of autocast's dtype."""
    from colab_magic.mfu import against_peak
    from tests import builders as b

    r = b.report(device="GPU:0", gpus=[b.gpu(name="NVIDIA H100 80GB HBM3")], step=0.02, loop="torch")
    bf16 = against_peak(r, 494.7e12, "bfloat16", False)
    assert bf16["peak_flops_per_s"] == 989.4e12 and abs(bf16["mfu"] - 0.5) < 1e-9
    assert against_peak(r, 67e12, "float32", False)["mfu"] == 1.0
    assert "TF32" in against_peak(r, 67e12, "float32", True)["peak_basis"]
    assert "no MFU on the CPU" in against_peak(b.report(device="CPU:0", gpus=[]), 1e9, "float32", False)["peak_basis"]


def test_persistent_workers_start_an_epoch_per_pass_and_the_model_is_signed(kip):
    """persistent_workers keeps one iterator and resets it for each pass: each reset is an epoch. The
    history's signature: the leaf layers and the parameter count."""
    kip.run_cell("%%timed_fit -q -v R --no-history\nmodel = Net()\nopt = torch.optim.SGD(model.parameters(), lr=0.01)\n"
                 "train(model, opt, DataLoader(Slow(64, 0), batch_size=16, num_workers=1, persistent_workers=True), 3)"
                 ).raise_error()
    (r,) = kip.user_ns["R"].reports
    assert [e.steps for e in r.epochs] == [4, 4, 4]
    assert "DataLoader: batch_size 16, num_workers 1, pin_memory False, persistent_workers True." in r.notes
    assert (r.input_wait.loader.num_workers, r.input_wait.loader.persistent_workers) == (1, True)
    assert r.signature.layers == ["Linear", "ReLU", "Linear"] and r.signature.params == 16 * 64 + 64 + 64 + 1


def test_a_loop_still_running_in_another_thread_is_reported_as_such(kip):
    """As a Keras fit in a thread: what ran is reported, marked incomplete, and the hooks still come off."""
    import threading

    stop = threading.Event()
    kip.user_ns["stop"] = stop
    cell = textwrap.dedent('''
        import threading, time
        taken = []
        def loop():
            model = Net()
            opt = torch.optim.SGD(model.parameters(), lr=0.01)
            while not stop.is_set():
                opt.zero_grad(); model(torch.randn(8, 16)).sum().backward(); opt.step(); taken.append(1)
                time.sleep(0.005)
        trainer = threading.Thread(target=loop)
        trainer.start()
        deadline = time.monotonic() + 60  # a process's first optimizer step can take seconds (lazy imports)
        while len(taken) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
    ''')
    try:
        kip.run_cell(f"%%timed_fit -q -v R --no-history\n{cell}").raise_error()
        (r,) = kip.user_ns["R"].reports
        assert r.complete is False and r.error == "still running in another thread when the cell ended"
        assert r.total_steps > 10 and r.model == "Net"
        assert hooks_left() == (0, 0, 0, 0, False)
    finally:
        stop.set()
        kip.user_ns["trainer"].join(30)


def steps_seen(kip, interval, steps, sleep=0.0):
    """A loop of ``steps`` steps under ``--interval``: after each, how many steps the step timer had been
    told; the report; the fit's recording (its sampler)."""
    kip.run_cell(textwrap.dedent(f'''
        %%timed_fit -q -v R --no-history --interval {interval}
        from colab_magic import recorder
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        seen = []
        for i in range({steps}):
            opt.zero_grad(); model(torch.randn(4, 16)).sum().backward(); opt.step()
            time.sleep({sleep})
            fit = recorder.active()._running[0]
            seen.append(fit.timer.total_steps)
    ''').strip()).raise_error()
    (report,) = kip.user_ns["R"].reports
    return kip.user_ns["seen"], report, kip.user_ns["fit"]


def test_steady_steps_reach_the_step_timer_at_each_sampler_reading(kip):
    """The hot path notes a step's end only; the timer (which the live view reads) is told in batches on
    the sampler's thread, at each of its readings, and every step by the cell's end, with the times they
    ended; nothing of the loop is left in the sampler (the report keeps it)."""
    seen, r, fit = steps_seen(kip, 0.1, 100, sleep=0.004)
    # 4 ms a step, a reading every 0.1 s: the timer is at most about 25 steps (and the step being noted)
    # behind, never ahead; it moves while the loop runs
    assert all(i + 1 - 30 <= n <= i + 1 for i, n in enumerate(seen)), seen
    assert len(set(seen[10:])) > 3
    assert r.total_steps == 100 and 0.004 <= r.step.median < 0.02
    assert fit.sampler.listeners == []


def test_with_readings_far_apart_the_loop_tells_its_steps_itself_past_pending_max(kip, monkeypatch):
    """An hour between the sampler's readings: the steps noted are told by the loop's own thread once
    PENDING_MAX of them wait, so what waits stays bounded; none is lost or told twice."""
    from colab_magic import torch_loop

    monkeypatch.setattr(torch_loop, "PENDING_MAX", 8)
    seen, r, _ = steps_seen(kip, 3600, 60)
    assert all(i + 1 - 8 < n <= i + 1 for i, n in enumerate(seen)), seen
    assert any(n < i + 1 for i, n in enumerate(seen)) and r.total_steps == 60  # noted first, told in batches


def test_two_models_trained_one_after_the_other_are_each_named(kip):
    """The module hooks are off once the first model is named: the second is found through its optimizer's
    parameters (and a model without a forward call at all is named that way too)."""
    kip.run_cell(textwrap.dedent('''
        %%timed_fit -q -v R --no-history
        class Big(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.Linear(8, 1))
            def forward(self, x):
                return self.inner(x)
        for model in (Net(), Big()):
            opt = torch.optim.SGD(model.parameters(), lr=0.01)
            for i in range(4):
                opt.zero_grad(); model(torch.randn(4, 16)).sum().backward(); opt.step()
        w = torch.nn.Linear(3, 1)
        o = torch.optim.SGD(w.parameters(), lr=0.1)
        for i in range(3):
            o.zero_grad(); (w.weight.sum() * 2).backward(); o.step()
    ''').strip()).raise_error()
    assert [(r.model, r.total_steps) for r in kip.user_ns["R"].reports] == [("Net", 4), ("Big", 4), ("Linear", 3)]


def test_the_pre_hook_is_off_while_every_loop_is_steady_and_a_new_optimizer_is_still_seen(kip):
    """Steady steps pay for the post-hook only (bench/overhead.py --torch): the pre-hook comes off once
    every loop is steady, goes back for each new DataLoader pass, and an optimizer that first steps
    while it is off is still its own report, every step counted."""
    kip.run_cell(textwrap.dedent('''
        %%timed_fit -q -v R --no-history
        import torch.optim.optimizer as optim
        from torch.utils.data import TensorDataset
        model, other = Net(), torch.nn.Linear(16, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        loader = DataLoader(TensorDataset(torch.randn(64, 16), torch.randn(64, 1)), batch_size=8)
        pre = []
        for epoch in range(2):
            for i, (xb, yb) in enumerate(loader):
                pre.append(len(optim._global_optimizer_pre_hooks))
                opt.zero_grad(); torch.nn.functional.mse_loss(model(xb), yb).backward(); opt.step()
                if epoch == 1 and i == 5:  # a second optimizer, first stepping while the first is steady
                    o2 = torch.optim.SGD(other.parameters(), lr=0.01)
                    for _ in range(3):
                        o2.zero_grad(); other(xb).sum().backward(); o2.step()
    ''').strip()).raise_error()
    pre, reports = kip.user_ns["pre"], kip.user_ns["R"].reports
    # epoch 0: on for the first steps (naming, the FLOP count), off once steady; on again at epoch 1's start
    assert pre[0] == 1 and pre[7] == 0 and pre[8] == 1 and pre[-1] == 0, pre
    assert [(r.model, r.total_steps) for r in reports] == [("Net", 16), ("Linear", 3)]
    assert [e.steps for e in reports[0].epochs] == [8, 8]
    assert hooks_left() == (0, 0, 0, 0, False)


def test_the_live_line_follows_a_torch_loop_step_by_step(kip, monkeypatch):
    """--live on a terminal: the sampler's thread tells the noted steps to the timer just before the
    live view reads it, so the line counts the steps as they go, not only each epoch's first."""
    import io
    import re

    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    monkeypatch.setattr("sys.stderr", stream)
    kip.run_cell(textwrap.dedent('''
        %%timed_fit -v R --no-history --live --interval 0.1
        model = Net()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        for i in range(60):
            opt.zero_grad(); model(torch.randn(4, 16)).sum().backward(); opt.step()
            time.sleep(0.05)
    ''').strip()).raise_error()
    steps = [int(n) for n in re.findall(r"step (\d+)", stream.getvalue())]
    assert len(steps) >= 2 and steps == sorted(steps) and steps[-1] > 10, stream.getvalue()[:500]
