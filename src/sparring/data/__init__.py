"""Datasets: the Dataset type, built-ins, loaders, poisoned data and triggers."""

from sparring.data.builtin import BUILTINS, FEATURES, SENSITIVE, breast_cancer, digits, fair, load_builtin, mnist5k
from sparring.data.dataset import Dataset
from sparring.data.loaders import load_csv, load_dataset, load_npz
from sparring.data.poisoned import PoisonedDataset, Trigger

__all__ = [
    "BUILTINS",
    "FEATURES",
    "SENSITIVE",
    "Dataset",
    "PoisonedDataset",
    "Trigger",
    "breast_cancer",
    "digits",
    "fair",
    "load_builtin",
    "load_csv",
    "load_dataset",
    "load_npz",
    "mnist5k",
]
