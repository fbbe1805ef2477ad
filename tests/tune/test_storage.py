"""Opening a study storage while other workers create the same schema."""

from __future__ import annotations

from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")
sqlalchemy = pytest.importorskip("sqlalchemy")

from cvpipe.tune import storage as S  # noqa: E402


def _flaky(real: type, failures: list[Exception]) -> type:
    class Flaky:
        calls = 0

        def __new__(cls, *args: object, **kwargs: object) -> object:
            cls.calls += 1
            if failures:
                raise failures.pop(0)
            return real(*args, **kwargs)

    return Flaky


def _race(msg: str) -> Exception:
    return sqlalchemy.exc.IntegrityError("CREATE TABLE studies", {}, Exception(msg))


def test_schema_race_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    flaky = _flaky(optuna.storages.RDBStorage, [_race("duplicate key value"), _race("again")])
    monkeypatch.setattr(optuna.storages, "RDBStorage", flaky)
    storage = S.open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    assert flaky.calls == 3 and storage.get_all_studies() == []


def test_other_database_errors_are_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    err = sqlalchemy.exc.ProgrammingError("SELECT", {}, Exception("permission denied for schema"))
    flaky = _flaky(optuna.storages.RDBStorage, [err])
    monkeypatch.setattr(optuna.storages, "RDBStorage", flaky)
    with pytest.raises(S.ConfigError, match="permission denied"):
        S.open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    assert flaky.calls == 1
