"""colab_magic: is my GPU actually helping, how much, and why not more?

``%load_ext colab_magic`` registers the magics. Loading stays cheap: the magics module imports no
deep-learning framework and the heavy modules are imported when a magic first runs.
"""

__version__ = "0.1.0"

_registered: dict[str, list[str]] = {}


def load_ipython_extension(ipython):
    from .magics import ColabMagics

    magics = ColabMagics(ipython)
    ipython.register_magics(magics)
    # Remember what we registered so unload removes exactly that, and nothing of the user's.
    _registered.clear()
    _registered.update({kind: list(names) for kind, names in magics.magics.items() if names})


def unload_ipython_extension(ipython):
    from . import nvml

    table = ipython.magics_manager.magics
    for kind, names in _registered.items():
        for name in names:
            table[kind].pop(name, None)
    ipython.magics_manager.registry.pop("ColabMagics", None)
    _registered.clear()
    nvml.stop_all()
