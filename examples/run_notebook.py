"""Runs a notebook headless in a real Jupyter kernel and prints what each cell showed, as text.

    python examples/run_notebook.py examples/quickstart.ipynb [--save executed.ipynb]

Outside Colab the notebook's %mount_drive uses a local folder; unless $COLAB_MAGIC_DRIVE says where,
this runner points it at a fresh temporary folder so that a demo leaves nothing in your home folder.
"""

import argparse
import os
import sys
import tempfile

import nbformat
from nbclient import NotebookClient


def text_of(output) -> str:
    if output.output_type == "stream":
        return output.text
    if output.output_type in ("execute_result", "display_data"):
        data = output.get("data", {})
        if "image/png" in data:
            return "[a figure: open the notebook to see it, or use --save]\n"
        return data.get("text/plain", "") + "\n"
    if output.output_type == "error":
        return f"{output.ename}: {output.evalue}\n"
    return ""


def run(path: str, save: str | None = None, timeout: int = 1800):
    nb = nbformat.read(path, as_version=4)
    os.environ.setdefault("COLAB_MAGIC_DRIVE", tempfile.mkdtemp(prefix="colab_magic_drive_"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter, not the notebook's output
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": os.path.dirname(path) or "."}})
    client.execute()
    if save:
        nbformat.write(nb, save)
    return nb


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("notebook")
    parser.add_argument("--save", help="also write the executed notebook here")
    args = parser.parse_args()
    nb = run(args.notebook, args.save)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        print(f">>> {cell.source.splitlines()[0] if cell.source else ''}")
        sys.stdout.write("".join(text_of(o) for o in cell.get("outputs", [])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
