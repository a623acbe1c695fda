"""HopSkipJump: a decision-based (labels-only) minimum-norm attack.

Chen, Jordan & Wainwright, "HopSkipJumpAttack: A Query-Efficient Decision-Based Attack",
IEEE S&P 2020.

From an adversarial starting point, each iteration (1) binary-searches the segment to the
clean input for the decision boundary, (2) estimates the boundary's normal from the labels
of ``init_evals * sqrt(t)`` random points around it (capped at ``max_evals``), and
(3) steps along that estimate with a geometric step-size search, then searches the boundary
again. All samples are attacked together: each phase sends one batch holding every sample
still in play, and every query is charged to its sample so that none exceeds
``max_queries``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sparring.attacks.evasion.base import EvasionAttack, is_success
from sparring.attacks.evasion.norms import Norm, get_norm
from sparring.errors import check_nonnegative, check_positive_int, check_seed
from sparring.models import Access, Classifier
from sparring.progress import bar


class HopSkipJump(EvasionAttack):
    """HopSkipJump (Chen, Jordan & Wainwright, IEEE S&P 2020), labels only.

    Parameters: ``norm`` ("l2" or "linf"), ``max_queries`` (per sample, the clean query
    included), ``eps`` (None: return the smallest adversarial found; a number: a sample
    succeeds once its adversarial lies within ``eps``, stops there, and is returned
    unchanged if it never gets there), ``init_evals`` and ``max_evals`` (gradient-estimate
    samples at the first iteration and at most), ``gamma`` (binary-search precision
    ``gamma / d^1.5`` for L2, ``gamma / d^2`` for Linf, as in the paper), ``init_tries``
    (uniform-noise draws per sample to find a starting point), ``batch_size`` (inputs per
    model call) and ``seed``.

    Starting points: untargeted, uniform noise that the model misclassifies (as in the
    paper), else the closest batch sample it assigns another class; targeted, the closest
    batch sample the model assigns the target class, else uniform noise of that class.
    ``sample_queries[i]`` counts the queries of sample ``i`` up to its first success (the
    first adversarial found, or the first within ``eps``), or all of them if it never succeeded.
    """

    requires = Access.LABELS

    def __init__(
        self,
        norm: str | Norm = "l2",
        max_queries: int = 1000,
        eps: float | None = None,
        init_evals: int = 100,
        max_evals: int = 10000,
        gamma: float = 1.0,
        init_tries: int = 100,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        self.norm = get_norm(norm)
        self.max_queries = check_positive_int("max_queries", max_queries)
        self.eps = None if eps is None else check_nonnegative("eps", eps)
        self.init_evals = check_positive_int("init_evals", init_evals)
        self.max_evals = check_positive_int("max_evals", max_evals)
        self.gamma = check_nonnegative("gamma", gamma)
        self.init_tries = check_positive_int("init_tries", init_tries)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.seed = check_seed(seed)

    # -- bookkeeping -------------------------------------------------------------------
    def _adv(self, xs: Tensor, idx: Tensor) -> Tensor:
        """Query labels of ``xs`` (one row per entry of ``idx``), charge the samples, return success flags."""
        if len(idx) == 0:
            return torch.zeros(0, dtype=torch.bool)
        pred = torch.cat([self._clf.predict_labels(b) for b in xs.split(self.batch_size)])
        self._spent.index_add_(0, idx, torch.ones_like(idx))
        return is_success(pred, self._y[idx], None if self._target is None else self._target[idx])

    def _left(self, idx: Tensor) -> Tensor:
        return self.max_queries - self._spent[idx]

    def _view(self, t: Tensor) -> Tensor:
        return t.reshape(-1, *[1] * (self._x.dim() - 1))

    def _project(self, x: Tensor, p: Tensor, alpha: Tensor) -> Tensor:
        """The point between ``x`` (alpha 0) and ``p`` (alpha 1): a blend (L2) or a box clip (Linf)."""
        if self.norm.name == "l2":
            a = self._view(alpha)
            return (1 - a) * x + a * p
        a = self._view(alpha)
        return torch.minimum(torch.maximum(p, x - a), x + a)

    # -- phases ------------------------------------------------------------------------
    def _binary_search(self, idx: Tensor, p: Tensor) -> Tensor:
        """Move the adversarial points ``p`` of samples ``idx`` to the boundary towards ``x``."""
        x = self._x[idx]
        if self.norm.name == "l2":
            high = torch.ones(len(idx))
            tol = torch.full((len(idx),), self._theta)
        else:
            high = self.norm.norm(p - x)
            tol = torch.clamp(high * self._theta, max=self._theta)
        low = torch.zeros(len(idx))
        while True:
            go = torch.nonzero(((high - low) > tol) & (self._left(idx) > 0)).flatten()
            if len(go) == 0:
                break
            mid = (high[go] + low[go]) / 2
            ok = self._adv(self._project(x[go], p[go], mid), idx[go])
            high[go] = torch.where(ok, mid, high[go])
            low[go] = torch.where(ok, low[go], mid)
        return self._project(x, p, high)

    def _starts(self, idx: Tensor, clean_pred: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor]:
        """Adversarial starting points for samples ``idx``; returns ``(points, found)``."""
        x = self._x[idx]
        lo, hi = self._bounds
        start = x.clone()
        found = torch.zeros(len(idx), dtype=torch.bool)
        # The nearest batch sample that the model already puts in a winning class (no query needed).
        p = 2.0 if self.norm.name == "l2" else float("inf")
        near = torch.zeros(len(idx), dtype=torch.long)
        has_near = torch.zeros(len(idx), dtype=torch.bool)
        flat = self._x.flatten(1)
        for rows in torch.arange(len(idx)).split(1024):
            wins = is_success(  # [rows, N]: batch sample j is a valid start for sample i
                clean_pred[None, :].expand(len(rows), -1),
                self._y[idx[rows]][:, None],
                None if self._target is None else self._target[idx[rows]][:, None],
            )
            dist = torch.cdist(x[rows].flatten(1)[None], flat[None], p=p)[0]
            best, near[rows] = torch.where(wins, dist, torch.inf).min(1)
            has_near[rows] = torch.isfinite(best)
        noise_first = self._target is None
        if not noise_first:
            start[has_near] = self._x[near[has_near]]
            found |= has_near
        for _ in range(self.init_tries):
            todo = torch.nonzero(~found & (self._left(idx) > 0)).flatten()
            if len(todo) == 0:
                break
            u = torch.rand((len(todo), *x.shape[1:]), generator=g) * (hi - lo) + lo
            ok = self._adv(u, idx[todo])
            start[todo[ok]] = u[ok]
            found[todo[ok]] = True
        if noise_first:
            fill = ~found & has_near
            start[fill] = self._x[near[fill]]
            found |= fill
        if self.norm.name == "linf" and bool(found.any()):
            # A coarse blend search first, so that the box search starts near the boundary.
            f = torch.nonzero(found).flatten()
            high, low = torch.ones(len(f)), torch.zeros(len(f))
            while True:
                go = torch.nonzero(((high - low) > 1e-3) & (self._left(idx[f]) > 0)).flatten()
                if len(go) == 0:
                    break
                mid = (high[go] + low[go]) / 2
                a = self._view(mid)
                ok = self._adv((1 - a) * x[f[go]] + a * start[f[go]], idx[f[go]])
                high[go] = torch.where(ok, mid, high[go])
                low[go] = torch.where(ok, low[go], mid)
            a = self._view(high)
            start[f] = (1 - a) * x[f] + a * start[f]
        return start, found

    def _gradient(self, idx: Tensor, xb: Tensor, delta: Tensor, evals: Tensor, g: torch.Generator) -> Tensor:
        """Monte-Carlo estimate of the boundary normal at ``xb`` from ``evals[i]`` label queries each."""
        lo, hi = self._bounds
        k = int(evals.max())
        shape = xb.shape[1:]
        grads = torch.zeros_like(xb)
        per_chunk = max(1, 16 * self.batch_size // max(1, k))  # noise is drawn for ~16 model calls at a time
        for c in torch.arange(len(idx)).split(per_chunk):
            m = len(c)
            if self.norm.name == "l2":
                u = torch.randn((m, k, *shape), generator=g)
            else:
                u = torch.rand((m, k, *shape), generator=g) * 2 - 1
            u = u / u.flatten(2).norm(dim=2).clamp_min(1e-12).reshape(m, k, *[1] * len(shape))
            d = delta[c].reshape(m, 1, *[1] * len(shape))
            pert = (xb[c][:, None] + d * u).clamp(lo, hi)
            u = (pert - xb[c][:, None]) / d
            valid = torch.arange(k)[None, :] < evals[c][:, None]  # [m, k]
            rows, cols = torch.nonzero(valid, as_tuple=True)
            ok = self._adv(pert[rows, cols], idx[c][rows])
            phi = torch.zeros(m, k)
            phi[rows, cols] = ok.float() * 2 - 1
            cnt = evals[c].float().clamp_min(1)
            mean = phi.sum(1) / cnt
            mixed = mean.abs() < 1
            fval = torch.where(mixed[:, None], phi - mean[:, None], phi) * valid
            grads[c] = (fval.reshape(m, k, *[1] * len(shape)) * u).sum(1) / cnt.reshape(m, *[1] * len(shape))
        if self.norm.name == "linf":
            return grads.sign()
        return self.norm.direction(grads)

    # -- the attack --------------------------------------------------------------------
    def _run(self, classifier: Classifier, x: Tensor, y: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
        n = len(x)
        self._spent = torch.zeros(n, dtype=torch.long)
        self._clf, self._x, self._y, self._target, self._bounds = classifier, x, y, target, classifier.bounds
        try:
            return self._attack(n)
        finally:
            del self._clf, self._x, self._y, self._target, self._bounds, self._spent
            self.__dict__.pop("_theta", None)

    def _attack(self, n: int) -> tuple[Tensor, Tensor]:
        x = self._x
        first = torch.zeros(n, dtype=torch.long)
        if n == 0:
            self._sample_queries = first
            return x.clone(), torch.zeros(0, dtype=torch.bool)
        g = torch.Generator().manual_seed(self.seed)
        everyone = torch.arange(n)
        clean_pred = torch.cat([self._clf.predict_labels(b) for b in x.split(self.batch_size)])
        self._spent += 1
        success = is_success(clean_pred, self._y, self._target)
        first[success] = 1
        best = x.clone()
        best_norm = torch.where(success, 0.0, torch.inf)
        if self.eps == 0.0:
            self._sample_queries = self._spent.clone()
            return best, success
        d = math.prod(x.shape[1:])
        self._theta = self.gamma / (d**1.5 if self.norm.name == "l2" else d**2)
        todo = everyone[~success]
        start, found = self._starts(todo, clean_pred, g)
        act = todo[found]
        cur = self._binary_search(act, start[found]) if len(act) else start[found]

        def record(idx: Tensor, pts: Tensor) -> None:
            nrm = self.norm.norm(pts - x[idx])
            better = nrm < best_norm[idx]
            best[idx[better]], best_norm[idx[better]] = pts[better], nrm[better]
            within = best_norm[idx] <= (torch.inf if self.eps is None else self.eps)
            fresh = within & (first[idx] == 0)
            first[idx[fresh]] = self._spent[idx[fresh]]

        record(act, cur)
        lo, hi = self._bounds
        reserve = 3 + math.ceil(math.log2(max(2.0, 1.0 / max(self._theta, 1e-30))))
        for t in bar(range(1, 10**9), "hopskipjump"):
            keep = (self._left(act) > reserve // 2) & ((first[act] == 0) | (self.eps is None))
            act, cur = act[keep], cur[keep]
            if len(act) == 0:
                break
            dist = self.norm.norm(cur - x[act])
            if t == 1:
                delta = torch.full((len(act),), 0.1 * (hi - lo))
            else:
                scale = math.sqrt(d) if self.norm.name == "l2" else d
                delta = (scale * self._theta * dist).clamp_min(1e-12)
            num = min(int(self.init_evals * math.sqrt(t)), self.max_evals)
            evals = torch.clamp(torch.minimum(torch.full_like(act, num), self._left(act) - reserve), min=1)
            update = self._gradient(act, cur, delta, evals, g)
            # Geometric step-size search: halve until the stepped point is adversarial.
            step = dist / math.sqrt(t)
            moved = cur.clone()
            pending = torch.ones(len(act), dtype=torch.bool)
            for _ in range(30):
                go = torch.nonzero(pending & (self._left(act) > 0)).flatten()
                if len(go) == 0:
                    break
                cand = (cur[go] + self._view(step[go]) * update[go]).clamp(lo, hi)
                ok = self._adv(cand, act[go])
                moved[go[ok]] = cand[ok]
                pending[go[ok]] = False
                step[go[~ok]] /= 2
            stepped = ~pending
            if bool(stepped.any()):
                s = torch.nonzero(stepped).flatten()
                cur[s] = self._binary_search(act[s], moved[s])
                record(act[s], cur[s])
            act, cur = act[stepped], cur[stepped]

        success = success | (first > 0)
        keep_pts = self._view(success)
        x_adv = torch.where(keep_pts, best, x)
        self._sample_queries = torch.where(first > 0, first, self._spent)
        return x_adv, success
