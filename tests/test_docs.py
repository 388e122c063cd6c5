"""The README starts with the user and stays short; the flag reference is what the parsers say (it is
generated: a flag added, removed or reworded without running docs/make_flags.py fails here); every
document the README links to is there."""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_flag_reference_is_what_the_parsers_say():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from make_flags import reference
    finally:
        sys.path.remove(str(ROOT / "docs"))
    assert (ROOT / "docs" / "flags.md").read_text() == reference(), "run: .venv/bin/python docs/make_flags.py"
    text = reference()
    from colab_magic.magics import ColabMagics

    for name in ("device_info", "mount_drive", "timed_fit", "fit_history"):
        for action in getattr(ColabMagics, name).parser._actions:
            for flag in action.option_strings:
                assert flag == "-h" or f"`{flag}" in text, (name, flag)


def test_the_readme_starts_with_the_user_and_is_short():
    readme = (ROOT / "README.md").read_text()
    lines = readme.splitlines()
    assert len(lines) <= 280, len(lines)
    # the two commands first, then what it answers, install and three lines to try, before any internals
    first_block = readme[readme.index("```bash"):readme.index("```", readme.index("```bash") + 3)]
    assert "examples/run_notebook.py examples/quickstart.ipynb" in first_block and "pytest -q" in first_block
    # CI runs the README's test command, as written there
    test_command = next(line for line in first_block.splitlines() if "pytest" in line)
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()
    order = [readme.index(h) for h in ("## What it answers", "## Install and load", "## Try it: three lines",
                                       "## On a GPU: a real run", "## The magics")]
    assert order == sorted(order) and readme.index("pip install colab-magic") < 60 * 80
    assert "SAMPLE_CPU" not in readme  # the sample output is a real one, pasted in
    for link in re.findall(r"\]\(((?:docs/|CONTRIBUTING)[^)#]+)", readme):
        assert (ROOT / link).exists(), link
    for cited in re.findall(r"`(bench/results/[\w./-]+)`", readme):
        assert (ROOT / cited).exists(), cited
