"""Search spaces over any :class:`~cvpipe.engine.config.TrainConfig` key.

A space maps dotted config keys (the same keys ``--set`` takes) to a parameter:

.. code-block:: yaml

    space:
      optimizer.lr: {type: float, low: 0.001, high: 0.1, log: true}
      optimizer.weight_decay: {type: float, low: 0.0, high: 0.001}
      epochs: {type: int, low: 5, high: 20, step: 5}
      batch_size: {type: categorical, choices: [16, 32, 64, 128, 256]}
      optimizer.name: [sgd, adam]          # a bare list is a categorical parameter
      head.hidden: [[128], [256, 64]]      # choices may be lists or mappings

:meth:`SearchSpace.validate` checks every key and every value a trial could draw against
``TrainConfig`` *before* any trial starts: an unknown key is an error that suggests the
close ones, a range the config rejects (``optimizer.lr`` from 0, ``batch_size`` 0, an
unknown optimizer) names the key and the bad bound.

Example:
    >>> space = SearchSpace.from_mapping({"optimizer.lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True}})
    >>> space.validate({"model": "resnet18"})
    >>> apply_params({"optimizer": {"name": "sgd"}}, {"optimizer.lr": 0.01})
    {'optimizer': {'name': 'sgd', 'lr': 0.01}}
"""

from __future__ import annotations

import copy
import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, model_validator

from cvpipe.config import Config
from cvpipe.errors import ConfigError
from cvpipe.registry import suggest


class FloatParam(Config):
    """A continuous parameter in ``[low, high]``; ``log`` samples the exponent uniformly.

    ``step`` makes it discrete (``low, low+step, ...``) and is required by the grid strategy.
    """

    type: Literal["float"] = "float"
    low: float
    high: float
    log: bool = False
    step: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _range(self) -> FloatParam:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0 (got low={self.low})")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined")
        return self

    def values(self) -> list[float]:
        """Grid points (needs ``step``)."""
        if self.step is None:
            raise ValueError("a float parameter needs a step for the grid strategy")
        n = int(math.floor((self.high - self.low) / self.step + 1e-9))
        return [round(self.low + i * self.step, 12) for i in range(n + 1)]

    def probes(self) -> list[Any]:
        return [self.low, self.high]


class IntParam(Config):
    """An integer parameter in ``[low, high]`` (inclusive) by ``step``; ``log`` for wide ranges."""

    type: Literal["int"] = "int"
    low: int
    high: int
    step: int = Field(default=1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _range(self) -> IntParam:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low < 1:
            raise ValueError(f"log: true needs low >= 1 (got low={self.low})")
        if self.log and self.step != 1:
            raise ValueError("log and step cannot be combined")
        return self

    def values(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))

    def probes(self) -> list[Any]:
        return [self.low, self.values()[-1]]


class CategoricalParam(Config):
    """One of ``choices`` (numbers, strings, booleans, null, or lists/mappings)."""

    type: Literal["categorical"] = "categorical"
    choices: list[Any] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> CategoricalParam:
        seen = [json.dumps(c, sort_keys=True) for c in self.choices]
        if len(set(seen)) != len(seen):
            raise ValueError(f"choices must be distinct (got {self.choices})")
        return self

    @property
    def encoded(self) -> bool:
        """Optuna stores only scalars: lists and mappings travel as JSON strings."""
        return any(isinstance(c, (list, dict)) for c in self.choices)

    def values(self) -> list[Any]:
        return [json.dumps(c) for c in self.choices] if self.encoded else list(self.choices)

    def decode(self, value: Any) -> Any:
        return json.loads(value) if self.encoded else value

    def probes(self) -> list[Any]:
        return list(self.choices)


Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]
_PARAM = TypeAdapter(Param)


def parse_param(key: str, spec: Any) -> FloatParam | IntParam | CategoricalParam:
    """One parameter from its YAML form (a mapping with ``type``, or a bare list of choices).

    Raises:
        ConfigError: unknown type, missing bounds, low >= high, log with low <= 0.
    """
    where = f"space.{key}"
    if isinstance(spec, list):
        spec = {"type": "categorical", "choices": spec}
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"{where}: expected a mapping like {{type: float, low: 0.001, high: 0.1}} or a "
            f"list of choices (got {spec!r})"
        )
    kind = spec.get("type")
    if kind not in ("float", "int", "categorical"):
        hint = suggest(str(kind), ["float", "int", "categorical"]) if kind else ""
        raise ConfigError(
            f"{where}: type {kind!r} is not a parameter type; {hint}valid types: float, int, categorical"
        )
    try:
        return _PARAM.validate_python(dict(spec))
    except ValidationError as exc:
        msgs = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"][1:])
            msg = err["msg"].removeprefix("Value error, ")
            msgs.append(f"{loc}: {msg}" if loc else msg)
        raise ConfigError(f"{where}: " + "; ".join(msgs)) from None


def apply_params(base: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with each dotted key of ``params`` set (sections created)."""
    data = copy.deepcopy(dict(base))
    for key, value in params.items():
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {} if child is None else _as_dict(child)
                node[part] = child
            node = child
        node[parts[-1]] = copy.deepcopy(value)
    return data


def _as_dict(value: Any) -> dict[str, Any]:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else dict(value)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``annotation`` (``HeadSpec | None`` → HeadSpec)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def check_key(key: str, root: type[BaseModel]) -> None:
    """Check that a dotted key names a field of ``root`` (walking nested sections).

    Raises:
        ConfigError: unknown key (with close matches and the valid keys of that section).
    """
    model: type[BaseModel] | None = root
    parts = key.split(".")
    for i, part in enumerate(parts):
        prefix = ".".join(parts[:i])
        if model is None:
            raise ConfigError(
                f"space.{key}: {prefix!r} is a plain value, not a section; it has no key {part!r}"
            )
        fields = model.model_fields
        if part not in fields:
            valid = sorted(fields)
            where = f"section {prefix!r}" if prefix else root.__name__
            raise ConfigError(
                f"space.{key}: unknown key {part!r} in {where}; {suggest(part, valid)}"
                f"valid keys: {', '.join(valid)}"
            )
        model = _model_of(fields[part].annotation)


@dataclass(frozen=True)
class SearchSpace:
    """Dotted config keys mapped to parameters, in declaration order."""

    params: dict[str, FloatParam | IntParam | CategoricalParam]

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any]) -> SearchSpace:
        """Parse the ``space:`` section of a tune config.

        Raises:
            ConfigError: an empty space or an invalid parameter.
        """
        if not spec:
            raise ConfigError(
                "space: no parameters to tune; add e.g. optimizer.lr: {type: float, low: 0.001, high: 0.1, log: true}"
            )
        return cls({str(k): parse_param(str(k), v) for k, v in spec.items()})

    def to_json(self) -> dict[str, Any]:
        return {k: p.model_dump(mode="json") for k, p in self.params.items()}

    def validate(self, base: Mapping[str, Any], config_cls: type[BaseModel] | None = None) -> None:
        """Check keys and every value a trial could draw against the train config.

        Each key must be a field of ``config_cls`` (default ``TrainConfig``); then the base
        config with each bound / choice set must validate, so a trial can never fail on a
        value the config rejects.

        Raises:
            ConfigError: unknown key, or a bound / choice the config rejects.
        """
        if config_cls is None:
            from cvpipe.engine.config import TrainConfig

            config_cls = TrainConfig
        for key in self.params:
            check_key(key, config_cls)
        for key, param in self.params.items():
            for value in param.probes():
                data = apply_params(base, {key: value})
                try:
                    config_cls.model_validate(data)
                except ValidationError as exc:
                    raise ConfigError(
                        f"space.{key}: the value {value!r} (a {_role(param, value)}) is not valid for "
                        f"the train config: {_first_error(exc)}; narrow the range or fix the choices"
                    ) from None

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Draw one value per key from an Optuna trial (decoded: lists come back as lists)."""
        out: dict[str, Any] = {}
        for key, p in self.params.items():
            if isinstance(p, FloatParam):
                out[key] = trial.suggest_float(key, p.low, p.high, log=p.log, step=p.step)
            elif isinstance(p, IntParam):
                out[key] = trial.suggest_int(key, p.low, p.high, step=p.step, log=p.log)
            else:
                out[key] = p.decode(trial.suggest_categorical(key, p.values()))
        return out

    def decode(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Optuna's stored params → config values (JSON-encoded choices decoded)."""
        out = {}
        for key, value in params.items():
            p = self.params.get(key)
            out[key] = p.decode(value) if isinstance(p, CategoricalParam) else value
        return out

    def grid(self) -> dict[str, list[Any]]:
        """Every key's grid values (for the grid strategy).

        Raises:
            ConfigError: a float parameter without ``step``.
        """
        out = {}
        for key, p in self.params.items():
            try:
                out[key] = p.values()
            except ValueError as exc:
                raise ConfigError(
                    f"space.{key}: {exc}; add step: ... or use a categorical list"
                ) from None
        return out

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())


def _role(param: Any, value: Any) -> str:
    if isinstance(param, CategoricalParam):
        return "choice"
    return "lower bound" if value == param.low else "upper bound"


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg
