"""Regularised training as a membership-inference defence: the target retrained with one setting changed.

Membership inference feeds on the gap between a model's behaviour on its training records and
on unseen ones; regularisation narrows that gap (Shokri et al., S&P 2017, and Yeom et al.,
IEEE CSF 2018, relate the attacks' success to overfitting; Nasr et al., CCS 2018, and
Choquette-Choo et al., ICML 2021, measure weight decay, early stopping and label smoothing as
defences). Each defence here changes one hyper-parameter of the configured training:

- ``weight_decay:W`` — an L2 penalty of ``W`` (Adam's or SGD's ``weight_decay``);
- ``label_smoothing:S`` — cross-entropy against labels smoothed by ``S`` (Szegedy et al.,
  CVPR 2016);
- ``early_stopping:E`` — training stops after ``E`` epochs instead of the configured number
  (a fixed stopping point: the epoch a validation curve would pick is the user's to choose);
- ``dropout:P`` — dropout ``P`` before the last layer (Srivastava et al., JMLR 2014); zoo
  architectures only (a factory's module has no place sparring could add it).

Unlike DP-SGD they promise nothing: what they buy is what the strongest attack measures.
"""

from __future__ import annotations

import dataclasses

from sparring.errors import ConfigError, check_positive_int
from sparring.params import Params, Registry
from sparring.train import TrainConfig


class Regularisation(Params):
    """One setting changed: ``weight_decay``, ``label_smoothing``, ``epochs`` or ``dropout`` (None: unchanged).

    :meth:`config` applies the training settings; ``dropout`` is the model's, for whoever builds it.
    """

    def __init__(
        self,
        weight_decay: float | None = None,
        label_smoothing: float | None = None,
        epochs: int | None = None,
        dropout: float | None = None,
    ) -> None:
        if weight_decay is not None and not weight_decay > 0:
            raise ConfigError(f"weight_decay must be > 0, got {weight_decay}")
        if label_smoothing is not None and not 0 < label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in (0, 1), got {label_smoothing}")
        self.weight_decay = None if weight_decay is None else float(weight_decay)
        self.label_smoothing = None if label_smoothing is None else float(label_smoothing)
        self.epochs = None if epochs is None else check_positive_int("epochs", epochs)
        if dropout is not None and not 0 < dropout < 1:
            raise ConfigError(f"dropout must be in (0, 1), got {dropout}")
        self.dropout = None if dropout is None else float(dropout)

    def config(self, base: TrainConfig) -> TrainConfig:
        """``base`` with this defence's setting in place of the configured one."""
        return dataclasses.replace(
            base,
            weight_decay=base.weight_decay if self.weight_decay is None else self.weight_decay,
            label_smoothing=base.label_smoothing if self.label_smoothing is None else self.label_smoothing,
            epochs=base.epochs if self.epochs is None else self.epochs,
        )


class WeightDecay(Regularisation):
    """An L2 penalty of ``weight_decay`` on the weights."""

    def __init__(self, weight_decay: float = 5e-4) -> None:
        super().__init__(weight_decay=weight_decay)


class LabelSmoothing(Regularisation):
    """Cross-entropy against labels smoothed by ``label_smoothing`` (Szegedy et al. 2016)."""

    def __init__(self, label_smoothing: float = 0.1) -> None:
        super().__init__(label_smoothing=label_smoothing)


class Dropout(Regularisation):
    """Dropout ``dropout`` before the last layer of a zoo architecture."""

    def __init__(self, dropout: float = 0.3) -> None:
        super().__init__(dropout=dropout)


class EarlyStopping(Regularisation):
    """Training stopped after ``epochs`` epochs."""

    def __init__(self, epochs: int = 2) -> None:
        super().__init__(epochs=epochs)


#: Regularised-training defences by config name (``weight_decay:W``, ``label_smoothing:S``, ``early_stopping:E``,
#: ``dropout:P``).
REGULARISATION: Registry[Regularisation] = Registry("regularised training")
REGULARISATION.add("weight_decay", WeightDecay, arg="weight_decay", summary="L2 penalty W on the weights")
REGULARISATION.add("label_smoothing", LabelSmoothing, arg="label_smoothing", summary="labels smoothed by S")
REGULARISATION.add("early_stopping", EarlyStopping, arg="epochs", summary="training stopped after E epochs")
REGULARISATION.add("dropout", Dropout, arg="dropout", summary="dropout P before the last layer (zoo architectures)")
