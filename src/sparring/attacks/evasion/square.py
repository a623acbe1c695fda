"""Square Attack: score-based random search with square-shaped updates.

Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient black-box
adversarial attack via random search", ECCV 2020.

Each iteration proposes one change per sample inside a random square window (Linf: the
window is set to ``x ± eps`` per channel; L2: mass moves from a second window into the
first one with a centre-heavy pattern) and keeps it when the margin loss drops. The side of
the window follows the paper's schedule: ``p`` (the fraction of pixels changed) starts at
``p_init`` and is halved at fixed fractions of the query budget. Samples stop as soon as
they succeed, and every sample is charged exactly the queries it used.

Inputs of shape ``[C, H, W]`` are attacked as images; ``[H, W]`` as one-channel images;
flat ``[D]`` inputs (tables) as one row of ``D`` features, where the window is a run of
features.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sparring.attacks.evasion.base import EvasionAttack, is_success
from sparring.attacks.evasion.norms import Norm, get_norm
from sparring.errors import ConfigError, check_choice, check_fraction, check_nonnegative, check_positive_int, check_seed
from sparring.models import Access, Classifier
from sparring.progress import bar

# The paper's schedule (rescaled to 10,000 iterations): p is divided by 2 ** k after the
# k-th threshold.
_SCHEDULE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_schedule(p_init: float, it: int, n_iters: int) -> float:
    """Fraction of features changed at iteration ``it`` of ``n_iters`` (paper's piecewise schedule)."""
    i = int(it / max(1, n_iters) * 10000)
    halvings = sum(1 for t in _SCHEDULE if i > t)
    return p_init / 2**halvings


def _image_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) == 3:
        return shape[0], shape[1], shape[2]
    if len(shape) == 2:
        return 1, shape[0], shape[1]
    return 1, 1, math.prod(shape)


def _rings(h: int, w: int) -> Tensor:
    """Centre-heavy rectangle: value sum_{k>=r} 1/(k+1)^2 at Chebyshev distance r from the centre."""
    k_max = max(h // 2 + 1, w // 2 + 1)
    tail = torch.flip(torch.cumsum(torch.flip(1.0 / torch.arange(1, k_max + 1, dtype=torch.float32) ** 2, [0]), 0), [0])
    ri = (torch.arange(h) - h // 2).abs()
    rj = (torch.arange(w) - w // 2).abs()
    r = torch.maximum(ri[:, None], rj[None, :]).clamp(max=k_max - 1)
    out = tail[r]
    return out / out.norm().clamp_min(1e-12)


def _pattern(h: int, w: int) -> Tensor:
    """The L2 update pattern: two opposite-signed centre-heavy halves, unit L2 norm."""
    out = torch.zeros(h, w)
    if h >= 2:
        out[: h // 2] = _rings(h // 2, w)
        out[h // 2 :] = -_rings(h - h // 2, w)
    elif w >= 2:
        out[:, : w // 2] = _rings(h, w // 2)
        out[:, w // 2 :] = -_rings(h, w - w // 2)
    else:
        out[:] = 1.0
    return out / out.norm().clamp_min(1e-12)


def _place(pattern: Tensor, top: Tensor, left: Tensor, h: int, w: int) -> Tensor:
    """Per-sample copies of ``pattern`` ([N, sh, sw] or [sh, sw]) at (top, left) on an [N, H, W] canvas."""
    n = len(top)
    sh, sw = pattern.shape[-2:]
    ii = torch.arange(h)[None, :] - top[:, None]  # [N, H]
    jj = torch.arange(w)[None, :] - left[:, None]  # [N, W]
    inside = ((ii >= 0) & (ii < sh))[:, :, None] & ((jj >= 0) & (jj < sw))[:, None, :]
    pat = pattern.expand(n, sh, sw)
    vals = pat[torch.arange(n)[:, None, None], ii.clamp(0, sh - 1)[:, :, None], jj.clamp(0, sw - 1)[:, None, :]]
    return vals * inside


def _mask(top: Tensor, left: Tensor, sh: int, sw: int, h: int, w: int) -> Tensor:
    """Per-sample boolean windows ``[N, 1, H, W]`` of size ``sh x sw`` at (top, left)."""
    ii = torch.arange(h)[None, :] - top[:, None]
    jj = torch.arange(w)[None, :] - left[:, None]
    return (((ii >= 0) & (ii < sh))[:, :, None] & ((jj >= 0) & (jj < sw))[:, None, :])[:, None]


class Square(EvasionAttack):
    """Square Attack (Andriushchenko et al., ECCV 2020), scores only.

    Parameters: ``norm`` ("linf" or "l2"), ``eps`` (radius), ``max_queries`` (per sample,
    including the clean query), ``p_init`` (initial fraction of features per window; the
    paper uses 0.05 on ImageNet and 0.8 on MNIST), ``loss`` ("margin": log-probability of the
    true class minus the best other one, or the target's margin when targeted),
    ``batch_size`` (samples per model call) and ``seed``.
    """

    requires = Access.SCORES

    def __init__(
        self,
        norm: str | Norm = "linf",
        eps: float = 0.3,
        max_queries: int = 1000,
        p_init: float = 0.8,
        loss: str = "margin",
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        self.norm = get_norm(norm)
        self.eps = check_nonnegative("eps", eps)
        self.max_queries = check_positive_int("max_queries", max_queries)
        self.p_init = check_fraction("p_init", p_init)
        if self.p_init == 0.0:
            raise ConfigError(f"p_init must be in (0, 1], got {p_init}")
        self.loss = check_choice("loss", loss, ("margin",))
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.seed = check_seed(seed)

    # -- queries -----------------------------------------------------------------------
    def _margin(self, clf: Classifier, xs: Tensor, y: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
        """Margin loss (to minimise) and success flags for a batch, in chunks of ``batch_size``."""
        scores = torch.cat([clf.predict_scores(b) for b in xs.split(self.batch_size)])
        logp = scores.clamp_min(1e-30).log()
        goal = y if target is None else target
        own = logp.gather(1, goal[:, None]).squeeze(1)
        other = logp.scatter(1, goal[:, None], float("-inf")).amax(1)
        margin = own - other if target is None else other - own
        return margin, is_success(scores.argmax(1), y, target)

    # -- proposals ---------------------------------------------------------------------
    def _window(self, p: float, h: int, w: int) -> tuple[int, int]:
        if h > 1 and w > 1:
            s = max(1, min(round(math.sqrt(p * h * w)), h - 1, w - 1))
            return s, s
        return 1, max(1, min(round(p * w), w - 1))

    def _init(self, x: Tensor, c: int, h: int, w: int, g: torch.Generator) -> Tensor:
        n = len(x)
        if self.norm.name == "linf":
            signs = torch.randint(0, 2, (n, c, 1, w), generator=g).float() * 2 - 1
            return x + self.eps * signs.expand(n, c, h, w).reshape(x.shape)
        # L2: a grid of blocks, each holding the update pattern with a random sign.
        bh, bw = max(1, h // 5), max(1, w // 5)
        top0, left0 = (h - bh * (h // bh)) // 2, (w - bw * (w // bw)) // 2
        pat = _pattern(bh, bw)
        delta = torch.zeros(n, c, h, w)
        for i in range(h // bh):
            for j in range(w // bw):
                s = torch.randint(0, 2, (n, c, 1, 1), generator=g).float() * 2 - 1
                r, q = top0 + i * bh, left0 + j * bw
                delta[:, :, r : r + bh, q : q + bw] += pat * s
        delta = delta.reshape(x.shape)
        return x + self.eps * delta / self.norm.norm(delta).clamp_min(1e-12).reshape(-1, *[1] * (x.dim() - 1))

    def _propose_linf(
        self, x: Tensor, best: Tensor, p: float, chw: tuple[int, int, int], lo: float, hi: float, g: torch.Generator
    ) -> Tensor:
        c, h, w = chw
        n = len(x)
        sh, sw = self._window(p, h, w)
        xi, bi = x.reshape(n, c, h, w), best.reshape(n, c, h, w)
        out = bi.clone()
        todo = torch.arange(n)
        for _ in range(10):  # redraw windows that would change nothing (as the paper's code does)
            top = torch.randint(0, h - sh + 1, (len(todo),), generator=g)
            left = torch.randint(0, w - sw + 1, (len(todo),), generator=g)
            mask = _mask(top, left, sh, sw, h, w)
            signs = torch.randint(0, 2, (len(todo), c, 1, 1), generator=g).float() * 2 - 1
            cand = torch.where(mask, (xi[todo] + self.eps * signs).clamp(lo, hi), bi[todo])
            out[todo] = cand
            same = (cand - bi[todo]).abs().flatten(1).amax(1) < 1e-7
            todo = todo[same]
            if len(todo) == 0:
                break
        return out.reshape(x.shape)

    def _propose_l2(
        self, x: Tensor, best: Tensor, p: float, chw: tuple[int, int, int], lo: float, hi: float, g: torch.Generator
    ) -> Tensor:
        c, h, w = chw
        n = len(x)
        if h > 1 and w > 1:
            s = max(3, round(math.sqrt(p * h * w)))
            s = s + 1 if s % 2 == 0 else s
            sh = sw = max(1, min(s, h - 1, w - 1))
        else:
            sh, sw = 1, max(1, min(round(p * w), w - 1))
        xi = x.reshape(n, c, h, w)
        delta = best.reshape(n, c, h, w) - xi
        top1 = torch.randint(0, h - sh + 1, (n,), generator=g)
        left1 = torch.randint(0, w - sw + 1, (n,), generator=g)
        top2 = torch.randint(0, h - sh + 1, (n,), generator=g)
        left2 = torch.randint(0, w - sw + 1, (n,), generator=g)
        m1 = _mask(top1, left1, sh, sw, h, w).float()
        m2 = _mask(top2, left2, sh, sw, h, w).float()
        pats = _pattern(sh, sw)
        if sh == sw:  # the pattern's halves split rows or, at random, columns
            flip = torch.rand(n, generator=g) < 0.5
            pats = torch.where(flip[:, None, None], pats.T, pats)
        pat = _place(pats, top1, left1, h, w)[:, None]
        norm_w1 = (delta * m1).square().sum((2, 3), keepdim=True).sqrt()
        norm_img = delta.square().sum((1, 2, 3), keepdim=True).sqrt()
        norm_both = (delta * torch.maximum(m1, m2)).square().sum((2, 3), keepdim=True).sqrt()
        signs = torch.randint(0, 2, (n, c, 1, 1), generator=g).float() * 2 - 1
        new = pat * signs + delta * m1 / (norm_w1 + 1e-10)
        new = new / new.square().sum((2, 3), keepdim=True).sqrt().clamp_min(1e-12)
        new = new * ((self.eps**2 - norm_img**2).clamp_min(0) / c + norm_both**2).sqrt()
        delta = delta * (1 - torch.maximum(m1, m2)) + new * m1
        delta = delta.reshape(x.shape)
        scale = self.eps / self.norm.norm(delta).clamp_min(1e-12)
        return x + delta * scale.reshape(-1, *[1] * (x.dim() - 1))

    # -- the attack --------------------------------------------------------------------
    def _run(self, classifier: Classifier, x: Tensor, y: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
        n = len(x)
        spent = torch.zeros(n, dtype=torch.long)
        self._sample_queries = spent
        if n == 0:
            return x.clone(), torch.zeros(0, dtype=torch.bool)
        g = torch.Generator().manual_seed(self.seed)
        lo, hi = classifier.bounds
        chw = _image_shape(tuple(x.shape[1:]))
        _, success = self._margin(classifier, x, y, target)
        spent += 1
        x_adv = x.clone()
        if self.eps == 0.0 or self.max_queries < 2:
            return x_adv, success
        act = torch.nonzero(~success).flatten()
        if len(act) == 0:
            return x_adv, success
        tgt = None if target is None else target[act]
        best = self._clip(x[act], self._init(x[act], *chw, g), lo, hi)
        loss, ok = self._margin(classifier, best, y[act], tgt)
        spent[act] += 1
        xa, ya = x[act], y[act]
        propose = self._propose_linf if self.norm.name == "linf" else self._propose_l2
        for it in bar(range(1, self.max_queries - 1), "square", total=self.max_queries - 2):
            run = ~ok
            if not bool(run.any()):
                break
            idx = torch.nonzero(run).flatten()
            p = p_schedule(self.p_init, it, self.max_queries)
            cand = self._clip(xa[idx], propose(xa[idx], best[idx], p, chw, lo, hi, g), lo, hi)
            new_loss, new_ok = self._margin(classifier, cand, ya[idx], None if tgt is None else tgt[idx])
            spent[act[idx]] += 1
            better = (new_loss < loss[idx]) | new_ok
            take = idx[better]
            best[take], loss[take] = cand[better], new_loss[better]
            ok[idx[new_ok]] = True
        x_adv[act] = torch.where(ok.reshape(-1, *[1] * (x.dim() - 1)), best, x_adv[act])
        success[act] = ok
        return x_adv, success

    def _clip(self, x: Tensor, cand: Tensor, lo: float, hi: float) -> Tensor:
        """Into the eps-ball (guards against rounding) and the bounds."""
        return (x + self.norm.project(cand - x, self.eps)).clamp(lo, hi)
