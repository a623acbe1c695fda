"""Pieces of the assessment config that every family shares: the strict base, data, model, helpers.

Each family declares the pydantic spec of its ``[[entries]]`` (see
:mod:`sparring.assess.families`); :mod:`sparring.assess.config` assembles them with the
sections here into the whole config. Unknown keys and unknown names are errors, reported
with the key and what it accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from sparring.errors import SparringError


class Strict(BaseModel):
    """Frozen, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Entry(Strict):
    """One ``[[family]]`` entry; ``name`` (optional) is its stable name in report keys and ``--fail-on`` rules."""

    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]+$", max_length=64)


#: Each family's defence check, by the spec class of its entries (:class:`~sparring.assess.family.Family` fills it).
DEFENCE_CHECKS: dict[type[BaseModel], Callable[[str], object]] = {}


class WithDefences(Strict):
    """A family's entry with ``defences`` (the subclass declares them with :func:`defences_field`).

    Each defence is checked by the family whose spec the subclass is (name known, argument
    valid), so a bad one is a one-line config error before anything runs.
    """

    @field_validator("defences", check_fields=False)
    @classmethod
    def _known_defences(cls, v: list[str]) -> list[str]:
        check = DEFENCE_CHECKS.get(cls)
        if check is None:
            raise TypeError(f"{cls.__name__} is no family's spec")
        return [parses(check, d) for d in v]


def one_of(value: str, accepted: Sequence[str], what: str) -> str:
    """``value`` if it is in ``accepted``, else a ValueError listing them (pydantic adds the key)."""
    if value not in accepted:
        raise ValueError(f"unknown {what} {value!r}; accepted: {', '.join(accepted)}")
    return value


def parses(check: Callable[[str], object], spec: str) -> str:
    """Run a library check on ``spec``; its :class:`SparringError` becomes the ValueError pydantic reports."""
    try:
        check(spec)
    except SparringError as e:
        raise ValueError(str(e)) from None
    return spec


def listify(v: Any) -> Any:
    """A single number becomes a one-element list (``eps = 0.1`` means ``eps = [0.1]``)."""
    return [v] if isinstance(v, int | float) else v


def query_budgets(v: list[int]) -> list[int]:
    """Query budgets (a validator): positive counts, sorted, without repeats."""
    if any(b < 1 for b in v):
        raise ValueError(f"budgets must be positive query counts, got {v}")
    return sorted(set(v))


def surrogate_architecture(v: str | None) -> str | None:
    """An attacker's surrogate (a validator): a zoo architecture, or None where the entry allows a default."""
    from sparring.models.zoo import ARCHITECTURES

    return None if v is None else one_of(v, list(ARCHITECTURES), "surrogate architecture")


def sorted_nonnegative(v: list[float], what: str = "eps") -> list[float]:
    """The values sorted, each checked to be >= 0."""
    for e in v:
        if not e >= 0:
            raise ValueError(f"{what} must be >= 0, got {e}")
    return sorted(v)


def defences_field() -> Any:
    """The per-entry list of defences; ``defenses`` (American spelling) is accepted as well."""
    return Field(default_factory=list, validation_alias=AliasChoices("defences", "defenses"))


class Signed(Strict):
    """``signature`` (a ``sparring sign`` envelope) and ``public_key``: the files are verified before loading."""

    signature: str | None = None
    public_key: str | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> Signed:
        if (self.signature is None) != (self.public_key is None):
            raise ValueError("'signature' and 'public_key' go together")
        return self


class DataConfig(Signed):
    """Where the data comes from and how it is split."""

    dataset: str | None = None
    path: str | None = None
    test_path: str | None = None
    #: CSV only: the label column (a header name or an index; default the last), the delimiter
    #: (default: the one of , ; or tab that line 1 has) and whether line 1 is a header (default: detected).
    label_column: str | int = -1
    delimiter: str | None = Field(None, min_length=1, max_length=1)
    header: bool | None = None
    input_shape: list[int] | None = None
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    bounds: tuple[float, float] = (0.0, 1.0)

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v: str | None) -> str | None:
        from sparring.data import BUILTINS

        return None if v is None else one_of(v, list(BUILTINS), "dataset")

    @model_validator(mode="after")
    def _exactly_one_source(self) -> DataConfig:
        if self.signature is not None and self.dataset is not None:
            raise ValueError("a built-in dataset comes from an installed package; 'signature' goes with 'path'")
        if (self.dataset is None) == (self.path is None):
            raise ValueError("give exactly one of 'dataset' (a built-in name) or 'path' (a .npz or .csv file)")
        if self.test_path is not None and self.path is None:
            raise ValueError("'test_path' goes with 'path' (then 'path' is the training set and no split is made)")
        if self.bounds[0] >= self.bounds[1]:
            raise ValueError(f"bounds must be (low, high) with low < high, got {self.bounds}")
        return self


class ModelConfig(Signed):
    """The target model: a zoo architecture trained here, or the user's own model."""

    architecture: str | None = None
    factory: str | None = None
    factory_path: str | None = None
    weights: str | None = None
    sklearn: str | None = None
    onnx: str | None = None
    #: A deployed model behind ``sparring serve``: ``http://HOST:PORT/v2/models/NAME``, its API key in ``api_key_env``.
    endpoint: str | None = None
    api_key_env: str = "SPARRING_API_KEY"
    onnx_output: Literal["logits", "probabilities"] = "logits"
    trusted_types: list[str] = []
    #: The layer feature-space defences read (``"fc1"``, or ``"head:input"`` for what enters ``head``);
    #: default: a zoo model's ``penultimate``, else the input of the last ``nn.Linear``.
    feature_layer: str | None = None
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    optimizer: Literal["adam", "sgd"] = "adam"

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, v: str | None) -> str | None:
        from sparring.models import ARCHITECTURES

        return None if v is None else one_of(v, list(ARCHITECTURES), "architecture")

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        named = (self.architecture, self.factory, self.sklearn, self.onnx, self.endpoint)
        sources = [s for s in named if s is not None]
        if len(sources) > 1:
            raise ValueError("give at most one of 'architecture', 'factory', 'sklearn', 'onnx' or 'endpoint'")
        if self.endpoint is not None and not self.endpoint.startswith(("http://", "https://")):
            raise ValueError("'endpoint' is a URL: http://HOST:PORT/v2/models/NAME")
        if self.weights is not None and self.factory is None:
            raise ValueError("'weights' goes with 'factory' (a function that builds the module)")
        if self.signature is not None and self.trains_here and self.factory is None:
            raise ValueError("'signature' covers the files of a model; a zoo model trained here has none")
        if self.feature_layer is not None and (self.sklearn is not None or self.onnx is not None):
            raise ValueError("'feature_layer' names a layer of a PyTorch model; a skops or ONNX model has none")
        return self

    @property
    def trains_here(self) -> bool:
        """True when sparring trains the model (zoo architecture, or a factory without weights)."""
        return self.sklearn is None and self.onnx is None and self.weights is None and self.endpoint is None

    @property
    def zoo(self) -> bool:
        """True when the model is a zoo architecture sparring trains (named, or the default)."""
        return self.trains_here and self.factory is None


class BaseConfig(Strict):
    """What every assessment has: a title, a seed, the data and the model.

    :mod:`sparring.assess.config` extends it with one list of entries per family, the
    families' settings sections and the family-wide ``[defences]`` table.
    """

    title: str = "sparring assessment"
    seed: int = 0
    data: DataConfig
    model: ModelConfig = ModelConfig()

    def entries(self, key: str) -> list[BaseModel]:
        """The ``[[key]]`` entries of a family (empty when the config has none)."""
        value = getattr(self, key, None)
        return list(value) if isinstance(value, list) else []

    def section(self, name: str) -> BaseModel:
        """A settings section such as ``[adversarial_training]``."""
        value = getattr(self, name)
        assert isinstance(value, BaseModel)
        return value

    def family_defences(self, key: str) -> list[str]:
        """Defences the ``[defences]`` table lists for every entry of a family."""
        table = getattr(self, "defences", None)
        value = getattr(table, key, None) if table is not None else None
        return list(value) if isinstance(value, list) else []
