"""PyTorch training as a loop source: while a ``%%timed_fit`` cell runs, every ``torch.optim`` optimizer's
``step()`` marks a training step (PyTorch's global optimizer hooks), each new ``DataLoader`` iterator
starts an epoch, and the time spent inside the iterators' ``__next__`` is the input wait of the steps
they feed: measured directly, no copy of the model. One report per optimizer, ``loop = "torch"``.

A step is the time from one optimizer step to the next (data, forward, backward and the update); the
first step is timed from its own ``step()`` call only (its start is unknowable) and kept apart, as
Keras' compiling first step is. A Keras fit on the torch backend uses Keras' own optimizers, not
``torch.optim``: it stays one Keras fit.

Also seen: a pass over a loader that stays alive (validation, Lightning's sanity check) starts no epoch;
``persistent_workers`` passes do; steps a ``GradScaler`` skips are counted; autocast's dtype and the model
(inside DDP or torch.compile, or the LightningModule) are read at the first step. Steady steps only note
their end on the hot path; the step timer is told in batches, by the sampler's thread at each of its
readings (just before the live view reads the timer) and by the loop at each epoch's end.

Nothing is imported here at load: the hooks go in when the cell starts if torch is imported already,
else when the cell imports it (an import watcher for the cell's duration). All of it is taken off at
the cell's end, after an exception or Ctrl-C too.
"""

from __future__ import annotations

import threading
import time
import weakref
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .import_watch import ImportWatcher, when_imported
from .observer import LoopPlan
from .recorder import CellFits, FitRecording
from .torch_facts import autocast_now, torch_facts

# Steady steps noted and not yet told to the step timer, at most (8 bytes each): the sampler's thread
# tells them at each reading; with readings far apart the loop's own thread does at this many.
PENDING_MAX = 65_536
MODULE_CALLS_WATCHED = 100_000  # module calls without any optimizer step: the module hooks come off


class _TorchFit:
    """One optimizer's training, as it goes: its recording, the steps of its epoch, its input wait."""

    def __init__(self, fit: FitRecording, optimizer: Any) -> None:
        self.fit, self.optimizer = fit, optimizer
        self.epoch = 0
        self.step = 0  # steps in the open epoch
        self.steps = 0  # all steps, the first included
        self.wait_s = 0.0  # of the steps timed for the wait share (not an epoch's first)
        self.steps_s = 0.0
        self.timed = 0
        self.last_end: float | None = None
        self.first_next_pending = False  # a new epoch: its first step starts at its first __next__
        self.epoch_first = True  # the epoch's first step: timed by the step timer, left out of the wait share
        self.loader: _Feed | None = None  # the DataLoader whose batches feed the steps
        self.model: Any = None  # the outermost nn.Module called before its first step
        self.counter: Any = None  # torch's FlopCounterMode, open over the second step
        # the feed's meter as it read when the last step was told: its wait and batches since are the next
        # step's (several batches: gradient accumulation)
        self.wait_mark = 0.0
        self.batch_mark = 0
        self.batches_stepped = 0  # of the steps after the first: the micro-batches they took
        self.flops: float | None = None  # of that step: forward, backward and update
        self.autocast: dict[str, str] = {}  # device type -> dtype autocast ran the model's forward in
        self.skipped = 0  # steps a GradScaler skipped (inf or NaN gradients): no optimizer.step() call
        self.thread = threading.current_thread()  # the loop's thread (where its first step ran)
        self.pending = array("d")  # the ends of steady steps not yet told to the step timer
        self.listener: Any = None  # the sampler's listener that tells them (taken off at the cell's end)
        # other loaders whose batches feed the same steps (zip(labelled, unlabelled)): [meter, its wait as last
        # taken]; their wait counts, the epochs and the micro-batches follow the feed alone
        self.others: list[list] = []
        # every loader's (batches, wait) at the end of the last step looked at in full, and that step's number
        self.drawn: dict[_Meter, tuple[int, float]] = {}
        self.drawn_at = -1

    def fed_by(self, meter: _Meter) -> None:
        """The loader whose batches feed the steps from now: its wait and batches count from here."""
        self.loader = _Feed.of(meter)
        self.wait_mark, self.batch_mark = meter.waited, meter.batches

    def take_wait(self) -> tuple[float, int]:
        """Input wait and batches of the feed since the last time they were taken."""
        if self.loader is None:
            return 0.0, 0
        meter = self.loader.meter
        waited, batches = meter.waited, meter.batches
        wait, drawn = waited - self.wait_mark, batches - self.batch_mark
        self.wait_mark, self.batch_mark = waited, batches
        for other in self.others:
            waited = other[0].waited
            wait += waited - other[1]
            other[1] = waited
        return wait, drawn

    def seen(self) -> int:
        """Optimizer steps seen, told to the step timer or not yet."""
        return self.steps + len(self.pending)


class TorchLoop:
    """For a cell: PyTorch's optimizer steps and DataLoader iterators recorded in ``fits``."""

    def __init__(self, fits: CellFits) -> None:
        self.fits = fits
        self._by_optimizer: dict[int, _TorchFit] = {}
        self._lock = threading.Lock()
        self._handles: list[Any] = []
        self._patched: list[tuple[Any, str, Any]] = []
        self._watcher: ImportWatcher | None = None
        self.installed = False
        self._hot = _Hot()
        self._pre_hook: Any = None  # the optimizer pre-hook's handle, while some loop needs it
        self._after: Any = None  # the optimizer post-hook (GradScaler's wrapper calls it too)
        self._meters: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # a DataLoader's _Meter
        self._iterators: weakref.WeakSet = weakref.WeakSet()  # those given their loader, until they let it go
        self._module_hooks: list[Any] = []  # the global module hooks, while they are on
        self._outermost: Any = None  # the last module called from outside any other module
        self._autocast: dict[str, str] = {}  # autocast as it was at that call

    def __enter__(self) -> TorchLoop:
        self._watcher = when_imported("torch", self._install)
        return self

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        if self._watcher is not None:
            self._watcher.remove()
        self._unwatch_starts()
        for handle in self._handles:
            handle.remove()
        for owner, name, original in reversed(self._patched):
            if original is _ABSENT:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        self._handles, self._patched = [], []
        for it in list(self._iterators):
            _let_go(it)
        self._iterators.clear()
        for run in list(self._by_optimizer.values()):
            run.fit.sampler.listeners.remove(run.listener)  # the report keeps its sampler, not the loop
            run.listener = None
            if run.counter is not None:  # the cell ended inside the counted step: no count
                run.counter.__exit__(None, None, None)
                run.counter = None
            self._flush_locked(run.optimizer)  # the sampler's thread may be telling them at this moment
            if run.thread is not threading.current_thread() and run.thread.is_alive():
                # as for a Keras fit in a thread: the cell's end reports what ran, marked incomplete
                # (CellFits.close); the steps it takes after the cell are not seen (the hooks are off)
                continue
            run.fit.epoch_ended(run.epoch)
            run.fit.fit_ended(error if isinstance(error, BaseException) else None)
        self._by_optimizer.clear()
        self._hot.steady.clear()

    def _install(self) -> None:
        if self.installed:
            return
        import torch.optim.optimizer as optim

        self.installed = True
        loop, hot, clock = self, self._hot, time.perf_counter

        # The hot paths below run once per step or batch, between steps that push them out of the CPU's
        # caches: measured inside a real loop, each object they touch costs far more than the same code
        # timed alone (bench/overhead.py --torch). So they touch few: a slotted state, a step's pending
        # array, the batch's meter; and the pre-hook is off while every loop is steady.
        def after_step(optimizer: Any, args: Any, kwargs: Any) -> None:
            pending = hot.steady.get(optimizer)
            if pending is None:
                loop._after_step(optimizer, clock())
            else:  # told to the step timer in batches, off this thread (_begin)
                pending.append(clock())
                if len(pending) >= PENDING_MAX:  # a sampler reading far off (--interval up to an hour)
                    loop._flush_locked(optimizer)

        self._after = after_step
        self._watch_starts()
        self._handles.append(optim.register_optimizer_step_post_hook(after_step))
        self._watch_modules()
        self._watch_loaders()
        self._watch_scaler()

    def _watch_loaders(self) -> None:
        """Each DataLoader iterator: a new pass (an epoch, for the loops it feeds), and the time its
        ``__next__`` takes (the input wait), counted on its loader's meter."""
        from torch.utils.data import dataloader

        loop, hot, clock = self, self._hot, time.perf_counter
        base = dataloader._BaseDataLoaderIter
        original_init, original_next, original_reset = base.__init__, base.__next__, base._reset

        def __init__(it: Any, loader: Any, *args: Any, **kwargs: Any) -> None:
            original_init(it, loader, *args, **kwargs)
            # the iterator keeps its loader (`for b in DataLoader(...)` holds nothing else); the loop holds
            # loaders weakly: one the user dropped is seen gone (then one of its kind is its next epoch)
            it._colab_magic_loader, it._colab_magic_meter = loader, loop._meter(loader)
            loop._iterators.add(it)
            loop._new_iterator(it._colab_magic_meter)

        def __next__(it: Any) -> Any:
            meter = getattr(it, "_colab_magic_meter", UNMETERED)
            if hot.first_batch_due:  # an epoch's first step starts with its first batch (rare: no lock otherwise)
                loop._next_called(meter)
            hot.last_meter = meter
            start = clock()
            try:
                batch = original_next(it)
            except StopIteration:  # the pass is over: the time it took to say so is no step's input wait
                meter.ended = True
                _let_go(it)
                raise
            # no lock: a loader's batches are taken on one thread (two threads drawing from one loader at
            # once could lose an addition, no more)
            meter.waited += clock() - start
            meter.batches += 1
            return batch

        def _reset(it: Any, loader: Any, first_iter: bool = False) -> None:
            start = clock()
            original_reset(it, loader, first_iter)
            if not first_iter:  # persistent_workers: the same iterator starts the loader's next pass
                it._colab_magic_loader = loader
                loop._new_iterator(it._colab_magic_meter)
                _restarted(it._colab_magic_meter, clock() - start)

        self._patched += [(base, "__init__", original_init), (base, "__next__", original_next),
                          (base, "_reset", original_reset)]
        setattr(base, "__init__", __init__)  # noqa: B010 - a class attribute set for the cell, put back after it
        setattr(base, "__next__", __next__)  # noqa: B010
        setattr(base, "_reset", _reset)  # noqa: B010
        self._watch_making(dataloader.DataLoader)
        self._watch_workers(dataloader._MultiProcessingDataLoaderIter, __next__)

    def _watch_making(self, loader_class: type) -> None:
        """The time each iterator takes to make (its worker processes started), for passes started over. On a
        torch without ``DataLoader._get_iterator``, that time is not counted."""
        original = vars(loader_class).get("_get_iterator")
        if original is None:
            return
        clock = time.perf_counter

        def _get_iterator(loader: Any) -> Any:
            start = clock()
            it = original(loader)
            _restarted(getattr(it, "_colab_magic_meter", UNMETERED), clock() - start)
            return it

        self._patched.append((loader_class, "_get_iterator", original))
        setattr(loader_class, "_get_iterator", _get_iterator)  # noqa: B010

    def _watch_workers(self, multi: type, timed_next: Any) -> None:
        """With worker processes: whether each batch was already received when ``__next__`` was called
        (the workers keep up, and the wait is receiving it) or not (they are too slow). Read from the
        iterator's private queue and task table, before the timed call; on a torch where those moved,
        nothing is counted. The single-process iterator's path is left as it was."""

        def __next__(it: Any) -> Any:
            meter = getattr(it, "_colab_magic_meter", UNMETERED)
            try:  # a pass's first batch is asked for as its workers start: never ready, and no sign of speed
                ready = (None if it._rcvd_idx == 0 else
                         not it._data_queue.empty() or len(it._task_info.get(it._rcvd_idx, ())) == 2)
            except (AttributeError, OSError, ValueError, TypeError):  # moved, or a queue already closed
                ready = None
            if ready is not None:
                meter.asked += 1
                meter.ready += ready
            return timed_next(it)

        if "__next__" not in vars(multi):  # a torch whose worker iterator has a __next__ of its own: not counted
            self._patched.append((multi, "__next__", _ABSENT))  # the subclass has no __next__ of its own
            setattr(multi, "__next__", __next__)  # noqa: B010
        self._watch_shutdowns(multi)

    def _watch_shutdowns(self, multi: type) -> None:
        """A pass left unfinished (``next(iter(loader))`` in the loop, a ``break``) shuts its workers down when
        the loop lets go of the iterator, after ``__next__`` has returned: in the step, and a cost of the
        input all the same (tens of ms), so counted as its loader's wait. The end of a finished pass is
        not (it is no step's)."""
        original = vars(multi).get("_shutdown_workers")
        if original is None:
            return
        clock = time.perf_counter

        def _shutdown_workers(it: Any) -> None:
            try:  # tasks sent to the workers and not received: the pass was left, not finished
                left = not it._shutdown and it._tasks_outstanding > 0
            except AttributeError:  # moved, or an iterator that failed in its __init__
                left = False
            start = clock()
            original(it)
            if left:
                meter = getattr(it, "_colab_magic_meter", UNMETERED)
                took = clock() - start
                meter.waited += took
                meter.dropped_s += took

        self._patched.append((multi, "_shutdown_workers", original))
        setattr(multi, "_shutdown_workers", _shutdown_workers)  # noqa: B010

    def _watch_scaler(self) -> None:
        """A GradScaler that finds inf or NaN gradients skips ``optimizer.step()``: the work of that step was
        done all the same, so it ends a step here, and is counted as skipped."""
        try:
            from torch.amp.grad_scaler import GradScaler
        except ImportError:  # a torch without torch.amp's scaler: scaled steps are seen as before
            return
        original_step = GradScaler.step
        loop = self

        def step(scaler: Any, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
            run = loop._by_optimizer.get(id(optimizer))
            before = run.seen() if run is not None else 0
            out = original_step(scaler, optimizer, *args, **kwargs)
            run = loop._by_optimizer.get(id(optimizer))
            if (run.seen() if run is not None else 0) == before and scaler.is_enabled():
                loop._before_step(optimizer, args, kwargs)
                loop._after(optimizer, args, kwargs)
                loop._by_optimizer[id(optimizer)].skipped += 1
            return out

        self._patched.append((GradScaler, "step", original_step))
        setattr(GradScaler, "step", step)  # noqa: B010

    # --- the hooks -----------------------------------------------------------------------------------

    def _before_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        run = self._by_optimizer.get(id(optimizer))  # a dict read is atomic: most steps need no lock
        if run is not None and run.step:
            return
        with self._lock:
            run = self._by_optimizer.get(id(optimizer))
            if run is None:
                run = self._begin(optimizer)
            if run.step == 0 and run.fit.timer.epochs and run.fit.timer.epochs[-1].first_step_start is None:
                run.fit.step_started(0)  # no DataLoader told where the epoch's first step began

    def _after_step(self, optimizer: Any, now: float) -> None:
        """A step that is not steady: an optimizer's first steps, an epoch's first, the FLOP-counted one.
        It is recorded in full, and the loop made steady when nothing is left to look at."""
        with self._lock:
            run = self._by_optimizer.get(id(optimizer))
            if run is None:  # a new optimizer while every other loop was steady (no pre-hook): its first
                run = self._begin(optimizer)  # step is seen at its end, and timed as none
                run.fit.step_started(0)
                self._watch_starts()
            self._flush(run)
            last = self._hot.last_meter
            if run.loader is None and last is not None and last.ref() is not None:
                run.fed_by(last)  # the loader whose batches fed this step (a first step's wait is left out anyway)
            if run.model is None:
                run.model, run.autocast = self._outermost, self._autocast
            self._find_others(run)
            self._record(run, (now,), *run.take_wait())
            run.epoch_first = False
            if self._module_hooks and all(r.model is not None for r in self._by_optimizer.values()):
                self._unwatch_modules()  # every loop has its model's name: later steps pay nothing for it
            if run.steps <= 2 or run.counter is not None:  # the FLOP count is over by the third step
                self._count_flops(run)
            # steady once nothing is left to look at, and the epoch's second step has shown which loaders feed it
            if (run.model is not None and run.counter is None and run.steps > 2 and not self._module_hooks
                    and (run.loader is not None or last is None) and run.step >= 2):
                self._hot.steady[optimizer] = run.pending  # steady: its next steps only note their end
                if len(self._hot.steady) == len(self._by_optimizer):
                    self._unwatch_starts()  # no loop's step needs its start: the pre-hook costs for nothing

    def _find_others(self, run: _TorchFit) -> None:
        """Other loaders whose batches fed this step, beside the feed: those drawn from since the step before,
        where that one was looked at in full too (each epoch's first two steps). A validation loader runs
        between epochs, not within a step, and a loader drawn from before the first step (Lightning's sanity
        check) is not seen then. Their wait counts from the step before: what fed this one."""
        drawn = {meter: (meter.batches, meter.waited) for meter in self._meters.values()}
        before, run.drawn, at = run.drawn, drawn, run.drawn_at
        run.drawn_at = run.steps + 1  # this step's number, once recorded
        if run.loader is None or run.step == 0 or at != run.steps:  # an epoch's first, or steps since: no interval
            return
        run.others = [o for o in run.others if o[0].ref() is not None]  # loaders dropped: a new one replaces them
        known = {id(o[0]) for o in run.others} | {id(run.loader.meter)}
        for meter, (batches, _waited) in drawn.items():
            batches_before, waited_before = before.get(meter, (0, 0.0))  # a loader made since: all its wait
            if id(meter) not in known and batches > batches_before:
                run.others.append([meter, waited_before])

    def _watch_starts(self) -> None:
        """The optimizer pre-hook: a new optimizer's first step, an epoch's first step without a DataLoader."""
        if self._pre_hook is None:
            import torch.optim.optimizer as optim

            self._pre_hook = optim.register_optimizer_step_pre_hook(self._before_step)

    def _unwatch_starts(self) -> None:
        if self._pre_hook is not None:
            self._pre_hook.remove()
            self._pre_hook = None

    def _unsteady(self, run: _TorchFit) -> None:
        """The loop's next step is looked at in full (a new epoch, its loader)."""
        self._hot.steady.pop(run.optimizer, None)
        self._watch_starts()

    @staticmethod
    def _record(run: _TorchFit, ends: Sequence[float], waiting: float, batches: int) -> None:
        """Steps that ended at ``ends``, with the input wait and batches they took, to the step timer."""
        # an epoch's first step stays apart, and so does the FLOP-counted one (torch's dispatch under the
        # counter makes it several times longer: in a short loop it would shrink the wait's share)
        if not run.epoch_first and run.last_end is not None and run.counter is None:
            run.wait_s += waiting
            run.steps_s += ends[-1] - run.last_end
            run.timed += len(ends)
            run.batches_stepped += batches
        run.last_end = ends[-1]
        run.fit.steps_ended(run.step, ends)
        run.step += len(ends)
        run.steps += len(ends)

    def _flush(self, run: _TorchFit) -> None:
        """The steady steps the hot path noted, told to the step timer in one call (under the lock); their
        input wait is what the feed's meter counted since the last step told."""
        pending = run.pending
        n = len(pending)  # the hot path appends without the lock: what it adds meanwhile stays for next time
        if n:
            ends = pending[:n]
            del pending[:n]
            self._record(run, ends, *run.take_wait())

    def _flush_locked(self, optimizer: Any) -> None:
        """An optimizer's steady steps to the step timer, from any thread. The sampler's thread calls it at each
        reading, so that telling them (0.4 us a step there) is kept off the loop's thread, where any
        work after a step costs several times more (bench/results/README.md). The wait the feed counted
        since the last step told goes with them: a batch drawn for a step not yet ended counts with the
        steps told before it (the fit's totals are exact)."""
        with self._lock:
            run = self._by_optimizer.get(id(optimizer))  # None once the cell has ended
            if run is not None:
                self._flush(run)

    def _count_flops(self, run: _TorchFit) -> None:
        """FLOPs of the second step, under torch's FlopCounterMode (opened after the first step's update,
        closed after the second's). Counting slows that step, so the timer leaves it out of the
        statistics, as a warm-up step. Only while one optimizer trains: with several, each one's step
        would count the others' work."""
        if len(self._by_optimizer) != 1:
            return
        if run.steps == 1 and run.counter is None and run.flops is None:
            from torch.utils.flop_counter import FlopCounterMode

            run.fit.timer.warmup_steps = max(run.fit.timer.warmup_steps, 1)  # the counted step: left out
            run.counter = FlopCounterMode(display=False)
            run.counter.__enter__()
        elif run.counter is not None:
            self._close_counter(run)

    @staticmethod
    def _close_counter(run: _TorchFit) -> None:
        counter, run.counter = run.counter, None
        counter.__exit__(None, None, None)
        run.flops = float(counter.get_total_flops())

    def _begin(self, optimizer: Any) -> _TorchFit:
        for other in self._by_optimizer.values():  # a counter open over another's step would count both
            if other.counter is not None:
                self._close_counter(other)
                other.flops = None
        holder: dict[str, _TorchFit] = {}
        fit = self.fits.begin(optimizer, lambda: torch_facts(holder["run"]))
        run = _TorchFit(fit, optimizer)
        holder["run"] = run
        # at each of the sampler's readings, before the live view (a listener too) reads the timer
        run.listener = lambda _sampler: self._flush_locked(optimizer)
        fit.sampler.listeners.insert(0, run.listener)
        fit.fit_started(LoopPlan())
        fit.epoch_started(0)
        self._by_optimizer[id(optimizer)] = run
        return run

    def _meter(self, loader: Any) -> _Meter:
        meter = self._meters.get(loader)
        if meter is None:
            meter = self._meters[loader] = _Meter(weakref.ref(loader))
        return meter

    def _new_iterator(self, meter: _Meter) -> None:
        """A new pass over a loader (``meter``'s): a new epoch for the optimizers it feeds (a validation
        loader, which feeds none, starts nothing). Unless the pass before was left unfinished after one
        batch (``next(iter(loader))`` in the loop): then it is the same epoch starting its pass over, and the
        time that takes is the step's input wait (``meter.restarting``: timed by the caller)."""
        loader = meter.ref()
        with self._lock:
            over = meter.passes > 0 and not meter.ended and meter.batches - meter.pass_batches == 1
            meter.passes += 1
            meter.ended = False
            meter.pass_batches = meter.batches
            if over:
                meter.restarts += 1
            meter.restarting = over
            for run in self._by_optimizer.values():
                self._flush(run)
                self._unsteady(run)  # the next step looks again: its loader, an epoch's first step
                if over or not _same_feed(loader, run.loader) or run.step == 0:
                    continue
                if run.loader is None or run.loader.meter is not meter:  # a loader made anew
                    run.fed_by(meter)
                run.fit.epoch_ended(run.epoch)
                run.epoch += 1
                run.step = 0
                run.fit.epoch_started(run.epoch)
                run.first_next_pending = True
                run.epoch_first = True
                self._hot.first_batch_due = True

    def _next_called(self, meter: _Meter) -> None:
        with self._lock:
            for run in self._by_optimizer.values():
                if run.first_next_pending and run.loader is not None and run.loader.meter is meter:
                    run.first_next_pending = False
                    run.fit.step_started(0)  # the epoch's first step starts with its first batch
            self._hot.first_batch_due = any(run.first_next_pending for run in self._by_optimizer.values())

    def _watch_modules(self) -> None:
        """Global module hooks, until the cell's first optimizer step: the outermost module called before
        it names the model. Taken off then, so that later steps pay nothing for them."""
        import torch
        from torch.nn.modules import module

        depth = threading.local()
        calls = [0]

        def before(mod: Any, args: Any) -> None:
            level = getattr(depth, "n", 0)
            if level == 0:
                self._outermost = mod
                self._autocast = autocast_now(torch)
            depth.n = level + 1
            calls[0] += 1
            if calls[0] > MODULE_CALLS_WATCHED and not self._by_optimizer:
                self._unwatch_modules()  # modules run without a torch.optim step (inference, Keras on torch)

        def after(mod: Any, args: Any, out: Any) -> None:
            depth.n = max(0, getattr(depth, "n", 1) - 1)

        self._module_hooks = [module.register_module_forward_pre_hook(before),
                              module.register_module_forward_hook(after)]
        self._handles += self._module_hooks

    def _unwatch_modules(self) -> None:
        for handle in self._module_hooks:
            handle.remove()
        self._module_hooks = []


def _restarted(meter: _Meter, took: float) -> None:
    """A pass started over within an epoch (``_new_iterator`` said so): the time it took to start is input
    wait, of the step it is in."""
    if meter.restarting:
        meter.restarting = False
        meter.restart_s += took
        meter.waited += took


def _let_go(it: Any) -> None:
    """An iterator's reference to its loader, dropped: with persistent_workers the loader holds its
    iterator, and the pair, a cycle, would keep the worker processes alive until the garbage collector ran."""
    it.__dict__.pop("_colab_magic_loader", None)


class _Hot:
    """What the per-step and per-batch hooks read: kept to one small object (see ``_install``)."""

    __slots__ = ("steady", "first_batch_due", "last_meter")

    def __init__(self) -> None:
        self.steady: dict[Any, array] = {}  # optimizer -> the ends of its steps not yet told, while steady
        self.first_batch_due = False  # an optimizer waits for its epoch's first batch
        self.last_meter: _Meter | None = None  # of the loader whose __next__ ran last


class _Meter:
    """A DataLoader's input wait, as its iterators' ``__next__`` counts it: seconds and batches, running
    totals (a loop reads the change since its last step); with worker processes, also the batches asked
    for and those already received when asked (the workers keep up: the wait is the receiving)."""

    __slots__ = ("ref", "waited", "batches", "asked", "ready", "passes", "ended", "pass_batches", "restarts",
                 "restart_s", "restarting", "dropped_s")

    def __init__(self, ref: Any) -> None:
        self.ref = ref  # weakref.ref to the DataLoader
        self.waited = 0.0
        self.batches = 0
        self.asked = 0
        self.ready = 0
        self.passes = 0  # iterators made (or persistent ones reset)
        self.ended = False  # the last pass ran to its end
        self.pass_batches = 0  # batches drawn before the last pass began
        self.restarts = 0  # passes made anew within an epoch (the one before left after a batch), and their time
        self.restart_s = 0.0
        self.restarting = False  # the pass being made is one of those: its making is still to be timed
        self.dropped_s = 0.0  # shutting down the workers of passes left unfinished


UNMETERED = _Meter(lambda: None)  # an iterator made before the hooks went in: counted, never read
_ABSENT = object()  # a patched class had no attribute of that name of its own: deleted, not put back


@dataclass(frozen=True)
class _Feed:
    """The DataLoader that feeds a loop's steps: held weakly (a loop that makes a new loader each epoch
    drops the old one), with what the report says of it."""

    meter: _Meter  # the DataLoader's (it holds it weakly: a loop that makes a new loader each epoch drops
    # the old one)
    kind: tuple  # the dataset's type and the batch size
    batch_size: int | None
    num_workers: int
    pin_memory: bool
    persistent_workers: bool
    whole_batches: bool  # each sample a whole batch (batch_size=None, a BatchSampler as the sampler)

    @classmethod
    def of(cls, meter: _Meter) -> _Feed:
        loader = meter.ref()
        return cls(meter, _kind(loader), _batch_size(loader),
                   int(getattr(loader, "num_workers", 0) or 0), bool(getattr(loader, "pin_memory", False)),
                   bool(getattr(loader, "persistent_workers", False)),
                   getattr(loader, "batch_size", 0) is None and _sampler_batch(loader) is not None)


def _kind(loader: Any) -> tuple:
    """What a loader made anew each epoch keeps: its dataset's type and its batch size."""
    return type(getattr(loader, "dataset", None)), _batch_size(loader)


def _batch_size(loader: Any) -> int | None:
    """Samples per batch: the loader's own, else its batch sampler's (Hugging Face's Trainer, through
    Accelerate, gives the DataLoader a batch sampler), else its sampler's where that draws whole batches
    (``batch_size=None``: each index a batch)."""
    size = getattr(loader, "batch_size", None)
    if size is None:
        size = getattr(getattr(loader, "batch_sampler", None), "batch_size", None)
    if size is None:
        size = _sampler_batch(loader)
    return size if isinstance(size, int) else None


def _sampler_batch(loader: Any) -> int | None:
    """The batch size of a loader's sampler that draws whole batches (a ``BatchSampler``), else None."""
    size = getattr(getattr(loader, "sampler", None), "batch_size", None)
    return size if isinstance(size, int) else None


def _same_feed(loader: Any, feeding: _Feed | None) -> bool:
    """Whether a new pass over ``loader`` is the next epoch of the steps ``feeding`` fed: the same loader,
    or, once that one is gone, one made anew (the same kind of dataset, the same batch size). While the
    loader that fed the steps is alive, a pass over another one (validation, Lightning's sanity check)
    starts nothing."""
    if feeding is None:
        return False
    current = feeding.meter.ref()
    if loader is current:
        return True
    if current is not None:
        return False
    return _kind(loader) == feeding.kind
