"""Remove from this environment the packages the lock does not name (run by the Makefile).

After `pip install -c requirements/lock.txt ...` every installed package has its locked
version; a package an older lock had and the current one dropped would stay behind.
This uninstalls those, so `.venv` is exactly (a subset of) the lock.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cvpipe.lockfile import compare, installed, read_lock


def main() -> int:
    lock = Path(sys.argv[1] if len(sys.argv) > 1 else "requirements/lock.txt")
    drift = compare(read_lock(lock), installed())
    if drift.not_in_lock:
        names = [n for n, _ in drift.not_in_lock]
        print(f"removing packages {lock} does not name: {', '.join(names)}")
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "uninstall", "-y", *names], check=True)
    for line in compare(read_lock(lock), installed()).lines():
        print(f"warning: {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
