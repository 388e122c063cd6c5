"""The executed quickstart, rendered to HTML by nbconvert, opened in headless Chromium: the summary
must be laid out as tables (no escaped HTML, no raw tags), and a screenshot is taken to look at."""

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("nbconvert")
pytestmark = pytest.mark.keras

EXAMPLES = Path(__file__).parent.parent / "examples"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "chromium is not installed: .ci/setup installs it (apt-get install chromium)"
    return path


def test_quickstart_summary_renders_as_tables_in_a_browser(monkeypatch, tmp_path):
    import sys

    from nbconvert import HTMLExporter
    from PIL import Image

    sys.path.insert(0, str(EXAMPLES))
    try:
        from run_notebook import run
    finally:
        sys.path.remove(str(EXAMPLES))
    monkeypatch.setenv("COLAB_MAGIC_DRIVE", str(tmp_path / "drive"))
    monkeypatch.setenv("QUICKSTART_SAMPLES", "1600")
    nb = run(str(EXAMPLES / "quickstart.ipynb"), timeout=600)
    body, _ = HTMLExporter().from_notebook_node(nb)
    page = tmp_path / "quickstart.html"
    page.write_text(body, encoding="utf-8")

    base = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    # Rendered as real tables: the captions are table elements, not text.
    for caption in ("Training", "Per epoch", "GPUs (NVML)" if "GPUs (NVML)" in dom else "Host"):
        assert f"<caption>{caption}</caption>" in dom, caption
    assert dom.count('<div class="cm-report">') >= 3  # %device_info, %%timed_fit, %fit_history
    # Nothing of ours shown as escaped markup or raw tags.
    for escaped in ("&lt;table", "&lt;caption", "&lt;td", "&lt;div class=\"cm-report", "&lt;style"):
        assert escaped not in dom, escaped

    # The answer first: in the %%timed_fit cell's rendered output, the headline comes before any table.
    timed = dom[dom.index("%%timed_fit"):]
    report = timed[timed.index('<div class="cm-report">'):]
    assert report.index('class="cm-answer"') < report.index("<table>")
    assert "sequential on the CPU: " in report[:report.index("<table>")]
    assert "<details>" in report and "<summary>Details: per epoch, hardware, sampler</summary>" in report

    shot = tmp_path / "quickstart.png"
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2400)
    colours = image.getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50  # text and table borders, not a blank page
    if os.environ.get("COLAB_MAGIC_SCREENSHOT"):  # to look at: COLAB_MAGIC_SCREENSHOT=/tmp/q.png pytest ...
        shutil.copy(shot, os.environ["COLAB_MAGIC_SCREENSHOT"])

    # The same page in JupyterLab's dark theme: the timeline (--plot) has a transparent background and
    # grey text, so no white box. Measured at 1100x3600: 8.4% of the pixels light with the white
    # figure of before, 1.8% now (the text itself and the orange compile shading).
    dark, _ = HTMLExporter(theme="dark").from_notebook_node(nb)
    page.write_text(dark, encoding="utf-8")
    shot = tmp_path / "quickstart_dark.png"
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1100,3600", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    grey = Image.open(shot).convert("L")
    light = sum(count for count, value in grey.getcolors(256) if value > 200) / (grey.width * grey.height)
    assert light < 0.04, light


def test_the_summary_stays_readable_in_a_dark_theme(tmp_path):
    """JupyterLab's dark theme (nbconvert's, with its own table styles): the summary's text takes the
    theme's light colour and no table paints a light background under it."""
    from nbconvert import HTMLExporter
    from nbformat.v4 import new_code_cell, new_notebook, new_output
    from PIL import Image

    from colab_magic.verdicts import findings
    from tests import builders

    report = builders.report(device="CPU:0", gpus=[builders.gpu(util=2.0)], step=0.0125, model="net")
    report = dataclasses.replace(report, findings=findings(report))
    result = builders.result([report])
    output = new_output("display_data", data={"text/html": result._repr_html_(), "text/plain": str(result)})
    nb = new_notebook(cells=[new_code_cell("%%timed_fit\nmodel.fit(x, y)", outputs=[output])])
    body, _ = HTMLExporter(theme="dark").from_notebook_node(nb)
    page = tmp_path / "dark.html"
    page.write_text(body, encoding="utf-8")
    shot = tmp_path / "dark.png"
    base = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1000,700", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    grey = Image.open(shot).convert("L")
    pixels = list(grey.getdata())
    light = sum(1 for p in pixels if p > 200) / len(pixels)
    dark = sum(1 for p in pixels if p < 60) / len(pixels)
    # Measured: 1.2% light pixels (the text), 97% dark; with the cells given a white background and
    # black text instead of the theme's colours, 5.7% (this test then fails).
    assert dark > 0.85 and 0.003 < light < 0.03, (light, dark)
