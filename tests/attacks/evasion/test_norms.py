from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparring.attacks.evasion import L2, Linf, Norm, get_norm
from sparring.errors import ConfigError

NORMS: list[Norm] = [Linf(), L2()]
TOL = 1e-5


def _batch(seed: int, n: int, scale: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 4, 4, generator=g) * scale


shapes = st.tuples(st.integers(0, 2**31 - 1), st.integers(1, 6), st.floats(1e-3, 1e3))
radii = st.floats(0.0, 5.0)


@pytest.mark.parametrize("norm", NORMS, ids=str)
@settings(max_examples=40, deadline=None)
@given(batch=shapes, eps=radii)
def test_projection_lands_in_the_ball_and_keeps_points_inside(
    norm: Norm, batch: tuple[int, int, float], eps: float
) -> None:
    delta = _batch(*batch)
    projected = norm.project(delta, eps)
    assert bool((norm.norm(projected) <= eps * (1 + TOL) + 1e-7).all())
    inside = norm.norm(delta) <= eps
    assert torch.allclose(projected[inside], delta[inside])
    # projecting twice changes nothing
    assert torch.allclose(norm.project(projected, eps), projected, atol=1e-6)


@pytest.mark.parametrize("norm", NORMS, ids=str)
@settings(max_examples=40, deadline=None)
@given(batch=shapes, eps=radii)
def test_random_start_lies_inside_the_ball(norm: Norm, batch: tuple[int, int, float], eps: float) -> None:
    seed, n, _ = batch
    like = torch.zeros(n, 1, 4, 4)
    start = norm.random(like, eps, torch.Generator().manual_seed(seed))
    assert start.shape == like.shape
    assert bool((norm.norm(start) <= eps * (1 + TOL) + 1e-7).all())
    again = norm.random(like, eps, torch.Generator().manual_seed(seed))
    assert torch.equal(start, again)


@pytest.mark.parametrize("norm", NORMS, ids=str)
@settings(max_examples=40, deadline=None)
@given(batch=shapes)
def test_direction_has_unit_norm_and_ascends(norm: Norm, batch: tuple[int, int, float]) -> None:
    grad = _batch(*batch)
    d = norm.direction(grad)
    assert torch.allclose(norm.norm(d), torch.ones(len(grad)), atol=1e-5)
    # a step along the direction increases a linear function with this gradient
    assert bool(((d * grad).flatten(1).sum(1) > 0).all())


@pytest.mark.parametrize("norm", NORMS, ids=str)
def test_zero_gradient_gives_no_step(norm: Norm) -> None:
    assert torch.equal(norm.direction(torch.zeros(3, 1, 4, 4)), torch.zeros(3, 1, 4, 4))


@pytest.mark.parametrize("norm", NORMS, ids=str)
def test_per_sample_radius(norm: Norm) -> None:
    delta = torch.ones(3, 1, 4, 4)
    eps = torch.tensor([0.0, 0.5, 100.0])
    n = norm.norm(norm.project(delta, eps))
    assert torch.allclose(n, torch.minimum(eps, norm.norm(delta)))
    start = norm.random(delta, eps, torch.Generator().manual_seed(0))
    assert bool((norm.norm(start) <= eps + 1e-6).all())
    assert float(norm.norm(start)[0]) == 0.0


@pytest.mark.parametrize("norm", NORMS, ids=str)
def test_empty_batches(norm: Norm) -> None:
    empty = torch.zeros(0, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    for out in (norm.random(empty, 0.5, g), norm.project(empty, 0.5), norm.direction(empty)):
        assert out.shape == empty.shape
    assert norm.norm(empty).shape == (0,)


def test_l2_random_start_fills_the_ball() -> None:
    # Uniform in a d-ball: P(|r| <= eps * t) = t**d; with d = 16, about 1/3 of the mass lies
    # beyond 0.975 eps (a spherical-shell sampler would put all of it there, a Gaussian none).
    start = L2().random(torch.zeros(4000, 1, 4, 4), 1.0, torch.Generator().manual_seed(0))
    r = L2().norm(start)
    share = float((r > 0.975).float().mean())
    assert abs(share - (1 - 0.975**16)) < 0.03


def test_linf_random_start_is_uniform_in_the_box() -> None:
    start = Linf().random(torch.zeros(2000, 1, 4, 4), 0.5, torch.Generator().manual_seed(0))
    assert abs(float(start.mean())) < 0.01
    assert abs(float(start.abs().mean()) - 0.25) < 0.01


def test_get_norm_by_name_and_instance() -> None:
    assert isinstance(get_norm("LINF"), Linf)
    assert isinstance(get_norm("l2"), L2)
    n = L2()
    assert get_norm(n) is n
    with pytest.raises(ConfigError, match="unknown norm"):
        get_norm("l7")
