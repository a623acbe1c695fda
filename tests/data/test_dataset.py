from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sparring.data import Dataset, PoisonedDataset, Trigger, breast_cancer, digits, load_dataset, mnist5k
from sparring.errors import ConfigError, InputError


def test_builtins_load_offline_in_unit_range() -> None:
    for ds, shape, n in ((mnist5k(), (1, 28, 28), 5000), (digits(), (1, 8, 8), 1797), (breast_cancer(), (30,), 569)):
        assert ds.input_shape == shape
        assert len(ds) == n
        assert float(ds.x.min()) >= 0.0 and float(ds.x.max()) <= 1.0


def test_split_is_seeded_stratified_and_disjoint() -> None:
    ds = digits()
    tr1, te1 = ds.split(0.2, seed=3)
    _, te2 = ds.split(0.2, seed=3)
    _, te3 = ds.split(0.2, seed=4)
    assert torch.equal(te1.x, te2.x) and not torch.equal(te1.x, te3.x)
    assert len(tr1) + len(te1) == len(ds)
    # stratified: each class keeps its share within one sample
    for c in range(10):
        assert abs(int((te1.y == c).sum()) - 0.2 * int((ds.y == c).sum())) <= 1
    # disjoint: no training row equals a test row index-wise (rows are unique images here)
    train_rows = {tuple(r.tolist()) for r in tr1.x.flatten(1)}
    overlap = sum(tuple(r.tolist()) in train_rows for r in te1.x.flatten(1))
    assert overlap < 5  # digits has a handful of duplicate images, nothing more


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_degenerate_fractions(fraction: float) -> None:
    with pytest.raises((InputError, ConfigError)):
        digits().split(fraction)


def test_dataset_rejects_nan_and_mismatched_lengths() -> None:
    with pytest.raises(InputError, match="NaN"):
        Dataset(torch.tensor([[float("nan")]]), torch.tensor([0]))
    with pytest.raises(InputError, match="shape"):
        Dataset(torch.zeros(3, 2), torch.zeros(2))
    with pytest.raises(InputError, match="class indices"):
        Dataset(torch.zeros(2, 2), torch.tensor([0.5, 1.0]))


def test_npz_and_csv_loaders(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((20, 6)).astype(np.float32)
    y = np.arange(20) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = load_dataset(path=tmp_path / "d.npz", input_shape=(1, 2, 3))
    assert ds.input_shape == (1, 2, 3) and ds.num_classes == 3
    header = ",".join([f"f{i}" for i in range(6)] + ["label"])
    rows = "\n".join(",".join(map(str, [*r, lab])) for r, lab in zip(x.tolist(), y.tolist(), strict=True))
    (tmp_path / "d.csv").write_text(header + "\n" + rows + "\n")
    ds2 = load_dataset(path=tmp_path / "d.csv", label_column="label")
    assert ds2.input_shape == (6,)
    assert torch.allclose(ds2.x, torch.as_tensor(x), atol=1e-6)
    assert torch.equal(ds2.y, torch.as_tensor(y))


def test_loader_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_dataset(path=tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", x=np.zeros((3, 2)))
    with pytest.raises(InputError, match="lacks array"):
        load_dataset(path=tmp_path / "bad.npz")
    np.savez(tmp_path / "nan.npz", x=np.full((3, 2), np.nan), y=np.zeros(3))
    with pytest.raises(InputError, match="NaN"):
        load_dataset(path=tmp_path / "nan.npz")
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_dataset("cifar10")
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(InputError, match="unsupported"):
        load_dataset(path=tmp_path / "t.txt")


def test_trigger_blends_pattern() -> None:
    pattern = torch.ones(1, 4, 4)
    alpha = torch.zeros(1, 4, 4)
    alpha[:, -2:, -2:] = 1.0
    t = Trigger(pattern, alpha)
    x = torch.zeros(3, 1, 4, 4)
    out = t.apply(x)
    assert float(out[:, :, -2:, -2:].min()) == 1.0 and float(out[:, :, :2, :2].max()) == 0.0
    with pytest.raises(InputError):
        t.apply(torch.zeros(1, 1, 5, 5))
    with pytest.raises(InputError, match="alpha"):
        Trigger(pattern, alpha * 2)


def test_poisoned_dataset_target_of() -> None:
    x, y = torch.zeros(4, 2), torch.tensor([0, 1, 2, 2])
    mask = torch.zeros(4, dtype=torch.bool)
    one = PoisonedDataset(x, y, ["a", "b", "c"], poison_mask=mask, original_y=y, target=1)
    assert torch.equal(one.target_of(y), torch.tensor([1, 1, 1, 1])) and not one.all_to_all
    every = PoisonedDataset(x, y, ["a", "b", "c"], poison_mask=mask, original_y=y, all_to_all=True)
    assert torch.equal(every.target_of(y), torch.tensor([1, 2, 0, 0]))
    assert every.subset(torch.tensor([0, 2])).all_to_all
    with pytest.raises(InputError, match="no backdoor target"):
        PoisonedDataset(x, y, poison_mask=mask, original_y=y).target_of(y)
    with pytest.raises(InputError, match="all-to-all"):
        PoisonedDataset(x, y, poison_mask=mask, original_y=y, target=0, all_to_all=True)
