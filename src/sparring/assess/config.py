"""The assessment config: a TOML file validated by pydantic, its schema built from the families.

:class:`AssessConfig` has ``title``, ``seed``, ``[data]`` and ``[model]``
(:mod:`sparring.assess.spec`), one list of entries per registered family (``[[evasion]]``,
``[[backdoor]]``, ...), the settings sections the families own (``[adversarial_training]``)
and a ``[defences]`` table that lists defences once for every entry of a family. Unknown
keys and unknown names are errors; :func:`load_config` turns any problem into a
:class:`~sparring.errors.ConfigError` whose one-line message names the key and what it
accepts.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, Field, ValidationError, create_model, field_validator, model_validator

from sparring.assess.families import FAMILIES
from sparring.assess.spec import BaseConfig, Strict, parses
from sparring.errors import ConfigError


def _defences_table() -> type[BaseModel]:
    """``[defences]``: for each family that takes defences, a list applied to every entry of the family."""
    fields: dict[str, Any] = {f.key: (list[str], Field(default_factory=list)) for f in FAMILIES if f.defences}
    validators: dict[str, Any] = {}
    for f in FAMILIES:
        if f.defences:

            def check(cls: type[BaseModel], v: list[str], family: Any = f) -> list[str]:
                if len(set(v)) != len(v):
                    raise ValueError("a defence is listed twice")
                return [parses(family.check_defence, d) for d in v]

            validators[f"_check_{f.key}"] = field_validator(f.key)(classmethod(check))
    return create_model("DefencesTable", __base__=Strict, __validators__=validators, **fields)


DefencesTable = _defences_table()


class _Families(BaseConfig):
    """Checks that need every family's entries."""

    @model_validator(mode="after")
    def _something_to_do(self) -> _Families:
        if not any(self.entries(f.key) for f in FAMILIES):
            raise ValueError("the config names no attack: add one of " + ", ".join(f"[[{f.key}]]" for f in FAMILIES))
        for f in FAMILIES:
            if self.family_defences(f.key) and not self.entries(f.key):
                raise ValueError(f"[defences] {f.key} lists defences, but the config has no [[{f.key}]] entry")
        for f in FAMILIES:
            names = [n for e in self.entries(f.key) if (n := getattr(e, "name", None)) is not None]
            if len(set(names)) != len(names):
                raise ValueError(f"two [[{f.key}]] entries have the same name; names must be unique in a family")
            f.check_config(self, self.entries(f.key))
        return self


def _config_model() -> type[BaseConfig]:
    fields: dict[str, Any] = {}
    for f in FAMILIES:
        fields[f.key] = (list[f.spec], Field(default_factory=list))  # type: ignore[name-defined]
        for name, section in f.settings.items():
            fields[name] = (section, Field(default_factory=section))
    fields["defences"] = (
        DefencesTable,
        Field(default_factory=DefencesTable, validation_alias=AliasChoices("defences", "defenses")),
    )
    model = create_model("AssessConfig", __base__=_Families, **fields)
    model.__doc__ = "A whole assessment: data, model, and the attacks (with defences) of every family."
    return model


#: The config model, with one field per registered family (and its settings sections).
AssessConfig: type[BaseConfig] = _config_model()


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def format_validation_error(err: ValidationError) -> str:
    """One line per problem: ``key.path: message``, joined with '; '."""
    parts = []
    for e in err.errors():
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{_where(tuple(e['loc']))}: {msg}")
    return "; ".join(parts)


def parse_config(data: dict[str, Any], base_dir: Path | None = None) -> BaseConfig:
    """Validate a config mapping; relative file paths are resolved against ``base_dir``."""
    try:
        cfg = AssessConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"invalid config: {format_validation_error(e)}") from None
    if base_dir is not None:
        cfg = _resolve_paths(cfg, base_dir)
    return cfg


def _resolve_paths(cfg: BaseConfig, base: Path) -> BaseConfig:
    def fix(p: str | None) -> str | None:
        return p if p is None or Path(p).is_absolute() else str(base / p)

    keys = ("signature", "public_key")
    d = cfg.data
    data = d.model_copy(
        update={"path": fix(d.path), "test_path": fix(d.test_path), **{k: fix(getattr(d, k)) for k in keys}}
    )
    m = cfg.model
    # a factory's module is imported from the config's folder first (or from factory_path)
    search = fix(m.factory_path) if m.factory_path is not None else (str(base) if m.factory else None)
    model = m.model_copy(
        update={
            "weights": fix(m.weights),
            "sklearn": fix(m.sklearn),
            "onnx": fix(m.onnx),
            "factory_path": search,
            **{k: fix(getattr(m, k)) for k in keys},
        }
    )
    return cfg.model_copy(update={"data": data, "model": model})


def load_config(path: str | Path) -> BaseConfig:
    """Read and validate a TOML config file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        raw = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p} is not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p} is not a UTF-8 text file") from None
    return parse_config(raw, p.parent)
