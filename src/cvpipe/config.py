"""One typed configuration system for every verb.

Each verb declares a :class:`Config` subclass (pydantic, unknown keys forbidden).
Values are resolved in this order, later winning:

1. the class defaults,
2. a YAML file (``--config file.yaml``),
3. explicit command-line flags,
4. ``--set key=value`` overrides (dotted keys reach nested sections; values are parsed
   as YAML scalars, never evaluated).

The resolved config is immutable; :func:`dump_config` writes it next to every output.

Example:
    >>> class SplitConfig(Config):
    ...     ratios: str = "80/20"
    ...     seed: int = 0
    >>> load_config(SplitConfig, overrides=["seed=3"]).seed
    3
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from cvpipe.errors import ConfigError
from cvpipe.io import atomic_write_text
from cvpipe.registry import suggest

C = TypeVar("C", bound="Config")

_YAML11_WORDS = {"on", "off", "yes", "no", "y", "n"}


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader where only true/false are booleans (YAML 1.2), so ``amp: off`` and
    ``feature_cache: on`` keep their words."""


_ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


class Config(BaseModel):
    """Base of every typed config: frozen, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split ``"a.b=value"`` into (["a", "b"], parsed value).

    The value is read as a YAML scalar or flow collection (``3``, ``1e-3``, ``true``,
    ``[16, 32]``, ``null``); anything else stays a string.

    Raises:
        ConfigError: when ``=`` is missing or the key is empty.
    """
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set optim.lr=0.01")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {item!r}: empty key; expected KEY=VALUE")
    if raw.strip().lower() in _YAML11_WORDS:
        # YAML 1.1 reads on/off/yes/no as booleans; cvpipe options use them as words
        # (feature_cache=on, amp=off). Typed bool fields still accept these strings.
        return key.split("."), raw.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):
        value = _number(value)
    return key.split("."), value


def _number(text: str) -> Any:
    """YAML 1.1 reads ``1e-3`` as a string; users mean a number."""
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        return text


def _set_path(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is not None and not isinstance(child, dict):
            # e.g. tracking=mlflow then tracking.experiment=x: replacing the value with a
            # section would silently drop it
            key = ".".join(path[: depth + 1])
            raise ConfigError(
                f"--set {'.'.join(path)}: {key} is already set to the value {child!r}, not a "
                f"section; set the section's keys one by one (e.g. {key}.backends=... for tracking)"
            )
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path``.

    Raises:
        ConfigError: missing file, YAML syntax error (with line) or a non-mapping document.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = yaml.load(
            p.read_text(encoding="utf-8"), Loader=_ConfigLoader
        )  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}{line}: invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: invalid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of keys to values at the top level")
    return data


def _explain(cls: type[BaseModel], exc: ValidationError, source: str) -> ConfigError:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        if err["type"] == "extra_forbidden":
            model: type[BaseModel] | None = cls
            for part in err["loc"][:-1]:
                field = model.model_fields.get(str(part)) if model else None
                ann = field.annotation if field else None
                model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
            valid = sorted(model.model_fields) if model else []
            hint = suggest(str(err["loc"][-1]), valid)
            lines.append(f"unknown key {loc!r}; {hint}valid keys: {', '.join(valid)}")
        else:
            lines.append(f"{loc}: {err['msg']} (got {err.get('input')!r})")
    return ConfigError(f"{source}: " + "; ".join(lines))


def load_config(
    cls: type[C],
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    values: Mapping[str, Any] | None = None,
) -> C:
    """Resolve a config of type ``cls`` from defaults, a YAML file, flags and overrides.

    Args:
        cls: the Config subclass.
        path: optional YAML file.
        overrides: ``KEY=VALUE`` strings (``--set``), dotted keys for nested sections.
        values: explicit values (e.g. command-line flags); ``None`` values are ignored.

    Returns:
        A validated, frozen instance of ``cls``.

    Raises:
        ConfigError: unknown keys (with suggestions), wrong types, bad YAML.
    """
    data: dict[str, Any] = read_yaml(path) if path else {}
    source = str(path) if path else "config"
    for key, value in (values or {}).items():
        if value is not None:
            _set_path(data, key.split("."), value)
    for item in overrides:
        keys, value = parse_override(item)
        _set_path(data, keys, value)
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise _explain(cls, exc, source) from None


def config_to_dict(config: BaseModel) -> dict[str, Any]:
    """The config as plain JSON/YAML-safe data."""
    return config.model_dump(mode="json")


def dump_config(config: BaseModel, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically."""
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    atomic_write_text(path, text)
