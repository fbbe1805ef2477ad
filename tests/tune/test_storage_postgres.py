"""Two workers on one study in a real PostgreSQL server, plus storage URL handling.

The server is started by the test itself from the Debian ``postgresql`` binaries
(``/usr/lib/postgresql/*/bin``) in a temporary directory, on a free port, with its unix
socket inside that directory; it is stopped in a finalizer. Without the binaries the
test is skipped, except in CI (``CI=true``) where it fails.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml
from tests.conftest import skip_or_fail
from tunedata import base_train

from cvpipe.errors import ConfigError
from cvpipe.tune import storage as S

STATES = optuna.trial.TrialState


def test_url_forms() -> None:
    assert S.normalize_url("runs/s.db") == f"sqlite:///{Path('runs/s.db').resolve()}"
    assert S.normalize_url("postgres://u@h/db") == "postgresql://u@h/db"
    assert S.redact("postgresql://me:secret@db:5432/t") == "postgresql://me@db:5432/t"
    assert S.redact("postgresql://me@db/t") == "postgresql://me@db/t"
    with pytest.raises(ConfigError, match="unsupported URL scheme 'redis'"):
        S.normalize_url("redis://me:pw@h/0")
    assert S.parse_trial_ref("tune/out:best") == ("tune/out", "best")
    assert S.parse_trial_ref("tune/out:7") == ("tune/out", "7")
    assert S.parse_trial_ref("bins-r50") == ("bins-r50", "best")


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("psycopg2")
    port = _free_port()
    with pytest.raises(ConfigError, match=r"cannot open the database") as exc:
        S.open_storage(f"postgresql://me:hunter2@127.0.0.1:{port}/none")
    assert "hunter2" not in str(exc.value)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    exe = shutil.which("pg_ctl")
    return Path(exe).parent if exe else None


class _Server:
    """A throwaway PostgreSQL cluster (trust auth, unix socket in its own directory)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="cvpipe-pg-", dir="/tmp"))
        self.port = _free_port()
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        if os.geteuid() == 0:  # postgres refuses to run as root
            os.chmod(self.root, 0o755)
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def start(self) -> None:
        data = self.root / "data"
        r = self._run("initdb", "-D", str(data), "-A", "trust", "-U", self.user, "--no-sync")
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed: {r.stderr}")
        opts = f"-p {self.port} -k {self.root} -c listen_addresses='' -c fsync=off"
        r = self._run(
            "pg_ctl", "-D", str(data), "-o", opts, "-l", str(self.root / "log"), "-w", "start"
        )
        if r.returncode != 0:
            log = (self.root / "log").read_text() if (self.root / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {r.stderr} {log}")
        r = self._run(
            "createdb", "-h", str(self.root), "-p", str(self.port), "-U", self.user, "cvpipe"
        )
        if r.returncode != 0:
            raise RuntimeError(f"createdb failed: {r.stderr}")

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@/cvpipe?host={self.root}&port={self.port}"

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "stop", timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres() -> Iterator[_Server]:
    bin_dir = _pg_bin()
    if bin_dir is None or not (bin_dir / "initdb").is_file():
        skip_or_fail(
            "PostgreSQL server binaries (initdb, pg_ctl) not found; apt-get install postgresql"
        )
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        skip_or_fail("psycopg2 is not installed (pip install psycopg2-binary)")
    assert bin_dir is not None
    server = _Server(bin_dir)
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        server.stop()
        skip_or_fail(f"cannot start a PostgreSQL server here: {exc}")
    yield server
    server.stop()


@pytest.mark.slow
def test_two_workers_on_one_study(postgres: _Server, tiny_ds: Path, tmp_path: Path) -> None:
    """Two `cvpipe tune --storage postgresql://... --study NAME` at once, as on two machines."""
    cfg = {
        "dataset": str(tiny_ds),
        # freeze full: a few seconds per trial, so both workers get a share
        "train": base_train(tmp_path, freeze="full", epochs=3),
        "space": {
            "optimizer.lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True},
            "batch_size": [4, 8],
        },
        "objective": {"metric": "val.loss", "direction": "minimize"},
        "max_trials": 6,
        "strategy": "bayesian",
        "pruning": {"enabled": False},
        "heartbeat_s": 2,
        "report": False,
    }
    (tmp_path / "tune.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    env = {**os.environ, "CVPIPE_PROGRESS": "0"}
    procs = []
    for name in ("machine_a", "machine_b"):
        cmd = [sys.executable, "-m", "cvpipe.cli.main", "tune", "--config", str(tmp_path / "tune.yaml"),
               "--storage", postgres.url, "--study", "shared", "--out", str(tmp_path / name)]  # fmt: skip
        log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed below
        procs.append((subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    deadline = time.monotonic() + 540
    for proc, log in procs:
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    logs = {n: (tmp_path / f"{n}.log").read_text() for n in ("machine_a", "machine_b")}
    assert all(p.returncode == 0 for p, _ in procs), logs

    study = optuna.load_study(study_name="shared", storage=S.open_storage(postgres.url))
    everything = study.trials
    assert len({t.number for t in everything}) == len(everything)  # no duplicate numbers
    trials = [t for t in everything if "skipped" not in t.user_attrs]
    assert len(trials) == 6 and all(t.state == STATES.COMPLETE for t in trials), [
        (t.number, t.state, t.user_attrs.get("error")) for t in everything
    ]
    pids = {t.user_attrs["pid"] for t in trials}
    assert len(pids) == 2  # both workers contributed
    by_machine = {
        n: [t.number for t in trials if str(tmp_path / n) in t.user_attrs["run_dir"]] for n in logs
    }
    assert all(by_machine.values()), by_machine
    for name, numbers in by_machine.items():
        for n in numbers:  # each worker's trials are run directories on its own machine
            assert (tmp_path / name / "trials" / f"trial_{n:04d}" / "metrics.jsonl").is_file()
    # tune.json never records a password, and `tune status` works from either output dir
    assert "tune.json" in os.listdir(tmp_path / "machine_a")
    assert S.resolve_study(str(tmp_path / "machine_b")).name == "shared"
