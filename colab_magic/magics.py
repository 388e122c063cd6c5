"""The IPython face of colab_magic: parse the arguments, make one call into the core, show the result.

Argument parsing goes through IPython's ``magic_arguments``, which gives ``%magic?`` help from the
docstrings and turns a bad flag into a one-line ``UsageError``.
"""

from __future__ import annotations

import ast
import json

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from . import drive
from .tables import fmt_bytes

DEFAULT_INTERVAL = 0.5  # seconds; the sampler's own default, repeated here to keep loading light


def _show(result, args) -> None:
    """The display half shared by the magics: ``-q`` silent, ``--json`` raw data, else rich output."""
    if args.quiet:
        return
    if getattr(args, "json", False):
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        display(result)


@magics_class
class ColabMagics(Magics):
    @magic_arguments()
    @argument("--frameworks", action="store_true", help="also import TensorFlow and Keras to ask which devices they see")
    @argument("--json", action="store_true", help="print the report as JSON")
    @argument("-o", dest="output", action="store_true", help="return the DeviceInfo object")
    @argument("-q", dest="quiet", action="store_true", help="print nothing (with -o: just return the object)")
    @line_magic
    def device_info(self, line=""):
        """Show the GPUs (through NVML), the host, and whether the frameworks see the GPU.

        Frameworks already imported (TensorFlow, Keras, JAX, torch) are asked which devices they
        see; a GPU that the hardware has but a framework misses gets a diagnosis with the fix.
        """
        args = parse_argstring(self.device_info, line)
        from .devices import collect

        info = collect(self.shell, import_frameworks=args.frameworks)
        _show(info, args)
        return info if args.output else None

    @magic_arguments()
    @argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL,
        metavar="SECONDS",
        help=f"how often the GPUs and host are sampled while a fit runs (default {DEFAULT_INTERVAL})",
    )
    @argument("--json", action="store_true", help="print the result as JSON")
    @argument("-o", dest="output", action="store_true", help="return the TimedFitResult")
    @argument("-v", dest="variable", metavar="NAME", help="store the TimedFitResult in variable NAME")
    @argument("-q", dest="quiet", action="store_true", help="print no summary")
    @cell_magic
    def timed_fit(self, line, cell):
        """Run the cell; time every Keras Model.fit in it per step and per epoch, and sample the
        GPUs and the host while it trains. Then show a side-by-side summary.

        The cell runs in your namespace, as with %%time. An exception or Ctrl-C still shows the
        summary of what ran (marked incomplete), then is raised again.
        """
        __tracebackhide__ = True  # the user's traceback shows their cell, not this magic
        args = parse_argstring(self.timed_fit, line)
        if not args.interval > 0:
            raise UsageError("--interval must be a positive number of seconds")
        if args.variable is not None and not args.variable.isidentifier():
            raise UsageError(f"-v needs a Python variable name, not {args.variable!r}")
        from .fit_hook import time_cell

        def run():
            __tracebackhide__ = True
            return self._run_cell(cell)

        result, value, error = time_cell(run, args.interval)
        if args.variable:
            self.shell.user_ns[args.variable] = result
        _show(result, args)
        if error is not None:
            raise error
        return result if args.output else value

    def _run_cell(self, cell):
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
    @argument("--mountpoint", default=drive.DEFAULT_MOUNTPOINT, metavar="PATH", help="Colab: where Drive is mounted (default /content/drive)")
    @argument("--force-remount", action="store_true", help="Colab: mount again even if already mounted")
    @argument("--readonly", action="store_true", help="Colab: mount read-only")
    @argument("--timeout", type=float, default=120.0, metavar="SECONDS", help="Colab: how long to wait for the mount or unmount (default 120)")
    @argument("--unmount", action="store_true", help="Colab: flush pending writes and unmount")
    @argument("--status", action="store_true", help="show what is mounted, where, and the free space")
    @argument("--local", metavar="PATH", help=f"the folder that stands in for Drive outside Colab (default ${drive.ENV_LOCAL}, else {drive.DEFAULT_LOCAL})")
    @argument("--var", default="DRIVE", metavar="NAME", help="the variable that gets the MyDrive path (default DRIVE)")
    @argument("-q", dest="quiet", action="store_true", help="print nothing")
    @line_magic
    def mount_drive(self, line=""):
        """Mount Google Drive in Colab; elsewhere a local folder with the same MyDrive layout stands in.

        Returns the MyDrive folder as a pathlib.Path and sets it in a variable (DRIVE), so that a
        notebook that writes under DRIVE runs unchanged in Colab and locally.
        """
        args = parse_argstring(self.mount_drive, line)
        if args.unmount and args.status:
            raise UsageError("--unmount and --status don't go together")
        if not args.timeout > 0:
            raise UsageError("--timeout must be a positive number of seconds")
        if not args.var.isidentifier():
            raise UsageError(f"--var needs a Python variable name, not {args.var!r}")
        from .environment import detect

        runtime = detect(self.shell)
        local = _unquote(args.local) if args.local is not None else None
        mountpoint = _unquote(args.mountpoint)
        if args.status:
            self._say(_drive_status(), args)
            return None
        try:
            if args.unmount:
                self._say(drive.unmount(runtime, args.timeout), args)
                return None
            mounted = drive.mount(runtime, mountpoint, args.force_remount, args.readonly, args.timeout, local)
        except drive.DriveError as exc:
            raise UsageError(str(exc)) from None
        self.shell.user_ns[args.var] = mounted.mydrive
        self._say(f"{mounted.message} {args.var} = {str(mounted.mydrive)!r}", args)
        return mounted.mydrive

    @staticmethod
    def _say(text: str, args) -> None:
        if not args.quiet:
            print(text)


def _unquote(text: str) -> str:
    # magic_arguments splits like a shell but keeps the quotes: '%mount_drive --local "my drive"'.
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _drive_status() -> str:
    mounted = drive.current()
    if mounted is None:
        return "No drive mounted by %mount_drive in this kernel yet."
    kind = "Google Drive" if mounted.mode == "colab" else "Local stand-in for Google Drive"
    mode = ", read-only" if mounted.readonly else ""
    return f"{kind} at {mounted.root}{mode}; files under {mounted.mydrive}; {fmt_bytes(mounted.free_bytes())} free."
