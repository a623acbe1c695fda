"""The assessment config: a TOML file validated by pydantic.

Unknown keys and unknown names are errors; :func:`load_config` turns any problem into a
:class:`~sparring.errors.ConfigError` whose one-line message names the key and what it
accepts.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sparring.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _one_of(value: str, accepted: list[str], what: str) -> str:
    if value not in accepted:
        raise ValueError(f"unknown {what} {value!r}; accepted: {', '.join(accepted)}")
    return value


def _check_names(names: list[str], accepted: list[str], what: str) -> list[str]:
    for name in names:
        _one_of(name.split(":", 1)[0], accepted, what)
    return names


class DataConfig(_Strict):
    """Where the data comes from and how it is split."""

    dataset: str | None = None
    path: str | None = None
    test_path: str | None = None
    label_column: str | int = -1
    input_shape: list[int] | None = None
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    bounds: tuple[float, float] = (0.0, 1.0)

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v: str | None) -> str | None:
        from sparring.data import BUILTINS

        return None if v is None else _one_of(v, list(BUILTINS), "dataset")

    @model_validator(mode="after")
    def _exactly_one_source(self) -> DataConfig:
        if (self.dataset is None) == (self.path is None):
            raise ValueError("give exactly one of 'dataset' (a built-in name) or 'path' (a .npz or .csv file)")
        if self.test_path is not None and self.path is None:
            raise ValueError("'test_path' goes with 'path' (then 'path' is the training set and no split is made)")
        if self.bounds[0] >= self.bounds[1]:
            raise ValueError(f"bounds must be (low, high) with low < high, got {self.bounds}")
        return self


class ModelConfig(_Strict):
    """The target model: a zoo architecture trained here, or the user's own model."""

    architecture: str | None = None
    factory: str | None = None
    weights: str | None = None
    sklearn: str | None = None
    trusted_types: list[str] = []
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    optimizer: Literal["adam", "sgd"] = "adam"

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, v: str | None) -> str | None:
        from sparring.models import ARCHITECTURES

        return None if v is None else _one_of(v, list(ARCHITECTURES), "architecture")

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        sources = [s for s in (self.architecture, self.factory, self.sklearn) if s is not None]
        if len(sources) > 1:
            raise ValueError("give at most one of 'architecture', 'factory' or 'sklearn'")
        if self.weights is not None and self.factory is None:
            raise ValueError("'weights' goes with 'factory' (a function that builds the module)")
        return self

    @property
    def trains_here(self) -> bool:
        """True when sparring trains the model (zoo architecture, or a factory without weights)."""
        return self.sklearn is None and self.weights is None


class AdversarialTrainingConfig(_Strict):
    """Settings of the adversarial-training defence (Madry et al., ICLR 2018)."""

    norm: Literal["linf", "l2"] = "linf"
    eps: float = Field(0.15, ge=0)
    steps: int = Field(2, ge=1)
    step_size: float | None = Field(None, ge=0)
    epochs: int | None = Field(4, ge=1)


class EvasionConfig(_Strict):
    """One evasion attack swept over epsilons."""

    attack: str
    norm: Literal["linf", "l2"] = "linf"
    eps: list[float] = Field(min_length=1)
    steps: int = Field(40, ge=1)
    step_size: float | None = Field(None, ge=0)
    restarts: int = Field(1, ge=1)
    random_start: bool = True
    samples: int | None = Field(None, ge=1)
    reference_eps: float | None = Field(None, ge=0)
    defenses: list[str] = []

    @field_validator("eps", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, int | float) else v

    @field_validator("eps")
    @classmethod
    def _nonnegative(cls, v: list[float]) -> list[float]:
        for e in v:
            if not e >= 0:
                raise ValueError(f"eps must be >= 0, got {e}")
        return sorted(v)

    @field_validator("attack")
    @classmethod
    def _known(cls, v: str) -> str:
        from sparring.attacks.evasion import EVASION_ATTACKS

        return _one_of(v, list(EVASION_ATTACKS), "evasion attack")

    @field_validator("defenses")
    @classmethod
    def _known_defences(cls, v: list[str]) -> list[str]:
        return _check_names(v, ["adversarial_training"], "evasion defence")

    @property
    def ref_eps(self) -> float:
        """The epsilon the threat matrix rates risk at (default: the largest swept)."""
        return self.reference_eps if self.reference_eps is not None else max(self.eps)


class BackdoorConfig(_Strict):
    """A backdoor attack on the training data."""

    attack: str = "badnets"
    poison_fraction: float = Field(0.05, ge=0, le=1)
    target: int = Field(0, ge=0)
    patch_size: int = Field(3, ge=1)
    defenses: list[str] = []

    @field_validator("attack")
    @classmethod
    def _known(cls, v: str) -> str:
        return _one_of(v, ["badnets"], "backdoor attack")

    @field_validator("defenses")
    @classmethod
    def _known_defences(cls, v: list[str]) -> list[str]:
        return _check_names(v, ["activation_clustering"], "backdoor defence")


class PoisoningConfig(_Strict):
    """Availability poisoning of the training data, swept over poison fractions."""

    attack: str = "label_flip"
    fraction: list[float] = Field([0.1, 0.2, 0.4], min_length=1)

    @field_validator("fraction", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, int | float) else v

    @field_validator("fraction")
    @classmethod
    def _in_unit(cls, v: list[float]) -> list[float]:
        for f in v:
            if not 0.0 <= f <= 1.0:
                raise ValueError(f"poison fraction must be in [0, 1], got {f}")
        return sorted(v)

    @field_validator("attack")
    @classmethod
    def _known(cls, v: str) -> str:
        return _one_of(v, ["label_flip"], "poisoning attack")


class MembershipConfig(_Strict):
    """Membership inference on the model's training set."""

    attack: str = "loss_threshold"
    samples: int = Field(1000, ge=2)
    defenses: list[str] = []

    @field_validator("attack")
    @classmethod
    def _known(cls, v: str) -> str:
        from sparring.attacks.privacy import MEMBERSHIP_ATTACKS

        return _one_of(v, list(MEMBERSHIP_ATTACKS), "membership attack")

    @field_validator("defenses")
    @classmethod
    def _known_defences(cls, v: list[str]) -> list[str]:
        from sparring.defenses.inference import HARDENING_NAMES, parse_hardening
        from sparring.errors import SparringError

        _check_names(v, list(HARDENING_NAMES), "membership defence")
        for spec in v:
            try:
                parse_hardening(spec)
            except SparringError as e:
                raise ValueError(str(e)) from None
        return v


class AssessConfig(_Strict):
    """A whole assessment: data, model, and the attacks (with defences) to run."""

    title: str = "sparring assessment"
    seed: int = 0
    data: DataConfig
    model: ModelConfig = ModelConfig()
    adversarial_training: AdversarialTrainingConfig = AdversarialTrainingConfig()
    evasion: list[EvasionConfig] = []
    backdoor: list[BackdoorConfig] = []
    poisoning: list[PoisoningConfig] = []
    membership: list[MembershipConfig] = []

    @model_validator(mode="after")
    def _something_to_do(self) -> AssessConfig:
        if not (self.evasion or self.backdoor or self.poisoning or self.membership):
            raise ValueError(
                "the config names no attack: add an [[evasion]], [[backdoor]], [[poisoning]] or [[membership]]"
            )
        if self.model.sklearn is not None or self.model.weights is not None:
            if self.membership and self.data.test_path is None:
                raise ValueError(
                    "membership inference on a model trained elsewhere needs its training set: give [data] 'path' "
                    "(the training set) and 'test_path' (data it never saw)"
                )
        if not self.model.trains_here and (self.backdoor or self.poisoning):
            raise ValueError(
                "backdoor and poisoning scenarios retrain the model, so [model] needs 'architecture' or a 'factory' "
                "without 'weights'"
            )
        return self


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


def parse_config(data: dict[str, Any], base_dir: Path | None = None) -> AssessConfig:
    """Validate a config mapping; relative file paths are resolved against ``base_dir``."""
    try:
        cfg = AssessConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"invalid config: {format_validation_error(e)}") from None
    if base_dir is not None:
        cfg = _resolve_paths(cfg, base_dir)
    return cfg


def _resolve_paths(cfg: AssessConfig, base: Path) -> AssessConfig:
    def fix(p: str | None) -> str | None:
        return None if p is None or Path(p).is_absolute() else str(base / p)

    data = cfg.data.model_copy(update={"path": fix(cfg.data.path), "test_path": fix(cfg.data.test_path)})
    model = cfg.model.model_copy(update={"weights": fix(cfg.model.weights), "sklearn": fix(cfg.model.sklearn)})
    return cfg.model_copy(update={"data": data, "model": model})


def load_config(path: str | Path) -> AssessConfig:
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
