"""Adapter for fitted scikit-learn estimators (scores and labels only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sparring.errors import InputError
from sparring.models.base import Access, Classifier


class SklearnClassifier(Classifier):
    """Wrap a fitted scikit-learn classifier.

    Inputs are flattened to ``[N, D]`` before they reach the estimator. The estimator's
    ``classes_`` must be the integers ``0..K-1`` (the class indices of a sparring Dataset).
    Access is labels, plus scores when the estimator has ``predict_proba``.
    """

    def __init__(
        self,
        estimator: Any,
        input_shape: Sequence[int],
        *,
        bounds: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        classes = getattr(estimator, "classes_", None)
        if classes is None:
            raise InputError("the scikit-learn estimator is not fitted (it has no classes_)")
        classes = np.asarray(classes)
        if not np.array_equal(classes, np.arange(len(classes))):
            raise InputError(f"estimator classes_ must be 0..K-1, got {classes.tolist()}")
        access = Access.LABELS | (Access.SCORES if hasattr(estimator, "predict_proba") else Access.NONE)
        super().__init__(input_shape=input_shape, num_classes=len(classes), access=access, bounds=bounds)
        n_features = getattr(estimator, "n_features_in_", None)
        if n_features is not None and n_features != int(np.prod(self.input_shape)):
            raise InputError(
                f"estimator expects {n_features} features, but input_shape {self.input_shape} "
                f"has {int(np.prod(self.input_shape))}"
            )
        self.estimator = estimator

    def _np(self, x: Tensor) -> np.ndarray:
        return x.detach().reshape(x.shape[0], -1).cpu().numpy().astype(np.float64)

    def _labels(self, x: Tensor) -> Tensor:
        if x.shape[0] == 0:
            return torch.empty(0, dtype=torch.long)
        return torch.as_tensor(self.estimator.predict(self._np(x)), dtype=torch.long)

    def _scores(self, x: Tensor) -> Tensor:
        if x.shape[0] == 0:
            return torch.empty(0, self.num_classes)
        return torch.as_tensor(self.estimator.predict_proba(self._np(x)), dtype=torch.float32)
