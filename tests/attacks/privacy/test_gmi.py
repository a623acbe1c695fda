"""GMI: the GAN prior learns the public data, its latent search reaches the target class, bad settings are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from sparring.assess import assess, parse_config
from sparring.assess.artefacts import load_module, save_module
from sparring.attacks.privacy.gmi import GMI, GanPrior, train_gan
from sparring.data.builtin import digits
from sparring.errors import ConfigError, InputError
from sparring.models import TorchClassifier, build
from sparring.train import TrainConfig, fit


@pytest.fixture(scope="module")
def setting() -> dict[str, Any]:
    torch.set_num_threads(1)
    data = digits()
    train, public = data.split(0.2, seed=0)  # the GAN's public data is disjoint from the target's training set
    cfg = TrainConfig(epochs=10, batch_size=64, lr=1e-3, seed=0, progress=False)
    target = TorchClassifier(fit(build("mlp", data.input_shape, 10, seed=0), train, cfg).model, (1, 8, 8), 10)
    trained = train_gan(public, latent=16, width=16, epochs=40, batch_size=32, lr=5e-4, seed=0)
    return {"train": train, "public": public, "target": target, "trained": trained}


def _nearest(samples: torch.Tensor, real: torch.Tensor) -> float:
    return float(torch.cdist(samples.flatten(1), real.flatten(1)).min(1).values.mean())


def test_the_generator_learns_the_public_data_without_collapsing(setting: dict[str, Any]) -> None:
    public, trained = setting["public"], setting["trained"]
    with torch.random.fork_rng():
        torch.manual_seed(1)
        untrained = GanPrior((1, 8, 8), latent=16, width=16)
    learnt, before = trained.gan.sample(200, seed=1), untrained.sample(200, seed=1)
    assert float(learnt.min()) >= 0.0 and float(learnt.max()) <= 1.0
    # samples move close to real digits (an untrained generator draws grey blobs far from all of them; over ten seeds
    # the trained one's mean distance was 0.52-0.66 of the untrained one's) ...
    assert _nearest(learnt, public.x) < 0.8 * _nearest(before, public.x)
    # ... and differ from each other (a collapsed generator draws one image; over ten seeds this training reached
    # 0.44-0.74 of the digits' own spread)
    spread = float(torch.pdist(learnt.flatten(1)).mean())
    assert spread > 0.3 * float(torch.pdist(public.x[:200].flatten(1)).mean()), spread


def test_gmi_reaches_the_target_class_where_raw_samples_do_not(setting: dict[str, Any]) -> None:
    target, gan = setting["target"], setting["trained"].gan
    attack = GMI(n=3, steps=60, restarts=3, latent=16, seed=0).use(gan)
    images = attack.invert(target, list(range(10)))
    labels = torch.arange(10).repeat_interleave(3)
    assert images.shape == (30, 1, 8, 8)
    hit = float((target.predict_labels(images) == labels).float().mean())
    raw = float((target.predict_labels(gan.sample(30, seed=0)) == labels).float().mean())
    # chance, and so the generator's raw samples, is about 0.1 (0.03-0.13 over ten seeds of target and GAN); the
    # search reached 0.70-1.00 over the same ten seeds
    assert hit >= 0.5 and hit >= raw + 0.35, (hit, raw)


def test_gan_prior_round_trips_through_its_stored_weights(setting: dict[str, Any], tmp_path: Path) -> None:
    gan = setting["trained"].gan
    save_module(tmp_path / "gan.safetensors", gan)
    again = load_module(tmp_path / "gan.safetensors", GanPrior((1, 8, 8), latent=16, width=16))
    assert isinstance(again, GanPrior)
    assert torch.equal(again.sample(5), gan.sample(5))
    x = gan.sample(5)
    assert torch.allclose(again.discriminator(x), gan.discriminator(x))


def test_gmi_without_a_generator_or_with_the_wrong_one_says_so(setting: dict[str, Any]) -> None:
    with pytest.raises(InputError, match="no generator") as e:
        GMI(n=1, steps=1).invert(setting["target"], 0)
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="latent dimension"):
        GMI(latent=8).use(setting["trained"].gan)
    with pytest.raises(ConfigError, match="restarts"):
        GMI(restarts=0)


@pytest.mark.parametrize(
    ("entry", "data", "match"),
    [
        ({"restarts": 0}, {}, "restarts"),
        ({"latent": 1}, {}, "latent"),
        ({"prior": -1.0}, {}, "prior"),
        ({"gan_epochs": 0}, {}, "gan_epochs"),
        ({}, {"test_fraction": 0.02}, "held-out samples outside the nearest-neighbour test"),
    ],
)
def test_bad_gmi_entry_gets_a_one_line_error(
    entry: dict[str, Any], data: dict[str, Any], match: str, tmp_path: Path
) -> None:
    cfg = {
        "data": {"dataset": "digits", **data},
        "model": {"epochs": 1},
        "inversion": [{"attack": "gmi", "samples": 1, **entry}],
    }
    with pytest.raises(ConfigError, match=match) as e:
        assess(parse_config(cfg), tmp_path / "out", log=lambda s: None)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


def test_gmi_runs_in_the_inversion_family_with_one_generator(tmp_path: Path) -> None:
    cfg = {
        "data": {"dataset": "digits"},
        "model": {"epochs": 1},
        "inversion": [
            {"attack": "gmi", "per_class": 1, "steps": 10, "samples": 5, "restarts": 2, "gan_epochs": 2, "latent": 8}
        ],
    }
    assess(parse_config(cfg), tmp_path / "out", log=lambda s: None)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    text = json.dumps(report)
    assert '"requested": "gmi"' in text and '"gan_public": ' in text
    stored = list((tmp_path / "out").rglob("gan.safetensors"))
    assert len(stored) == 1  # one GAN prior, stored once, for the target and the reference
    assert "GMI" in (tmp_path / "out" / "report.html").read_text()
