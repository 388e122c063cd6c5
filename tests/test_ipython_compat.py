"""The IPython features colab_magic relies on, each exercised through the real shell.

They changed between IPython 7.34 (Colab's, pinned), 8 and 9; this module runs in the main suite
(IPython 9) and in the Colab-parity run (IPython 7.34, .ci/colab-parity), so both ends are checked.
"""

import re

import IPython
from IPython.core.displaypub import CapturingDisplayPublisher
from IPython.display import display

from colab_magic.magics import ColabMagics
from colab_magic.report import TimedFitResult

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_ipython_version_is_one_colab_magic_supports():
    major, minor = IPython.version_info[:2]
    assert (major, minor) >= (7, 34)


def test_cell_keeps_its_ipython_syntax_and_value(ip):
    # shell.transform_cell turns the line magic into Python, as in any cell; the last expression is the value.
    result = ip.run_cell("%%timed_fit --no-history -q\na = 20\n%time b = a + 1\nb * 2")
    result.raise_error()
    assert ip.user_ns["b"] == 21 and result.result == 42


def test_users_traceback_shows_their_line_and_none_of_ours(ip, capsys):
    # compile.cache(..., raw_code=cell) registers the cell's source; __tracebackhide__ hides our frames.
    result = ip.run_cell('%%timed_fit --no-history -q\nvalue = 1\n%time value += 1\nraise ValueError(f"bad value {value}")')
    assert isinstance(result.error_in_exec, ValueError) and str(result.error_in_exec) == "bad value 2"
    captured = capsys.readouterr()
    text = ANSI.sub("", captured.out + captured.err)
    assert 'raise ValueError(f"bad value {value}")' in text
    assert "colab_magic" not in text and "magics.py" not in text


def test_bad_flag_is_a_one_line_usage_error(ip, capsys):
    ip.run_cell("%%timed_fit --nope\npass")
    captured = capsys.readouterr()
    lines = [line for line in ANSI.sub("", captured.out + captured.err).splitlines() if line.strip()]
    assert lines == ["UsageError: unrecognized arguments: --nope"]


def test_help_lists_every_option_from_magic_arguments():
    doc = ColabMagics.timed_fit.__doc__
    for option in ("--interval SECONDS", "--compare", "--whatif [LIST]", "--steps N", "--budget PCT", "--history PATH",
                   "-v NAME", "-q"):
        assert option in doc, option
    # the trial options in a group of their own (argument_group), which says what the trials do
    group = doc[doc.index("--compare and --whatif: the same model timed on each device, or with each fix"):]
    assert "trains copies" in group and "--steps N" in group and "--devices LIST" in group and "--budget PCT" in group
    assert "--interval" not in group
    # the shared output flags (one set of argument objects) on every magic
    for magic in (ColabMagics.timed_fit, ColabMagics.device_info, ColabMagics.fit_history):
        assert all(flag in magic.__doc__ for flag in ("--json", "-o ", "-q ")), magic.__name__


def test_results_display_and_update_in_place(ip, monkeypatch):
    # The live view and the summary both go through display(); an update replaces what a handle showed.
    publisher = CapturingDisplayPublisher()
    monkeypatch.setattr(ip, "display_pub", publisher)
    result = TimedFitResult(reports=[], cell_s=0.25, notes=["a <b>note</b>"])
    handle = display(result, display_id=True)
    handle.update(result)
    first, second = publisher.outputs
    for output in (first, second):
        assert "No training step was seen" in output["data"]["text/plain"]
        assert "a &lt;b&gt;note&lt;/b&gt;" in output["data"]["text/html"]
    assert not first["update"] and second["update"]
    assert first["transient"]["display_id"] == second["transient"]["display_id"] == handle.display_id


def test_loading_registers_no_event_hooks(shell):
    # An exception in a cell hook can break every later cell, and their signatures changed in 8.17:
    # colab_magic registers none (it wraps the cell it runs instead).
    before = {event: list(callbacks) for event, callbacks in shell.events.callbacks.items()}
    shell.run_line_magic("load_ext", "colab_magic")
    try:
        after = {event: list(callbacks) for event, callbacks in shell.events.callbacks.items()}
    finally:
        shell.run_line_magic("unload_ext", "colab_magic")
    assert after == before
