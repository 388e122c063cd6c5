"""The IPython face of colab_magic: parse the arguments, make one call into the core, show the result.

Argument parsing goes through IPython's ``magic_arguments``, which gives ``%magic?`` help from the
docstrings and turns a bad flag into a one-line ``UsageError``.
"""

from __future__ import annotations

import json

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display


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
