"""Cost of `%load_ext colab_magic` over a bare IPython shell, and latency of `%device_info`.

Run: python bench/startup.py [--runs N]

Each load is measured in a fresh interpreter (imports are cached after the first load). Bare and
with-extension interpreters are started interleaved, so machine noise hits both alike.
Targets (issue 2): load <= 50 ms, no framework imported; %device_info <= 100 ms without --frameworks.
"""

import argparse
import json
import statistics
import subprocess
import sys

FRAMEWORKS = ("tensorflow", "keras", "jax", "torch")

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
t1 = time.perf_counter()
load = None
if sys.argv[1] == "ext":
    ip.run_line_magic("load_ext", "colab_magic")
    load = time.perf_counter() - t1
total = time.perf_counter() - t0
print(json.dumps({"load": load, "total": total,
                  "frameworks": [m for m in %r if m in sys.modules]}))
""" % (FRAMEWORKS,)

LATENCY = r"""
import json, time
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "colab_magic")
times = []
for _ in range(%d):
    t = time.perf_counter()
    ip.run_line_magic("device_info", "-q")
    times.append(time.perf_counter() - t)
print(json.dumps(times))
"""


def child(kind: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, kind], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    bare, ext = [], []
    for _ in range(args.runs):
        bare.append(child("bare"))
        ext.append(child("ext"))
    load_ms = statistics.median(r["load"] for r in ext) * 1000
    over_ms = (statistics.median(r["total"] for r in ext) - statistics.median(r["total"] for r in bare)) * 1000
    imported = sorted({m for r in ext for m in r["frameworks"]})

    out = subprocess.run([sys.executable, "-c", LATENCY % 20], capture_output=True, text=True, check=True)
    lat = [t * 1000 for t in json.loads(out.stdout.strip().splitlines()[-1])]

    print(f"runs: {args.runs} fresh interpreters each, interleaved")
    print(f"%load_ext colab_magic: median {load_ms:.1f} ms (target <= 50 ms)")
    print(f"  shell start to ready, with minus without the extension: {over_ms:+.1f} ms (median of each)")
    print(f"  frameworks imported by loading: {imported or 'none'}")
    print(
        f"%device_info: first {lat[0]:.1f} ms, then median {statistics.median(lat[1:]):.1f} ms, "
        f"max {max(lat[1:]):.1f} ms over {len(lat) - 1} calls (target <= 100 ms)"
    )
    ok = load_ms <= 50 and not imported and max(lat) <= 100
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
