"""The assessment config: a TOML file validated by pydantic.

Unknown keys and unknown names are errors; :func:`load_config` turns any problem into a
:class:`~sparring.errors.ConfigError` whose one-line message names the key and what it
accepts.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sparring.errors import ConfigError, SparringError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _one_of(value: str, accepted: list[str], what: str) -> str:
    if value not in accepted:
        raise ValueError(f"unknown {what} {value!r}; accepted: {', '.join(accepted)}")
    return value


def _parses(parse: Callable[[str], object], spec: str) -> None:
    """Run a spec parser; its SparringError becomes the ValueError pydantic reports with the key."""
    try:
        parse(spec)
    except SparringError as e:
        raise ValueError(str(e)) from None


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
    onnx: str | None = None
    onnx_output: Literal["logits", "probabilities"] = "logits"
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
        sources = [s for s in (self.architecture, self.factory, self.sklearn, self.onnx) if s is not None]
        if len(sources) > 1:
            raise ValueError("give at most one of 'architecture', 'factory', 'sklearn' or 'onnx'")
        if self.weights is not None and self.factory is None:
            raise ValueError("'weights' goes with 'factory' (a function that builds the module)")
        return self

    @property
    def trains_here(self) -> bool:
        """True when sparring trains the model (zoo architecture, or a factory without weights)."""
        return self.sklearn is None and self.onnx is None and self.weights is None


class AdversarialTrainingConfig(_Strict):
    """Settings of the adversarial-training defence (Madry et al., ICLR 2018)."""

    norm: Literal["linf", "l2"] = "linf"
    eps: float = Field(0.15, ge=0)
    steps: int = Field(2, ge=1)
    step_size: float | None = Field(None, ge=0)
    epochs: int | None = Field(4, ge=1)


def _listify_eps(v: Any) -> Any:
    return [v] if isinstance(v, int | float) else v


def _sorted_eps(v: list[float]) -> list[float]:
    for e in v:
        if not e >= 0:
            raise ValueError(f"eps must be >= 0, got {e}")
    return sorted(v)


#: Evasion defences that train a fresh model (settings in [adversarial_training] / [generalisation]).
TRAINING_DEFENCES = ("adversarial_training", "dropout", "weight_decay", "augmentation")
#: Evasion defences that detect adversarial inputs rather than classify them.
DETECTORS = ("feature_squeezing",)
#: Evasion attacks the config accepts besides the registered single attacks.
COMPOSITE_ATTACKS = ("autoattack", "transfer")
#: Defences of the transfer-learning (teacher -> student) scenario.
TRANSFER_LEARNING_DEFENCES = ("fine_tune", "dissimilarity", "gradient_dissimilarity")


class GeneralisationConfig(_Strict):
    """Settings of the generalisation defences: each trains a fresh model with one option changed."""

    dropout: float = Field(0.3, gt=0, lt=1)
    weight_decay: float = Field(5e-4, gt=0)
    augment: str = "noise:0.1"

    @field_validator("augment")
    @classmethod
    def _known_augment(cls, v: str) -> str:
        from sparring.train import parse_augment

        _parses(parse_augment, v)
        return v


class FeatureSqueezingConfig(_Strict):
    """Settings of the feature-squeezing detector (Xu et al., NDSS 2018).

    ``squeezers`` default by data shape: 1-bit depth and 2x2 median for images of 16 pixels
    or more a side (the paper's MNIST pair), 2-bit depth and JPEG 50 for smaller images
    (a 2x2 median destroys 8x8 digits), 2-bit depth for tabular data.
    """

    squeezers: list[str] | None = None
    fpr: float = Field(0.05, gt=0, lt=1)

    @field_validator("squeezers")
    @classmethod
    def _known_squeezers(cls, v: list[str] | None) -> list[str] | None:
        from sparring.defenses.inference import parse_transform

        if v is not None and not v:
            raise ValueError("give at least one squeezer, e.g. [\"bit_depth:1\", \"median:2\"]")
        for spec in v or []:
            _parses(parse_transform, spec)
        return v


class EvasionConfig(_Strict):
    """One evasion attack swept over epsilons, against the model and each listed defence."""

    attack: str
    norm: Literal["linf", "l2"] = "linf"
    eps: list[float] = Field(min_length=1)
    steps: int | None = Field(None, ge=1)
    step_size: float | None = Field(None, ge=0)
    restarts: int = Field(1, ge=1)
    random_start: bool = True
    loss: Literal["ce", "dlr"] | None = None
    max_queries: int = Field(1000, ge=1)
    version: Literal["standard", "fast"] = "standard"
    surrogate: str | None = None
    base_attack: str = "pgd"
    eot_samples: int = Field(10, ge=1)
    samples: int | None = Field(None, ge=1)
    reference_eps: float | None = Field(None, ge=0)
    sanity_checks: bool = True
    defenses: list[str] = []

    _listify = field_validator("eps", mode="before")(_listify_eps)
    _nonnegative = field_validator("eps")(_sorted_eps)

    @field_validator("attack")
    @classmethod
    def _known(cls, v: str) -> str:
        from sparring.attacks.evasion import EVASION_ATTACKS

        return _one_of(v, [*EVASION_ATTACKS, *COMPOSITE_ATTACKS], "evasion attack")

    @field_validator("base_attack")
    @classmethod
    def _known_base(cls, v: str) -> str:
        from sparring.attacks.evasion import EVASION_ATTACKS

        return _one_of(v, list(EVASION_ATTACKS), "transfer base_attack")

    @field_validator("surrogate")
    @classmethod
    def _known_surrogate(cls, v: str | None) -> str | None:
        from sparring.models import ARCHITECTURES

        return None if v is None else _one_of(v, list(ARCHITECTURES), "surrogate architecture")

    @field_validator("defenses")
    @classmethod
    def _known_defences(cls, v: list[str]) -> list[str]:
        from sparring.defenses.inference import TRANSFORM_NAMES, parse_transform

        _check_names(v, [*TRAINING_DEFENCES, *DETECTORS, *TRANSFORM_NAMES], "evasion defence")
        for spec in v:
            if spec.split(":", 1)[0] in TRANSFORM_NAMES:
                _parses(parse_transform, spec)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> EvasionConfig:
        if self.attack == "cw-l2" and self.norm != "l2":
            raise ValueError("cw-l2 is an L2 attack: set norm = \"l2\"")
        if self.attack == "transfer" and self.base_attack == "cw-l2" and self.norm != "l2":
            raise ValueError("base_attack cw-l2 is an L2 attack: set norm = \"l2\"")
        if len(set(self.defenses)) != len(self.defenses):
            raise ValueError("a defence is listed twice")
        return self

    @property
    def ref_eps(self) -> float:
        """The epsilon the threat matrix rates risk at (default: the largest swept)."""
        return self.reference_eps if self.reference_eps is not None else max(self.eps)


class TransferLearningConfig(_Strict):
    """The transfer-learning case (BSI): adversarial examples crafted on a public teacher, tried on its student.

    sparring trains the teacher on one part of the training data and fine-tunes a student
    from it (copied layers frozen) on the other; ``attack`` is ``"pgd"`` (untargeted PGD on
    the teacher) or ``"mimicry"`` (Wang et al., USENIX Security 2018: match the teacher's
    internal representation of an image of another class). Defences: ``"dissimilarity"``
    fine-tunes every student layer away from the teacher's representation (Wang et al.);
    ``"gradient_dissimilarity"`` away from the teacher's input-gradient directions (Demontis
    et al., USENIX Security 2019); ``"fine_tune"`` fine-tunes every layer without a penalty
    (the control that shows what a penalty adds).
    """

    attack: Literal["pgd", "mimicry"] = "pgd"
    norm: Literal["linf", "l2"] = "linf"
    eps: list[float] = Field([0.1, 0.2], min_length=1)
    steps: int = Field(40, ge=1)
    teacher_fraction: float = Field(0.5, gt=0, lt=1)
    teacher_epochs: int = Field(6, ge=1)
    student_epochs: int = Field(4, ge=1)
    samples: int | None = Field(500, ge=1)
    reference_eps: float | None = Field(None, ge=0)
    defenses: list[str] = []

    _listify = field_validator("eps", mode="before")(_listify_eps)
    _nonnegative = field_validator("eps")(_sorted_eps)

    @field_validator("defenses")
    @classmethod
    def _known_defences(cls, v: list[str]) -> list[str]:
        return _check_names(v, list(TRANSFER_LEARNING_DEFENCES), "transfer-learning defence")

    @property
    def ref_eps(self) -> float:
        """The epsilon the threat matrix rates risk at (default: the largest swept)."""
        return self.reference_eps if self.reference_eps is not None else max(self.eps)


#: Backdoor defences by how they act: detect poison in the training set and retrain without it;
#: filter triggered inputs at inference (threshold at a false-rejection rate); purify inputs;
#: inspect the trained model (verdict and reconstructed trigger); repair it on a small clean set;
#: or train it with strong augmentation.
BACKDOOR_DATA_DEFENCES = ("activation_clustering", "spectral_signatures", "autoencoder")
BACKDOOR_FILTERS = ("strip", "random_masking")
BACKDOOR_PURIFIERS = ("purification",)
BACKDOOR_INSPECTORS = ("neural_cleanse", "tabor")
BACKDOOR_REPAIRS = ("fine_pruning", "fine_tuning", "unlearning")
BACKDOOR_TRAINING = ("mixup", "cutmix")
BACKDOOR_DEFENCES = (
    *BACKDOOR_DATA_DEFENCES,
    *BACKDOOR_FILTERS,
    *BACKDOOR_PURIFIERS,
    *BACKDOOR_INSPECTORS,
    *BACKDOOR_REPAIRS,
    *BACKDOOR_TRAINING,
)
#: Backdoor attacks: poisoned training data of the assessed model, or (``hidden_trigger``,
#: ``teacher``) the transfer-learning case, where the victim is a student of a public teacher.
BACKDOOR_ATTACKS = ("badnets", "blended", "hidden_trigger", "teacher")
TRANSFER_BACKDOORS = ("hidden_trigger", "teacher")
TRANSFER_BACKDOOR_DEFENCES = (*BACKDOOR_FILTERS, *BACKDOOR_PURIFIERS, *BACKDOOR_INSPECTORS, *BACKDOOR_REPAIRS)


class LearningCurveConfig(_Strict):
    """Backdoor learning curves (Cina et al. 2021): ASR as the poisoned samples' loss weight goes 0 -> 1.

    One curve per weight decay (weak and strong regularisation).
    """

    betas: list[float] = Field([0.0, 0.05, 0.2, 0.5, 1.0], min_length=2)
    weight_decay: list[float] = Field([0.0, 0.01], min_length=1)

    @field_validator("betas")
    @classmethod
    def _unit(cls, v: list[float]) -> list[float]:
        for b in v:
            if not 0.0 <= b <= 1.0:
                raise ValueError(f"beta must be in [0, 1], got {b}")
        return sorted(v)

    @field_validator("weight_decay")
    @classmethod
    def _nonnegative(cls, v: list[float]) -> list[float]:
        for w in v:
            if not w >= 0.0:
                raise ValueError(f"weight decay must be >= 0, got {w}")
        return sorted(v)


class BackdoorConfig(_Strict):
    """A backdoor attack on the training data, against the model and each listed defence.

    ``badnets`` stamps a white patch (Gu et al. 2017), ``blended`` blends a noise pattern at
    ``alpha`` (Chen et al. 2017); ``all_to_all`` relabels class i to i + 1 instead of one
    target. ``hidden_trigger`` (Saha et al., AAAI 2020: correctly labelled ``target``-class
    poisons within ``eps`` whose features match patched ``source`` images) and ``teacher`` (a
    backdoored public teacher, BSI) attack a student fine-tuned from a teacher sparring
    trains. Defences that need trusted clean data get ``clean_fraction`` of the training
    set; input filters reject ``frr`` of clean inputs; Neural Cleanse and TABOR optimise
    for ``inspection_steps`` (300 flag BadNets on mnist5k).
    """

    attack: str = "badnets"
    poison_fraction: float = Field(0.05, ge=0, le=1)
    target: int = Field(0, ge=0)
    source: int | None = Field(None, ge=0)
    patch_size: int = Field(3, ge=1)
    alpha: float = Field(0.1, gt=0, le=1)
    eps: float = Field(16 / 255, gt=0, le=1)
    all_to_all: bool = False
    teacher_fraction: float = Field(0.5, gt=0, lt=1)
    clean_fraction: float = Field(0.05, gt=0, lt=1)
    frr: float = Field(0.05, gt=0, lt=1)
    inspection_steps: int = Field(300, ge=1)
    learning_curve: LearningCurveConfig | None = None
    defenses: list[str] = []

    @field_validator("attack")
    @classmethod
    def _known(cls, v: str) -> str:
        return _one_of(v, list(BACKDOOR_ATTACKS), "backdoor attack")

    @field_validator("defenses")
    @classmethod
    def _known_defences(cls, v: list[str]) -> list[str]:
        _check_names(v, list(BACKDOOR_DEFENCES), "backdoor defence")
        if len(set(v)) != len(v):
            raise ValueError("a defence is listed twice")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> BackdoorConfig:
        if self.all_to_all and self.attack not in ("badnets", "blended"):
            raise ValueError("all_to_all applies to badnets and blended")
        if self.attack in TRANSFER_BACKDOORS:
            bad = [d for d in self.defenses if d in (*BACKDOOR_DATA_DEFENCES, *BACKDOOR_TRAINING)]
            if bad:
                raise ValueError(
                    f"{self.attack} attacks a student of a public teacher; defences that retrain on the poisoned set "
                    f"({', '.join(bad)}) do not apply: use {', '.join(TRANSFER_BACKDOOR_DEFENCES)}"
                )
            if self.learning_curve is not None:
                raise ValueError(f"learning_curve applies to badnets and blended, not {self.attack}")
        return self


#: Availability attacks on the training labels or points.
POISONING_ATTACKS = ("label_flip", "targeted_label_flip", "loss_label_flip", "gradient")
#: Victims of availability poisoning: the assessed model, or a linear model on flattened inputs.
POISONING_MODELS = ("target", "logistic_regression", "linear_svm")
POISONING_DEFENCES = ("knn_label_consistency",)


class PoisoningConfig(_Strict):
    """Availability poisoning of the training data, swept over poison fractions.

    ``label_flip`` flips random labels; ``targeted_label_flip`` flips ``source`` to
    ``target``; ``loss_label_flip`` flips the labels a trained model is most sure of to its
    least likely class; ``gradient`` adds points optimised against a linear model (Biggio et
    al., ICML 2012; Munoz-Gonzalez et al., AISec 2017) over ``steps`` gradient steps and is
    compared with random flips of the same number of points.
    """

    attack: str = "label_flip"
    fraction: list[float] = Field([0.1, 0.2, 0.4], min_length=1)
    model: str | None = None
    source: int = Field(0, ge=0)
    target: int = Field(1, ge=0)
    steps: int = Field(100, ge=1)
    defenses: list[str] = []

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
        return _one_of(v, list(POISONING_ATTACKS), "poisoning attack")

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str | None) -> str | None:
        return None if v is None else _one_of(v, list(POISONING_MODELS), "poisoning victim model")

    @field_validator("defenses")
    @classmethod
    def _known_defences(cls, v: list[str]) -> list[str]:
        return _check_names(v, list(POISONING_DEFENCES), "poisoning defence")

    @model_validator(mode="after")
    def _consistent(self) -> PoisoningConfig:
        if self.attack == "gradient" and self.model == "target":
            raise ValueError(
                "gradient poisoning attacks a linear model: set model to logistic_regression or linear_svm"
            )
        if self.attack == "targeted_label_flip" and self.source == self.target:
            raise ValueError("targeted_label_flip needs source != target")
        return self

    @property
    def victim(self) -> str:
        """The model the poison is trained into (gradient poisoning defaults to logistic regression)."""
        return self.model or ("logistic_regression" if self.attack == "gradient" else "target")


CLEAN_LABEL_ATTACKS = ("feature_collision", "convex_polytope", "bullseye_polytope")


class CleanLabelConfig(_Strict):
    """Clean-label targeted poisoning in the transfer-learning setting.

    The attacker adds correctly labelled images of ``base_class`` whose features collide with
    a target image of ``target_class``, so the student classifies that image as
    ``base_class``: feature collision (Shafahi et al., NeurIPS 2018), convex polytope (Zhu et
    al., ICML 2019) or bullseye polytope (Aghakhani et al., EuroS&P 2021). ``knowledge`` is
    ``white_box`` (the attacker has the public teacher the student copies) or ``gray_box``
    (surrogates with other weights); ``training`` is ``frozen`` (the student retrains its head)
    or ``end_to_end``.
    """

    attack: str = "bullseye_polytope"
    knowledge: Literal["white_box", "gray_box"] = "gray_box"
    training: Literal["frozen", "end_to_end"] = "frozen"
    targets: int = Field(10, ge=1)
    n_poisons: int = Field(10, ge=1)
    eps: float = Field(0.3, gt=0, le=1)
    target_class: int = Field(1, ge=0)
    base_class: int = Field(7, ge=0)
    teacher_fraction: float = Field(0.5, gt=0, lt=1)

    @field_validator("attack")
    @classmethod
    def _known(cls, v: str) -> str:
        return _one_of(v, list(CLEAN_LABEL_ATTACKS), "clean-label attack")

    @model_validator(mode="after")
    def _consistent(self) -> CleanLabelConfig:
        if self.target_class == self.base_class:
            raise ValueError("target_class and base_class must differ")
        return self


FEDERATED_ATTACKS = ("model_replacement", "label_flip")
FEDERATED_DEFENCES = ("median", "trimmed_mean", "clipping")


def _is_nonnegative(text: str) -> bool:
    try:
        return float(text) >= 0.0
    except ValueError:
        return False


class FederatedConfig(_Strict):
    """A FedAvg simulation with malicious clients and robust aggregation.

    ``clients`` train the configured architecture on an ``iid`` or ``dirichlet:ALPHA`` split
    of the training set for ``warmup_rounds`` benign rounds; then ``rounds`` more run, in
    which ``malicious`` clients attack: ``model_replacement`` (Bagdasaryan et al., AISTATS
    2020: a BadNets backdoor, update boosted to replace the global model, in
    ``attack_round``) or ``label_flip`` (random labels, every round). Defences: coordinate
    ``median``, ``trimmed_mean`` (Yin et al., ICML 2018), norm ``clipping`` at the median
    benign update norm, ``clipping:SIGMA`` with Gaussian noise of that scale (Sun et al.
    2019). The model-replacement attacker trains ``attack_epochs`` local epochs, as
    Bagdasaryan et al.'s attacker trains longer.
    """

    attack: str = "model_replacement"
    clients: int = Field(10, ge=2)
    malicious: int = Field(1, ge=1)
    split: str = "iid"
    warmup_rounds: int = Field(10, ge=0)
    rounds: int = Field(5, ge=1)
    attack_round: int = Field(1, ge=1)
    local_epochs: int = Field(2, ge=1)
    attack_epochs: int = Field(10, ge=1)
    lr: float = Field(0.1, gt=0)
    target: int = Field(0, ge=0)
    patch_size: int = Field(3, ge=1)
    defenses: list[str] = []

    @field_validator("attack")
    @classmethod
    def _known(cls, v: str) -> str:
        return _one_of(v, list(FEDERATED_ATTACKS), "federated attack")

    @field_validator("split")
    @classmethod
    def _known_split(cls, v: str) -> str:
        name, _, arg = v.partition(":")
        if name == "iid" and not arg:
            return v
        if name == "dirichlet":
            try:
                if float(arg) > 0:
                    return v
            except ValueError:
                pass
        raise ValueError(f"split must be 'iid' or 'dirichlet:ALPHA' with ALPHA > 0, got {v!r}")

    @field_validator("defenses")
    @classmethod
    def _known_defences(cls, v: list[str]) -> list[str]:
        _check_names(v, list(FEDERATED_DEFENCES), "federated defence")
        for spec in v:
            name, _, arg = spec.partition(":")
            if arg and name != "clipping":
                raise ValueError(f"{name} takes no argument, got {spec!r}")
            if arg and not _is_nonnegative(arg):
                raise ValueError(f"clipping noise must be a number >= 0, e.g. 'clipping:0.002', got {spec!r}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> FederatedConfig:
        if self.malicious >= self.clients:
            raise ValueError("malicious must be fewer than clients")
        if self.attack_round > self.rounds:
            raise ValueError(f"attack_round must be at most rounds ({self.rounds})")
        return self


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

        _check_names(v, list(HARDENING_NAMES), "membership defence")
        for spec in v:
            _parses(parse_hardening, spec)
        return v


class AssessConfig(_Strict):
    """A whole assessment: data, model, and the attacks (with defences) to run."""

    title: str = "sparring assessment"
    seed: int = 0
    data: DataConfig
    model: ModelConfig = ModelConfig()
    adversarial_training: AdversarialTrainingConfig = AdversarialTrainingConfig()
    generalisation: GeneralisationConfig = GeneralisationConfig()
    feature_squeezing: FeatureSqueezingConfig = FeatureSqueezingConfig()
    evasion: list[EvasionConfig] = []
    transfer_learning: list[TransferLearningConfig] = []
    backdoor: list[BackdoorConfig] = []
    poisoning: list[PoisoningConfig] = []
    clean_label: list[CleanLabelConfig] = []
    federated: list[FederatedConfig] = []
    membership: list[MembershipConfig] = []

    @model_validator(mode="after")
    def _something_to_do(self) -> AssessConfig:
        families = ("evasion", "transfer_learning", "backdoor", "poisoning", "clean_label", "federated", "membership")
        if not any(getattr(self, f) for f in families):
            raise ValueError("the config names no attack: add one of " + ", ".join(f"[[{f}]]" for f in families))
        if not self.model.trains_here:
            if self.membership and self.data.test_path is None:
                raise ValueError(
                    "membership inference on a model trained elsewhere needs its training set: give [data] 'path' "
                    "(the training set) and 'test_path' (data it never saw)"
                )
        retrains = [b for b in self.backdoor if b.attack not in TRANSFER_BACKDOORS]
        on_target = retrains or self.federated or any(p.victim == "target" for p in self.poisoning)
        if not self.model.trains_here and on_target:
            raise ValueError(
                "backdoor, federated and label-flip scenarios on the target retrain the model, so [model] needs "
                "'architecture' or a 'factory' without 'weights'"
            )
        zoo_only = {
            "transfer_learning": bool(self.transfer_learning),
            "clean_label": bool(self.clean_label),
            "backdoor (hidden_trigger, teacher)": len(retrains) < len(self.backdoor),
        }
        for name, used in zoo_only.items():
            if used and (self.model.factory is not None or not self.model.trains_here):
                raise ValueError(f"{name} trains a zoo teacher and student: [model] needs 'architecture' (or nothing)")
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
        return p if p is None or Path(p).is_absolute() else str(base / p)

    data = cfg.data.model_copy(update={"path": fix(cfg.data.path), "test_path": fix(cfg.data.test_path)})
    model = cfg.model.model_copy(
        update={"weights": fix(cfg.model.weights), "sklearn": fix(cfg.model.sklearn), "onnx": fix(cfg.model.onnx)}
    )
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
