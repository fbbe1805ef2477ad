"""Regenerate requirements/lock.txt from pyproject.toml (run by `make lock`).

Resolution only: pip-tools' pip-compile resolves the `test` extra (which includes `all`)
plus requirements/tools.in; the packages in requirements/no-deps.in are resolved on their
own without dependencies (they are installed with --no-deps). Nothing is installed here.
Run it with the interpreter of a tool environment that has pip-tools (the Makefile makes
one in .venv-lock), on Python 3.11 / Linux x86-64, the platform the lock is for.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQ = ROOT / "requirements"
SELF = re.compile(r"^cvpipe\s*@\s*file:", re.IGNORECASE)


def _compile(out: Path) -> None:
    cmd = [
        sys.executable, "-m", "piptools", "compile", "--quiet",
        "--extra", "test", "--allow-unsafe", "--strip-extras", "--newline", "LF",
        "--no-emit-index-url", "--no-emit-find-links", "--no-emit-trusted-host",
        "--output-file", str(out), "pyproject.toml", "requirements/tools.in",
    ]  # fmt: skip
    env = dict(os.environ, CUSTOM_COMPILE_COMMAND="make lock")
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def _drop_self(text: str) -> str:
    """Remove the `cvpipe @ file:///...` entry (the project itself) and its `# via` block."""
    out: list[str] = []
    skipping = False
    for line in text.splitlines():
        if SELF.match(line):
            skipping = True
            continue
        if skipping and line.startswith("    #"):
            continue
        skipping = False
        out.append(line)
    return "\n".join(out) + "\n"


def _no_deps_pins() -> list[str]:
    """Newest version matching each line of no-deps.in, resolved without dependencies."""
    lines = (REQ / "no-deps.in").read_text().splitlines()
    specs = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not specs:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--no-deps",
               "--ignore-installed", "--report", str(report), *specs]  # fmt: skip
        subprocess.run(cmd, check=True)
        items = json.loads(report.read_text())["install"]
    return [f"{i['metadata']['name'].lower()}=={i['metadata']['version']}" for i in items]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REQ / "lock.txt")
    args = ap.parse_args()
    if sys.version_info[:2] != (3, 11) or platform.machine() != "x86_64":
        print(
            f"warning: the lock is for Python 3.11 on x86_64; this is Python "
            f"{platform.python_version()} on {platform.machine()}",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "lock.txt"
        _compile(raw)
        text = _drop_self(raw.read_text())
    pins = _no_deps_pins()
    if pins:
        text += "\n# installed with --no-deps (requirements/no-deps.in)\n"
        text += "".join(f"{p}\n" for p in pins)
    tmp_out = args.out.with_suffix(".tmp")
    tmp_out.write_text(text)
    os.replace(tmp_out, args.out)
    n = sum(1 for ln in text.splitlines() if re.match(r"^[A-Za-z0-9_.-]+==", ln))
    print(f"wrote {args.out}: {n} pinned packages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
