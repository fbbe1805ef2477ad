"""Where a study lives: storage URLs, study references, dead-worker detection.

- ``sqlite:///OUT/study.db`` (the default) keeps a study on one machine; it survives a
  killed job, and the same command resumes it.
- ``postgresql://user@host:5432/db`` lets workers on many machines share one study:
  ``cvpipe tune --config tune.yaml --storage postgresql://... --study NAME`` on each.
  Passwords are best left out of the URL (libpq reads ``PGPASSWORD`` or ``~/.pgpass``);
  ``OUT/tune.json`` never records one.

A study is referred to (``cvpipe tune status REF``, ``cvpipe train --from-trial REF:best``)
by its output directory (which holds ``tune.json``) or by its name plus ``--storage``
(or ``$CVPIPE_TUNE_STORAGE``).

A trial whose worker died is failed three ways: every worker writes a heartbeat while a
trial runs, and a trial silent for the grace period is failed by whichever worker looks
next (any machine); on the same machine a trial whose recorded process is gone is failed
at once; a trial that never got as far as recording its worker is failed after the grace
period. Its parameters are queued again (up to ``max_retries`` times).

Example:
    >>> normalize_url("runs/study.db").startswith("sqlite:///")
    True
    >>> redact("postgresql://me:secret@db:5432/tune")
    'postgresql://me@db:5432/tune'
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cvpipe.errors import ConfigError, MissingDependencyError
from cvpipe.io import read_json, write_json

log = logging.getLogger(__name__)

META = "tune.json"
ENV_STORAGE = "CVPIPE_TUNE_STORAGE"
_SCHEMES = (
    "sqlite", "postgresql", "postgresql+psycopg2", "postgresql+psycopg", "mysql", "mysql+pymysql",
)  # fmt: skip


def default_url(out: str | Path) -> str:
    """``sqlite:///ABS/OUT/study.db``."""
    return f"sqlite:///{Path(out).resolve() / 'study.db'}"


def normalize_url(url: str) -> str:
    """A storage URL SQLAlchemy accepts; a bare file path becomes a SQLite URL.

    Raises:
        ConfigError: an unsupported scheme.
    """
    if "://" not in url:
        return f"sqlite:///{Path(url).resolve()}"
    scheme = url.split("://", 1)[0].lower()
    if scheme == "postgres":
        return "postgresql://" + url.split("://", 1)[1]
    if scheme not in _SCHEMES:
        raise ConfigError(
            f"storage: unsupported URL scheme {scheme!r} in {redact(url)!r}; use sqlite:///FILE.db "
            "or postgresql://USER@HOST:PORT/DB"
        )
    return url


def redact(url: str) -> str:
    """The URL without its password."""
    if "://" not in url or url.startswith("sqlite"):
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    netloc = f"{parts.username}@{host}" if parts.username else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def open_storage(
    url: str,
    *,
    heartbeat_s: int | None = None,
    grace_s: int | None = None,
    on_stale: Callable[[Any, Any], None] | None = None,
) -> Any:
    """An Optuna ``RDBStorage`` for ``url``, with heartbeats when ``heartbeat_s`` is given.

    Raises:
        MissingDependencyError: optuna (or psycopg2 for PostgreSQL) is not installed.
        ConfigError: the database cannot be reached.
    """
    optuna = import_optuna()
    url = normalize_url(url)
    if url.startswith("postgresql://"):
        url = "postgresql+" + _pg_driver() + url.removeprefix("postgresql")
    engine: dict[str, Any] = {}
    if url.startswith("sqlite"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = {"connect_args": {"timeout": 120}}
    else:
        engine = {"pool_pre_ping": True}
    kwargs: dict[str, Any] = {}
    if heartbeat_s is not None:
        import inspect

        params = inspect.signature(optuna.storages.RDBStorage).parameters
        name = (  # renamed in optuna 4.9
            "heartbeat_stale_trial_callback"
            if "heartbeat_stale_trial_callback" in params
            else "failed_trial_callback"
        )
        kwargs = {
            "heartbeat_interval": heartbeat_s,
            "grace_period": grace_s or 3 * heartbeat_s,
            name: on_stale,
        }
    try:
        return _create_storage(optuna, url, engine, kwargs)
    except Exception as exc:  # sqlalchemy.exc.OperationalError and friends
        if isinstance(exc, (MissingDependencyError, ConfigError)):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"storage {redact(url)}: cannot open the database: {first}") from None


SCHEMA_RACE_TRIES = 8


def _create_storage(optuna: Any, url: str, engine: dict[str, Any], kwargs: dict[str, Any]) -> Any:
    """``RDBStorage(url)``, retried when another worker is creating the same schema.

    Workers started together on an empty database all create Optuna's tables; PostgreSQL
    lets one win and fails the others with a unique violation on its type catalogue (or
    "already exists"). Once the winner has committed, the schema is there and a retry
    simply opens it.
    """
    import random
    import time

    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(SCHEMA_RACE_TRIES):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine, **kwargs)
        except (IntegrityError, ProgrammingError) as exc:
            race = isinstance(exc, IntegrityError) or "already exists" in str(exc)
            if not race or attempt == SCHEMA_RACE_TRIES - 1:
                raise
            log.debug("storage schema created by another worker meanwhile; retrying: %s", exc)
            time.sleep(0.2 + random.random() * 0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def _pg_driver() -> str:
    """The installed PostgreSQL driver: psycopg2 (cvpipe[tune]) or psycopg 3.

    SQLAlchemy's default driver for ``postgresql://`` changed between versions, so the
    URL names the one that is installed.

    Raises:
        MissingDependencyError: neither is installed.
    """
    import importlib.util

    for module, dialect in (("psycopg2", "psycopg2"), ("psycopg", "psycopg")):
        if importlib.util.find_spec(module) is not None:
            return dialect
    raise MissingDependencyError(
        "PostgreSQL storage needs a driver: pip install psycopg2-binary (or cvpipe[tune])"
    )


def import_optuna() -> Any:
    """``optuna``, or a clear error saying how to install it.

    Raises:
        MissingDependencyError: optuna is not installed.
    """
    try:
        import optuna
    except ImportError:
        raise MissingDependencyError(
            "tuning needs optuna: pip install 'cvpipe[tune]' (or pip install optuna)"
        ) from None
    return optuna


# ------------------------------------------------------------------------- study refs
@dataclass(frozen=True)
class StudyRef:
    """A study: its storage URL, its name and (when known) its output directory."""

    url: str
    name: str
    out: Path | None = None


def write_meta(out: Path, url: str, study: str, config: dict[str, Any]) -> None:
    """Write ``OUT/tune.json`` (storage without password, study name, resolved config)."""
    write_json(out / META, {"storage": redact(url), "study": study, "config": config})


def resolve_study(ref: str, storage: str | None = None) -> StudyRef:
    """Find a study from a tune output directory or a study name.

    Args:
        ref: a tune output directory (holding ``tune.json``) or a study name.
        storage: storage URL for a study name (default ``$CVPIPE_TUNE_STORAGE``).

    Raises:
        ConfigError: neither a tune directory nor a name with a storage.
    """
    path = Path(ref)
    if (path / META).is_file():
        meta = read_json(path / META)
        return StudyRef(normalize_url(storage or meta["storage"]), meta["study"], path)
    if path.is_dir():
        raise ConfigError(
            f"{path}: not a tune output directory (no {META}); run 'cvpipe tune --config tune.yaml' first"
        )
    url = storage or os.environ.get(ENV_STORAGE)
    if not url:
        raise ConfigError(
            f"study {ref!r}: no such tune output directory; for a study name pass --storage URL "
            f"(or set {ENV_STORAGE})"
        )
    return StudyRef(normalize_url(url), ref, None)


def load_study(ref: StudyRef) -> Any:
    """Load the Optuna study of ``ref`` (no heartbeat: read-only use).

    Raises:
        ConfigError: no study of that name in the storage (the message lists the ones there).
    """
    optuna = import_optuna()
    storage = open_storage(ref.url)
    try:
        return optuna.load_study(study_name=ref.name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        from cvpipe.registry import suggest

        raise ConfigError(
            f"study {ref.name!r} is not in {redact(ref.url)}; {suggest(ref.name, names)}"
            f"studies there: {', '.join(names) or 'none'}"
        ) from None


# ------------------------------------------------------------------------- dead workers
def worker_identity() -> dict[str, Any]:
    """Host, pid and process start time of this process (recorded on each trial)."""
    import psutil

    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "pid_start": psutil.Process(pid).create_time(),
    }


def process_alive(pid: int, start: float | None) -> bool:
    """True when ``pid`` runs and (if given) started at ``start`` (no pid reuse)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return start is None or abs(proc.create_time() - float(start)) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def fail_dead_trials(
    study: Any, storage: Any, on_fail: Callable[[Any, Any], None], grace_s: float
) -> int:
    """Fail RUNNING trials whose worker is gone.

    Two cases are caught without waiting for heartbeats to go stale (which never happens
    to a trial that died before its first heartbeat): a trial started on this host by a
    process that no longer exists, and an orphan, a trial without a worker identity
    ``grace_s`` after its start (its process died between creating and starting it; a
    live worker records its identity first thing). Start times come from the creating
    machine's clock: keep clocks of machines sharing a study within the grace period.

    Returns:
        How many trials were failed (each passed to ``on_fail(study, frozen_trial)``).
    """
    import datetime as _dt

    optuna = import_optuna()
    RUNNING, FAIL = optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.FAIL
    host = socket.gethostname()
    now = _dt.datetime.now()
    failed = 0
    for t in study.get_trials(deepcopy=False, states=(RUNNING,)):
        attrs = t.user_attrs
        if "pid" in attrs:
            if attrs.get("host") != host or process_alive(
                int(attrs["pid"]), attrs.get("pid_start")
            ):
                continue
            why = f"its process {attrs['pid']} is gone (killed?)"
        else:
            age = (now - t.datetime_start).total_seconds() if t.datetime_start else 0.0
            if age <= grace_s:
                continue  # a live worker records its identity first thing
            why = f"it never started ({age:.0f} s without a worker identity)"
        try:
            if storage.set_trial_state_values(t._trial_id, state=FAIL):
                failed += 1
                log.warning("trial %d: %s; marked FAIL", t.number, why)
                on_fail(study, storage.get_trial(t._trial_id))
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker got there first
    return failed


def retry_callback(max_retries: int) -> Callable[[Any, Any], None]:
    """Queue an interrupted trial's parameters again, at most ``max_retries`` times in a chain."""

    def retry(study: Any, trial: Any) -> None:
        optuna = import_optuna()
        retries = int(trial.user_attrs.get("retries", 0))
        if retries >= max_retries:
            log.warning(
                "trial %d was interrupted %d times; not retried again", trial.number, retries + 1
            )
            return
        if not trial.params:
            return
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.WAITING,
                params=trial.params,
                distributions=trial.distributions,
                user_attrs={"retry_of": trial.number, "retries": retries + 1},
            )
        )
        log.info("trial %d: parameters queued again (retry %d)", trial.number, retries + 1)

    return retry


# ------------------------------------------------------------------------- trial refs
def parse_trial_ref(text: str) -> tuple[str, str]:
    """``"STUDY:best"`` / ``"tune/out:7"`` → (study ref, ``best`` or a trial number).

    A bare ``STUDY`` means its best trial.

    Raises:
        ConfigError: an empty reference.
    """
    ref, which = text, "best"
    if ":" in text:
        head, tail = text.rsplit(":", 1)
        if tail == "best" or tail.isdigit():
            ref, which = head, tail
    if not ref:
        raise ConfigError(f"--from-trial {text!r}: expected STUDY:best or STUDY:NUMBER")
    return ref, which


def find_trial(study: Any, which: str) -> Any:
    """The best completed trial (``best``) or the trial numbered ``which``.

    Raises:
        ConfigError: no completed trial, or no trial of that number.
    """
    optuna = import_optuna()
    if which == "best":
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if not done:
            raise ConfigError(f"study {study.study_name!r} has no completed trial yet")
        return study.best_trial
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if int(which) not in trials:
        raise ConfigError(
            f"study {study.study_name!r} has no trial {which} (trials 0..{max(trials, default=-1)})"
        )
    return trials[int(which)]


def trial_train_config(text: str, storage: str | None = None) -> tuple[dict[str, Any], str, int]:
    """The resolved train config and dataset of a trial (``cvpipe train --from-trial``).

    The config is read from the study (recorded when the trial started), so it works on
    any machine that reaches the storage, not only where the trial ran.

    Returns:
        ``(train config mapping, dataset path, trial number)``.

    Raises:
        ConfigError: unknown study or trial, or a trial that never started training.
    """
    ref, which = parse_trial_ref(text)
    study = load_study(resolve_study(ref, storage))
    trial = find_trial(study, which)
    config = trial.user_attrs.get("config")
    if not isinstance(config, dict):
        raise ConfigError(
            f"trial {trial.number} of study {study.study_name!r} has no recorded train config "
            f"(state {trial.state.name}); pick another trial"
        )
    return dict(config), str(trial.user_attrs.get("dataset", "")), trial.number
