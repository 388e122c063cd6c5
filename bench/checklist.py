"""What the GPU checks print and keep: lines said, and checks passed or failed, written to files at the
end. One definition for bench/gpu_check.py and bench/gpu_compute_check.py."""

import json
import os


class Checklist:
    def __init__(self):
        self.lines: list[str] = []
        self.checks: list[dict] = []

    def say(self, text=""):
        print(text, flush=True)
        self.lines.append(text)

    def check(self, name, ok, detail):
        self.checks.append({"check": name, "ok": bool(ok), "detail": detail})
        self.say(f"[{'PASS' if ok else 'FAIL'}] {name}: {detail}")

    def finish(self, out: str, name: str, result: dict) -> int:
        """Say the tally, write NAME.json (``result``) and NAME.txt (every line said) to ``out``; the
        exit status: 0 when every check passed."""
        passed = sum(c["ok"] for c in self.checks)
        self.say(f"\n{passed} passed, {len(self.checks) - passed} failed")
        with open(os.path.join(out, f"{name}.json"), "w") as fh:
            json.dump(result, fh, indent=1, default=str)
        with open(os.path.join(out, f"{name}.txt"), "w") as fh:
            fh.write("\n".join(self.lines) + "\n")
        return 0 if passed == len(self.checks) else 1
