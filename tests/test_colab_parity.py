"""Installing colab-magic must not move any package of Colab's own stack (ipython 7.34, traitlets 5.7,
ipykernel 6.17...): upgrading those can crash-loop a Colab runtime (colabtools #5580).

The pins are in .ci/colab/constraints.txt. .ci/colab-parity builds a second environment from them and
runs this whole suite there with COLAB_PARITY=1, so the dry-run install below is checked against
Colab's real versions; in the main environment it checks the same rule against newer ones.
"""

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parent.parent
CONSTRAINTS = ROOT / ".ci" / "colab" / "constraints.txt"
# Kaggle's image is built on Colab's base image (same kernel stack); on top of it Kaggle/docker-python's
# kaggle_requirements.txt pins these, which touch colab-magic's dependencies or extras.
KAGGLE_PINS = {"matplotlib": "3.7.5", "ipywidgets": "8.1.5", "nbconvert": "6.4.5"}  # matplotlib<3.8: its last 3.7
# Colab's kernel packages: never to be upgraded by an install (Colab's own warning names these).
KERNEL_STACK = ("ipython", "ipykernel", "traitlets", "tornado", "pyzmq", "prompt-toolkit", "jupyter-client")


def colab_pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate():
            continue
        (spec,) = req.specifier  # one exact pin per line
        assert spec.operator == "==", line
        pins[canonicalize_name(req.name)] = spec.version
    return pins


def project_requirements() -> dict[str, list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"dependencies": [Requirement(r) for r in project["dependencies"]]}
    for extra, reqs in project.get("optional-dependencies", {}).items():
        groups[extra] = [Requirement(r) for r in reqs]
    return groups


def test_constraints_pin_the_kernel_stack_and_every_dependency():
    pins = colab_pins()
    assert all(canonicalize_name(name) in pins for name in KERNEL_STACK)
    for req in project_requirements()["dependencies"]:
        assert canonicalize_name(req.name) in pins, f"{req.name} has no Colab pin in {CONSTRAINTS.name}"


def test_dependency_floors_admit_colabs_and_kaggles_pinned_versions():
    pins = colab_pins()
    for group, reqs in project_requirements().items():
        for req in reqs:
            name = canonicalize_name(req.name)
            # The test extra is for this suite, which runs on Colab's stack, not Kaggle's.
            platforms = (("Colab", pins),) if group == "test" else (("Colab", pins), ("Kaggle", KAGGLE_PINS))
            for platform, versions in platforms:
                if name in versions:
                    assert req.specifier.contains(versions[name], prereleases=True), (
                        f"{group}: {req} refuses {platform}'s {name} {versions[name]}"
                    )


def dry_run(*requirements: str) -> list[str]:
    """What ``pip install`` would install into this very environment, without installing it."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--disable-pip-version-check",
         "--report", "-", *requirements],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout[out.stdout.index("{"):])
    return sorted(canonicalize_name(item["metadata"]["name"]) for item in report["install"])


def test_installing_colab_magic_changes_no_installed_package():
    assert dry_run(str(ROOT)) == ["colab-magic"]


def test_the_dry_run_sees_an_upgrade_when_one_is_forced():
    # The check above must be able to fail: a requirement the installed psutil does not meet is seen.
    installed = importlib.metadata.version("psutil")
    assert dry_run(f"psutil!={installed}") == ["psutil"]


@pytest.mark.skipif(os.environ.get("COLAB_PARITY") != "1", reason="only in the Colab-parity run (.ci/colab-parity)")
def test_parity_run_is_on_colabs_own_versions():
    pins = colab_pins()
    names = KERNEL_STACK + ("ipywidgets", "keras", "tensorflow", "jax", "psutil", "nvidia-ml-py", "tqdm", "matplotlib")
    wrong = {n: (importlib.metadata.version(n), pins[canonicalize_name(n)]) for n in names
             if importlib.metadata.version(n) != pins[canonicalize_name(n)]}
    assert not wrong, f"installed vs Colab's pin: {wrong}"
