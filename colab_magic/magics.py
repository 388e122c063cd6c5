"""The IPython face of colab_magic: parse the arguments, make one call into the core, show the result.

Argument parsing goes through IPython's ``magic_arguments``, which gives ``%magic?`` help from the
docstrings and turns a bad flag into a one-line ``UsageError``. The core modules are imported inside
the magics, when one first runs: loading the extension imports no framework.
"""

from __future__ import annotations

import ast
import builtins
import difflib
import json
import keyword
import math
import os
import re
import sys
import tempfile
from argparse import ArgumentTypeError, Namespace
from collections.abc import Callable
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import (
    argument,
    argument_group,
    magic_arguments,
    parse_argstring,
)
from IPython.display import display

from . import drive, drive_view
from .defaults import (
    AUTO_INPUT_CHECK_S,
    DEFAULT_BUDGET,
    DEFAULT_INTERVAL,
    DRIVE_TIMEOUT_S,
    DRIVE_VARIABLE,
    HISTORY_COUNT,
    INPUT_CHECK,
    INPUT_CHECK_MODES,
    MAX_BUDGET_PCT,
    MAX_INTERVAL,
    MAX_TRIAL_STEPS,
    MIN_INTERVAL,
)
from .defaults import MIN_TIMED_STEPS as DEFAULT_TRIAL_STEPS
from .environment import detect, front_end
from .observer import CellObserver, RunningFit
from .session import Session

DEFAULT_BUDGET_PCT = 100 * DEFAULT_BUDGET

LIVE_SETTING = "COLAB_MAGIC_LIVE"  # "1": --live by default in notebooks

# The output flags every magic shares, as %timeit has them.
JSON = argument("--json", action="store_true", help="print the result as JSON (the same fields as to_dict())")
OUTPUT = argument("-o", dest="output", action="store_true", help="return the result object (as %%timeit -o does)")
QUIET = argument("-q", dest="quiet", action="store_true", help="print nothing (with -o: just return the object)")


def _help(text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def attach(magic: Callable[..., Any]) -> Callable[..., Any]:
        magic.__doc__ = text
        return magic

    return attach


def output_flags(magic: Callable[..., Any]) -> Callable[..., Any]:
    """--json, -o and -q on a magic: the argument decorators are objects, reused here."""
    return JSON(OUTPUT(QUIET(magic)))


def _show(result: Any, args: Namespace, returned: bool = True, front: Any = None) -> None:
    """The display half shared by the magics: ``-q`` silent, ``--json`` raw data, else rich output;
    with ``-o`` the returned object shows itself (as Out[n]), so it is not shown twice (as with
    %timeit -o). ``returned``: whether it is returned (not when the cell's exception is re-raised).
    ``front``: %%timed_fit's front end, which shows the result in the place it kept for it (the
    --live line, or the display reserved when the cell started).
    A failure to show is one line on stderr: the result itself is kept (-o, -v)."""
    silent = args.quiet or (args.output and returned and not getattr(args, "json", False))
    if front is not None:
        try:
            if front.finish(None if silent or getattr(args, "json", False) else result):
                return
        except Exception:  # noqa: BLE001 - the summary is then shown the usual way
            pass
    if silent:
        return
    try:
        if getattr(args, "json", False):
            print(json_text(result.to_dict()))
        else:
            display(result)
    except Exception as exc:  # noqa: BLE001 - never a traceback from inside the package
        print(f"colab_magic could not show the result ({type(exc).__name__}); it is kept in the result object.",
              file=sys.stderr)


def json_text(data: Any) -> str:
    """--json's text: strict JSON (NaN and infinities, which a history record may hold, as null)."""
    return json.dumps(_finite(data), indent=2, default=str, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _parse(magic: Callable[..., Any], line: str) -> Namespace:
    """parse_argstring, with unbalanced quotes as a one-line UsageError (shlex raises ValueError), and
    a flag's own check said as it words it ("--budget must be...", not "argument --budget: --budget...")."""
    try:
        return parse_argstring(magic, line)
    except ValueError as exc:
        raise UsageError(f"cannot read the arguments: {exc}") from None
    except UsageError as exc:
        text = str(exc)
        match = re.match(r"argument ([^:]+): (.*)$", text, re.S)
        if match and match.group(2).startswith(tuple(match.group(1).split("/"))):
            raise UsageError(match.group(2)) from None
        unknown = re.match(r"unrecognized arguments: (.*)$", text)
        if unknown:
            raise UsageError(text + _suggestion(magic, unknown.group(1).split())) from None
        raise


def _suggestion(magic: Callable[..., Any], unknown: list[str]) -> str:
    """"; did you mean --compare?" for a flag a letter or two off one the magic has ("--comapre")."""
    flags = [flag for action in magic.parser._actions for flag in action.option_strings]  # type: ignore[attr-defined]
    close = [difflib.get_close_matches(word, flags, n=1, cutoff=0.75) for word in unknown if word.startswith("-")]
    found = [match[0] for match in close if match]
    return f"; did you mean {' '.join(found)}?" if found else ""


def _optional_path(text: str | None, flag: str) -> Path | None:
    return None if text is None else _path(text, flag)


def _path(text: str, flag: str) -> Path:
    """A path from a flag, checked before anything runs: no empty name, NUL byte or unencodable text,
    and ~user expanded (or refused)."""
    text = _unquote(text)
    if not text.strip():
        raise UsageError(f"{flag} needs a path, not an empty string")
    if "\0" in text:
        raise UsageError(f"{flag}: a path cannot contain a NUL byte")
    try:
        text.encode(sys.getfilesystemencoding())
    except UnicodeEncodeError:
        raise UsageError(f"{flag}: the path has characters this file system cannot encode") from None
    try:
        return Path(text).expanduser()
    except RuntimeError as exc:  # "Could not determine home directory" for ~nosuchuser
        raise UsageError(f"{flag}: cannot expand {text.split('/')[0]!r} ({exc})") from None


def _interval(text: str) -> float:
    value = float(text)  # argparse words a ValueError itself: "invalid float value"
    if not (math.isfinite(value) and MIN_INTERVAL <= value <= MAX_INTERVAL):
        raise ArgumentTypeError(f"--interval must be between {MIN_INTERVAL:g} and {MAX_INTERVAL:g} seconds")
    return value


def _steps(text: str) -> int:
    value = int(text)
    if value < 2:
        raise ArgumentTypeError("--steps must be at least 2 (a mean and its scatter need two steps)")
    if value > MAX_TRIAL_STEPS:
        raise ArgumentTypeError(f"--steps must be at most {MAX_TRIAL_STEPS} (a trial times an epoch at most)")
    return value


def _budget(text: str) -> float:
    value = float(text.removesuffix("%"))  # "10%" reads as the help says it: in % of your epoch
    if not (math.isfinite(value) and 0 < value <= MAX_BUDGET_PCT):
        raise ArgumentTypeError(f"--budget must be a percentage of an epoch, above 0 and at most {MAX_BUDGET_PCT}")
    return value


def _timeout(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise ArgumentTypeError("--timeout must be a positive number of seconds")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ArgumentTypeError("-n must be at least 1")
    return value


# argparse names a type in its own message ("invalid float value: 'soon'"): by what it reads
_interval.__name__ = _budget.__name__ = _timeout.__name__ = "float"
_steps.__name__ = _count.__name__ = "int"


def _variable_flag(flag: str) -> Callable[[str], str]:
    def check(name: str) -> str:
        try:
            return _variable(name, flag)
        except UsageError as exc:
            raise ArgumentTypeError(str(exc)) from None

    check.__name__ = "variable name"  # argparse names the type in its own messages
    return check


# Names IPython keeps in the user's namespace for itself: the cell history (In, _i, _ii, _i3...), the
# output history (Out, _, __, ___, _3...), the directory history, the shell and the exit helpers.
_IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "_", "__", "___", "_i", "_ii", "_iii",
                            "_ih", "_oh", "_dh", "_sh"})
_NUMBERED_HISTORY = re.compile(r"_i?\d+")


def _variable(name: str, flag: str) -> str:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(f"{flag} needs a Python variable name, not {name!r}")
    if (name.startswith("__") and name.endswith("__")) or name in _IPYTHON_NAMES or _NUMBERED_HISTORY.fullmatch(name):
        # __builtins__ replaced breaks every later cell (len() looked up in our result)
        raise UsageError(f"{flag} {name} is a name Python or IPython keeps for itself: choose another name")
    if hasattr(builtins, name):
        raise UsageError(f"{flag} {name} would hide Python's built-in {name!r}: choose another name")
    return name


TIMED_FIT_HELP = """Run the cell; time every Keras Model.fit in it per step and per epoch (and every PyTorch
optimizer step, or colab_magic.step() in any other loop), and sample the GPUs and the host
while it trains. Then show the answer and the evidence for it.

The cell runs in your namespace, as with %%time. A fit that raises says where it failed
(epoch, step), then the exception is raised again with its traceback; Ctrl-C still shows
the summary of what ran (marked incomplete), then is raised again.

--live shows epoch, step, steps/s, time left, GPU utilisation (SM activity where read),
memory, power, temperature and CPU, about once a second, and marks memory near full and
throttled clocks; the summary takes its place at the end. In a terminal it is one line on
stderr, drawn only while Keras' own bar is off (verbose=0 or 2).

--compare and --whatif run trials after the cell: a copy of each model that was trained,
compiled, warmed up, then timed for about 0.5 s of steps (or an epoch, if shorter; at least
--steps). Together they may cost --budget % of your epoch (default 10), each flag; a
default --whatif leaves out the changes that would go over it, and says so.

--backup adds keras.callbacks.BackupAndRestore (unless the fit has its own), in a folder per
model (its layers and shapes), so a cell run again after a disconnect starts after the last
finished epoch; the headline says so. Keras removes the backup when the fit completes. In
Colab, after a fit's first epoch, a line warns when the fit will likely outlast the runtime.

In text (a terminal, a notebook's saved text) it shows the short answer: the headline, the
verdicts with their fixes, a line per trial flag and the notes; -d shows every table below.
In a notebook the answer opens the cell's output (the framework's log below it), and the
HTML keeps the details folded.

What it shows, in this order:
  headline   one line per fit: where it trained, ms/step and s/epoch, the speed-up over
             the CPU when --compare measured one, and the first verdict with its fix
  verdicts   what holds the fit back, with the evidence and the fix: GPU unused or idle,
             input-bound (steps wait for data), throttled clocks, memory nearly full,
             dispatch-bound (steps so short that launching them is the cost), SMs or tensor
             cores idle (GPM), compilation dominating a short run; or that none applies
  --compare  the same model timed on each device, from the same weights: ms/step,
             projected s/epoch and the speed-up, with 95% intervals.
             It trains copies of your model after the cell; your model, weights and
             optimizer are not touched
  --whatif   the fixes the verdicts name, each timed on a copy (steps_per_execution=32,
             batch x4, mixed precision, jit_compile=True): samples/s and the speed-up
             over the model as it is, with its interval; the verdicts quote them
  training   ms/step (median, p10, p90, mean; the first, compiling step left out),
             s/epoch, samples/s, FLOPs and MFU where known
  details    per epoch (time, validation, overhead outside the steps, energy), the host
             and each GPU side by side, the sampler's own cost

Examples::

    %%timed_fit
    model.fit(x, y, epochs=5)

    %%timed_fit --compare          # also time the model on the CPU and the GPU
    %%timed_fit --whatif           # and measure the fixes the verdicts name
    %%timed_fit --whatif spe,mixed # just these: steps_per_execution=32, mixed precision
    %%timed_fit --plot             # a timeline of GPU and CPU use, after the verdicts
    %%timed_fit --live             # a status line, updated in place while it trains
    %%timed_fit --backup           # after a disconnect, the same cell resumes the fit
    %%timed_fit -d                 # every table in the text too (per epoch, hardware)
    %%timed_fit -o                 # return the TimedFitResult (as %timeit -o)
    %%timed_fit -q -v R            # silent; the result in variable R (R.to_dict())
"""


@magics_class
class ColabMagics(Magics):
    shell: Any  # IPython's InteractiveShell: always set once the magics are registered
    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell, **kwargs)
        self._session = Session()  # what this kernel session was told already

    @magic_arguments()
    @argument("--frameworks", nargs="?", const="", metavar="LIST", help="also import frameworks not imported yet, to ask which devices they see: TensorFlow, Keras and PyTorch where installed, or those named (comma-separated: tensorflow, keras, torch, jax)")
    @output_flags
    @line_magic
    def device_info(self, line: str = "") -> Any:
        """Show the GPUs (through NVML), the host, and whether the frameworks see the GPU.

        Sections: Runtime (where the kernel runs); Diagnosis (only when something is wrong: e.g. a
        GPU the hardware has but TensorFlow does not see, with the likely cause and the fix); GPUs
        (name, driver and CUDA versions, memory, utilisation, temperature, power, throttling); GPU
        processes; Host (CPU cores, RAM, disk); Frameworks (the devices each imported framework
        sees). Frameworks already imported are asked; --frameworks imports the installed ones of
        TensorFlow, Keras and PyTorch to ask them too, --frameworks torch just PyTorch (JAX only once
        something has started it, or when named: starting it takes GPU memory).

        Examples::

            %device_info                  # before training: is the GPU there, and seen?
            %device_info --frameworks     # ask TensorFlow, Keras and PyTorch even if not imported yet
            %device_info --frameworks torch
            info = %device_info -q -o     # the data, for code: info.to_dict()
        """
        args = _parse(self.device_info, line)
        from .devices import collect
        from .frameworks import requested

        try:
            to_import = [] if args.frameworks is None else requested(args.frameworks)
        except ValueError as exc:
            raise UsageError(f"--frameworks: {exc}") from None
        info = collect(self.shell, import_frameworks=to_import)
        _show(info, args)
        return info if args.output else None

    @magic_arguments()
    @argument(
        "--interval",
        type=_interval,
        default=DEFAULT_INTERVAL,
        metavar="SECONDS",
        help=f"how often the GPUs and host are sampled while a fit runs (default {DEFAULT_INTERVAL})",
    )
    @argument("--history", metavar="PATH", help="the run history file (default: <MyDrive>/colab_magic/runs.jsonl after %%mount_drive, else ~/.colab_magic/runs.jsonl)")
    @argument("--no-history", action="store_true", help="don't record this run")
    @argument("--input-check", choices=INPUT_CHECK_MODES, default=INPUT_CHECK, metavar="|".join(INPUT_CHECK_MODES), help=f"for tf.data inputs: measure how much of a step waits for data (default {INPUT_CHECK}: fits of {AUTO_INPUT_CHECK_S:g} s or more)")
    @argument("--plot", action="store_true", help="show a timeline of GPU and CPU use (needs matplotlib)")
    @argument("--plot-file", metavar="PATH", help="save the timeline to PATH (png, svg, pdf...; a number is added per fit when there are several)")
    @argument("-v", dest="variable", type=_variable_flag("-v"), metavar="NAME", help="store the TimedFitResult in variable NAME")
    @argument("--live", action="store_true", help="a status line updated in place about once a second while fits run (epoch, step, steps/s, time left, GPU, memory, power, CPU)")
    @argument("--backup", nargs="?", const="", metavar="DIR", help="resume after a disconnect: Keras' BackupAndRestore for each fit, in DIR/<model> (default: <MyDrive>/colab_magic/backup after %%mount_drive, else ~/.colab_magic/backup); the same cell run again resumes from the last finished epoch")
    @output_flags
    @argument_group("--compare and --whatif: the same model timed on each device, or with each fix (trains copies of it after the cell; your model is not touched)")
    @argument("--compare", action="store_true", help="also time each trained model on the CPU and on the GPU, with the speed-up and its interval")
    @argument("--whatif", nargs="?", const="", metavar="LIST", help="also time each trained model with the fixes the verdicts name: steps_per_execution (spe), batch_x4 (batch), mixed_precision (mixed), jit_compile (jit); comma-separated (default: each that applies and fits the budget; those named run whatever the budget)")
    @argument("--steps", type=_steps, default=DEFAULT_TRIAL_STEPS, metavar="N", help=f"the fewest steps each trial times (default {DEFAULT_TRIAL_STEPS}, at most {MAX_TRIAL_STEPS}; more than the default only within an epoch and the budget); each times about 0.5 s of steps, or an epoch if shorter")
    @argument("--budget", type=_budget, default=DEFAULT_BUDGET_PCT, metavar="PCT", help=f"what the trials may cost, in %% of your epoch (default {DEFAULT_BUDGET_PCT:g}), for --compare and again for --whatif")
    @argument("--devices", metavar="LIST", help="comma-separated Keras devices (cpu:0,gpu:1), or 'all'")
    @argument("-d", "--details", action="store_true", help="in text, every table (per epoch, hardware, sampler), not just the answer; HTML has them folded")
    @_help(TIMED_FIT_HELP)  # the help is long: kept beside the class, read by magic_arguments as the docstring
    @cell_magic
    def timed_fit(self, line: str, cell: str) -> Any:
        __tracebackhide__ = True  # the user's traceback shows their cell, not this magic
        args = _parse(self.timed_fit, line)
        options = timed_fit_options(args, self.shell, self._session)
        from .cell import time_cell

        def run() -> Any:
            __tracebackhide__ = True
            return self._run_cell(cell)

        shown = _FrontEnd(self.shell, args)
        result, value, error = time_cell(run, options, shown)
        if args.variable:
            self.shell.user_ns[args.variable] = result
        for problem in result.problems:
            print(problem, file=sys.stderr)
        _show(result, args, returned=error is None, front=shown)
        for said in result.said:
            self._say(said, args)
        if error is not None:
            raise error
        return result if args.output else value

    def _run_cell(self, cell: str) -> Any:
        """Run the cell as %%time does: the user's namespace, and tracebacks that show their lines."""
        __tracebackhide__ = True
        shell = self.shell
        source = shell.transform_cell(cell)
        tree = shell.transform_ast(shell.compile.ast_parse(source))
        filename = shell.compile.cache(source, shell.execution_count, raw_code=cell)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            # Like %%time, the value of a final expression is the cell's value.
            last = ast.Expression(tree.body.pop().value)
            ast.fix_missing_locations(last)
        exec(shell.compile(tree, filename, "exec"), shell.user_ns)
        if last is not None:
            return eval(shell.compile(last, filename, "eval"), shell.user_ns)
        return None

    @magic_arguments()
    @argument("--mountpoint", default=drive.DEFAULT_MOUNTPOINT, metavar="PATH", help=f"Colab: where Drive is mounted (default {drive.DEFAULT_MOUNTPOINT})")
    @argument("--force-remount", action="store_true", help="Colab: mount again even if already mounted")
    @argument("--readonly", action="store_true", help="Colab: mount read-only")
    @argument("--timeout", type=_timeout, default=DRIVE_TIMEOUT_S, metavar="SECONDS", help=f"Colab: how long to wait for the mount or unmount (default {DRIVE_TIMEOUT_S:g})")
    @argument("--unmount", action="store_true", help="Colab: flush pending writes and unmount")
    @argument("--status", action="store_true", help="show what is mounted, where, and the free space")
    @argument("--local", metavar="PATH", help=f"the folder that stands in for Drive outside Colab (default ${drive.ENV_LOCAL}, else {drive.DEFAULT_LOCAL})")
    @argument("--var", type=_variable_flag("--var"), default=DRIVE_VARIABLE, metavar="NAME", help=f"the variable that gets the MyDrive path (default {DRIVE_VARIABLE})")
    @QUIET
    @line_magic
    def mount_drive(self, line: str = "") -> Path | None:
        """Mount Google Drive in Colab; elsewhere a local folder with the same MyDrive layout stands in.

        Returns the MyDrive folder as a pathlib.Path and sets it in a variable (DRIVE), so that a
        notebook that writes under DRIVE runs unchanged in Colab and locally. After it, the run
        history of %%timed_fit is kept on Drive (it survives the runtime being recycled).

        Examples::

            %mount_drive                           # then: open(DRIVE / "data.csv")
            %mount_drive --local ~/colab_drive     # outside Colab: this folder stands in
            %mount_drive --status
        """
        args = _parse(self.mount_drive, line)
        if args.unmount and args.status:
            raise UsageError("--unmount and --status don't go together")
        runtime = detect(self.shell)
        local_path = _optional_path(args.local, "--local")
        local = str(local_path) if local_path is not None else None
        mountpoint = str(_path(args.mountpoint, "--mountpoint"))
        if args.status:
            self._say(drive_view.status(drive.current()), args)
            return None
        try:
            if args.unmount:
                self._say(drive_view.unmounted(drive.unmount(runtime, args.timeout)), args)
                return None
            mounted = drive.mount(runtime, mountpoint, args.force_remount, args.readonly, args.timeout, local)
        except drive.DriveError as exc:
            raise UsageError(str(exc)) from None
        replaced = args.var in self.shell.user_ns and self.shell.user_ns[args.var] != mounted.mydrive
        self.shell.user_ns[args.var] = mounted.mydrive
        self._say(drive_view.mounted(mounted, args.var, replaced), args)
        return mounted.mydrive

    @magic_arguments()
    @argument("-n", dest="count", type=_count, default=HISTORY_COUNT, metavar="N", help=f"how many of the latest runs to list (default {HISTORY_COUNT})")
    @argument("--compare", nargs="*", metavar="ID", help="runs side by side: the ids given, or by default the latest run of the newest model on each device")
    @argument("--history", metavar="PATH", help="the run history file (default as for %%timed_fit)")
    @argument("--cluster", nargs="?", const="", metavar="RUN", help="the processes of one multi-process run side by side (default: the latest), with the one that holds the others back")
    @output_flags
    @line_magic
    def fit_history(self, line: str = "") -> Any:
        """List the runs %%timed_fit recorded, or show chosen runs side by side.

        With %mount_drive, the history lives on Drive, so a run on Colab's CPU runtime and a later
        one on its GPU runtime (different machines) end up in one table. Columns: id (for
        --compare), when, where (runtime and host), model, kind (fit, or a --compare timing),
        device, ms/step (median), s/epoch (measured, or projected from the steps), samples/s.

        Examples::

            %fit_history                  # the latest 20 runs
            %fit_history --compare        # the newest model's latest run on each device, side by side
            %fit_history --compare 80986aa6 f3836a8f
            %fit_history --cluster        # the processes of the latest multi-process run
        """
        args = _parse(self.fit_history, line)
        from .history import (
            HistoryError,
            HistoryView,
            read,
            select,
            select_cluster,
            straggler,
        )

        path = _history_path(args.history)
        try:
            records, warnings = read(path)
        except HistoryError as exc:
            raise UsageError(str(exc)) from None
        if args.cluster is not None and args.compare is not None:
            raise UsageError("--cluster and --compare don't go together")
        if args.cluster is not None:
            try:
                chosen, note = select_cluster(records, args.cluster or None)
            except KeyError as exc:
                raise UsageError(str(exc.args[0])) from None
            view = HistoryView(str(path), chosen, warnings=warnings, note=note, cluster=True)
            view.verdict = straggler(view.runs)
        elif args.compare is None:
            view = HistoryView(str(path), records[-args.count:], warnings=warnings)
        else:
            try:
                chosen, note = select(records, args.compare)
            except KeyError as exc:
                raise UsageError(str(exc.args[0])) from None
            view = HistoryView(str(path), chosen, compare=True, warnings=warnings, note=note)
        _show(view, args)
        return view if args.output else None

    @staticmethod
    def _say(text: str, args: Namespace) -> None:
        if not args.quiet:
            print(text)


def _cell_magic_usage(magic: Any) -> None:
    """magic_arguments writes every usage as ``%name``: a cell magic is called as ``%%name``."""
    name = magic.__name__
    magic.__doc__ = magic.__doc__.replace(f"%{name} [", f"%%{name} [", 1)


_cell_magic_usage(ColabMagics.timed_fit)


def timed_fit_options(args: Namespace, shell: Any, session: Session) -> Any:
    """``%%timed_fit``'s arguments as one :class:`~colab_magic.cell.TimedFitOptions`, checked before the
    cell runs (the flags' own checks ran as argparse types): each mistake a one-line UsageError."""
    trials_asked = args.compare or args.whatif is not None
    if (args.steps != DEFAULT_TRIAL_STEPS or args.budget != DEFAULT_BUDGET_PCT) and not trials_asked:
        raise UsageError("--steps and --budget go with --compare or --whatif")
    if args.devices and not args.compare:
        raise UsageError("--devices goes with --compare")
    if args.history and args.no_history:
        raise UsageError("--history and --no-history don't go together")
    plot_file = _optional_path(args.plot_file, "--plot-file")
    if plot_file is not None and not plot_file.parent.is_dir():
        raise UsageError(f"--plot-file: the folder {plot_file.parent} does not exist")
    if plot_file is not None and os.path.lexists(plot_file) and not plot_file.is_file():
        # a pipe would block the cell in savefig until Ctrl-C; a folder or a device is no place for a PNG
        raise UsageError(f"--plot-file: {plot_file} is there and is not a regular file; give a new path or a file")
    if args.plot or args.plot_file:
        from .plot import INSTALL_HINT, available

        if not available():
            raise UsageError(INSTALL_HINT)
    from .cell import TimedFitOptions, WhatIfRequest
    from .comparison import TrialOptions

    devices = [_unquote(d.strip()) for d in _unquote(args.devices).split(",") if d.strip()] if args.devices else None
    if devices:
        _check_devices(devices)
    return TimedFitOptions(
        interval=args.interval,
        input_check=args.input_check,
        history_path=None if args.no_history else _history_path(args.history),
        backup_root=_backup_root(args.backup) if args.backup is not None else None,
        compare=args.compare,
        whatif=WhatIfRequest(_whatif_variants(args.whatif)) if args.whatif is not None else None,
        trials=TrialOptions(args.steps, devices, args.budget / 100, args.interval),
        plot=args.plot,
        plot_file=plot_file,
        inline=front_end(shell) != "terminal",
        runtime=detect(shell),
        replaced_variable=args.variable if args.variable in shell.user_ns else None,
        details=args.details,
        session=session,
    )


def _check_devices(devices: list[str]) -> None:
    """--devices against what the framework sees, before the cell runs (importing Keras now, as the
    cell would), with the names it knows."""
    from .comparison import devices_to_compare

    try:
        devices_to_compare(devices)
    except ValueError as exc:
        raise UsageError(f"--devices: {exc}") from None


def _whatif_variants(text: str) -> list | None:
    from .variants import parse

    try:
        return parse(_unquote(text))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


class _Shown:
    """A display's content as text and HTML (the reserved place's, the cleared bar's)."""

    def __init__(self, text: str = "") -> None:
        self.text = text

    def _repr_html_(self) -> str:
        return f'<span style="opacity:.6">{self.text}</span>' if self.text else ""

    def __repr__(self) -> str:
        return self.text


RESERVED = "%%timed_fit: measuring; the answer will be shown here."


class _FrontEnd(CellObserver):
    """What the user sees while a ``%%timed_fit`` cell runs: the --live line, lines said at once, and
    the trials' progress bar; and where the answer goes: in a notebook, the place kept for it when the
    cell started (the --live line's, else a display of its own), so that it opens the cell's output,
    above the framework's own log."""

    def __init__(self, shell: Any, args: Namespace) -> None:
        self.shell, self.quiet = shell, args.quiet
        self.where = front_end(shell)
        self.live: Any = None
        self.slot: Any = None
        # COLAB_MAGIC_LIVE=1 makes --live the default in notebooks (a terminal keeps Keras' own bar)
        if (args.live or (os.environ.get(LIVE_SETTING) == "1" and self.where != "terminal")) and not args.quiet:
            from .live_view import LiveView

            self.live = LiveView("terminal" if self.where == "terminal" else "notebook")
        elif self.where != "terminal" and not (args.quiet or args.output or args.json):
            self.slot = display(_Shown(RESERVED), display_id=True)

    def finish(self, result: Any) -> bool:
        """Show ``result`` in the place kept for it (None: clear that place); True when shown there."""
        if self.live is not None:
            return bool(self.live.finish(result))
        if self.slot is not None:
            try:
                self.slot.update(result if result is not None else _Shown())
            except Exception:
                self.slot.update(_Shown())  # no "measuring" line left behind; the caller shows it another way
                raise
            return result is not None
        if result is not None and self.where == "terminal":
            print()  # after the framework's last line
        return False

    def fit_began(self, fit: RunningFit) -> None:
        if self.live is not None:
            self.live.watch(fit)

    def say(self, text: str) -> None:
        if self.quiet:
            return
        if self.live is not None:
            self.live.say(text)
        else:
            print(text, file=sys.stderr)

    def cell_ended(self) -> None:
        if self.live is not None:
            self.live.stop()

    def progress(self, total: int) -> Any:
        if self.quiet:
            return None
        if self.where == "terminal":
            from tqdm.std import tqdm as text_bar

            class TextBar(text_bar):
                monitor_interval = 0  # tqdm's monitor thread would outlive the cell

            return TextBar(total=total, desc="trials", unit="trial", leave=False)  # leave=False: erased
        if self.where != "widgets":
            # A notebook without ipywidgets cannot redraw a text bar: each refresh would stay in the
            # saved output. No bar then (tqdm.auto would warn and draw one anyway).
            return None
        return _widget_bar(total)


def _widget_bar(total: int) -> Any:
    """tqdm's notebook bar in a display of its own, replaced by nothing when it closes: closed below its
    total (trials left out or cut short) it would turn red, and even closed complete its widget's text
    would stay in the saved notebook."""
    from tqdm.notebook import tqdm as widget_bar

    class Bar(widget_bar):
        monitor_interval = 0
        handle: Any

        def close(self) -> None:
            if getattr(self, "handle", None) is None:
                return super().close()
            handle, self.handle = self.handle, None
            self.total = self.n  # a bar that ends complete is never drawn red, even for a moment
            super().close()
            handle.update(_Shown())

    bar = Bar(total=total, desc="trials", unit="trial", leave=False, display=False)
    # The widget's view by hand, under our display id: display(widget, display_id=...) loses the id on
    # ipywidgets 7 (Colab's), whose widgets display themselves (_ipython_display_). No text fallback:
    # where no widget can be drawn, nothing is.
    view = {"version_major": 2, "version_minor": 0, "model_id": bar.container.model_id}
    bar.handle = display({WIDGET_VIEW: view, "text/plain": ""}, raw=True, display_id=True)
    return bar


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"  # ipywidgets 7 and 8: protocol 2.0


def _history_path(flag: str | None) -> Path:
    from .history import default_path

    return _path(flag, "--history") if flag is not None else default_path()


def _backup_root(flag: str) -> Path:
    """--backup's folder, made and checked before the cell runs: a file there, or a folder that
    cannot be written, is a one-line error now rather than a failed fit later."""
    root = drive.app_folder() / "backup" if flag == "" else _path(flag, "--backup")
    if root.exists() and not root.is_dir():
        raise UsageError(f"--backup: {root} is a file, not a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        raise UsageError(f"--backup: cannot write in {root} ({exc.strerror or exc})") from None
    return root


def _unquote(text: str) -> str:
    # magic_arguments splits like a shell but keeps the quotes: '%mount_drive --local "my drive"'.
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text
