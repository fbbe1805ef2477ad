from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cvpipe.config import Config, dump_config, load_config, parse_override, read_yaml
from cvpipe.errors import ConfigError


class Optim(Config):
    name: str = "sgd"
    lr: float = 0.1


class TrainLike(Config):
    epochs: int = 10
    batch_size: int = 32
    optim: Optim = Optim()
    tags: list[str] = []


def test_defaults_file_flags_overrides_precedence(tmp_path: Path) -> None:
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("epochs: 5\nbatch_size: 8\noptim:\n  lr: 0.01\n")
    cfg = load_config(
        TrainLike, cfg_file, overrides=["optim.lr=0.002"], values={"batch_size": 16, "epochs": None}
    )
    assert cfg.epochs == 5  # file (flag None ignored)
    assert cfg.batch_size == 16  # flag beats file
    assert cfg.optim.lr == pytest.approx(0.002)  # --set beats everything
    assert cfg.optim.name == "sgd"  # default kept


def test_override_values_are_yaml_scalars_never_evaluated() -> None:
    assert parse_override("a=3") == (["a"], 3)
    assert parse_override("a.b=1e-3") == (["a", "b"], 1e-3)
    assert parse_override("x=[16, 32]") == (["x"], [16, 32])
    assert parse_override("x=true") == (["x"], True)
    assert parse_override("x=__import__('os')") == (["x"], "__import__('os')")


@pytest.mark.parametrize("bad", ["noequals", "=3", "a..b=1"])
def test_bad_override_syntax(bad: str) -> None:
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override(bad)


def test_unknown_key_suggests_close_names() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'epohcs'; did you mean 'epochs'"):
        load_config(TrainLike, overrides=["epohcs=3"])


def test_unknown_nested_key_lists_section_keys() -> None:
    with pytest.raises(ConfigError, match=r"optim\.lrr.*did you mean 'lr'.*valid keys: lr, name"):
        load_config(TrainLike, overrides=["optim.lrr=3"])


def test_wrong_type_names_field_and_value() -> None:
    with pytest.raises(ConfigError, match=r"epochs: .*'many'"):
        load_config(TrainLike, overrides=["epochs=many"])


def test_yaml_errors_are_located(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 3\n  batch: [\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: invalid YAML"):
        read_yaml(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        read_yaml(lst)
    with pytest.raises(ConfigError, match="not found"):
        read_yaml(tmp_path / "missing.yaml")


def test_config_is_frozen_and_round_trips(tmp_path: Path) -> None:
    cfg = load_config(TrainLike, overrides=["tags=[a, b]"])
    with pytest.raises(ValidationError, match="frozen"):
        cfg.epochs = 3  # type: ignore[misc]
    dump_config(cfg, tmp_path / "out.yaml")
    again = load_config(TrainLike, tmp_path / "out.yaml")
    assert again == cfg


def test_on_off_words_stay_words_and_still_fill_bool_fields() -> None:
    from typing import Literal

    class Opts(Config):
        cache: Literal["auto", "on", "off"] = "auto"
        flag: bool = False

    cfg = load_config(Opts, overrides=["cache=on", "flag=yes"])
    assert cfg.cache == "on" and cfg.flag is True
    assert load_config(Opts, overrides=["cache=off", "flag=off"]) == Opts(cache="off", flag=False)


def test_yaml_files_keep_on_off_words(tmp_path: Path) -> None:
    from typing import Literal

    class Opts(Config):
        cache: Literal["auto", "on", "off"] = "auto"
        flag: bool = False

    p = tmp_path / "c.yaml"
    p.write_text("cache: on\nflag: true\n")
    assert load_config(Opts, p) == Opts(cache="on", flag=True)
