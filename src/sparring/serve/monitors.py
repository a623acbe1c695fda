"""Query monitors: per-client watchers of the query stream that raise an alarm on attack-like traffic.

Each monitor has one verb, ``observe(client, x, labels) -> reason or None``, called by the
gateway for every accepted request, and keeps its state per client (by API key id, never by
a client-supplied header).

* :class:`StatefulDetector` (Chen, Carlini & Wagner, "Stateful Detection of Black-Box
  Adversarial Attacks", SPAI 2020): the mean distance of each query to its ``k`` nearest
  earlier queries of the same client; black-box evasion attacks (HopSkipJump, Square) walk in
  tiny steps, so the distance collapses. The threshold is the 0.1st percentile of that
  distance on benign traffic (:meth:`StatefulDetector.calibrate`).
* :class:`Prada` (Juuti et al., "PRADA: Protecting against DNN Model Stealing Attacks",
  EuroS&P 2019): per client and predicted class a growing set of queries; each new query's
  minimum L2 distance to its class's set joins the client's distance list, and the query
  joins the set when that distance exceeds the set's mean minus one standard deviation. Benign
  queries give roughly normally distributed distances; synthetic extraction queries do not. A
  Shapiro-Wilk W below ``delta`` raises the alarm (default 0.95; set it from benign traffic of
  the deployment). On digits, sparring's Jacobian augmentation (10 seeds, requests of 10)
  raised the alarm after 60 queries (four seed sets, an mlp and a small CNN); 500 held-out
  natural queries in order kept W >= 0.968 on the mlp but dipped to 0.943 on the small CNN
  (a false alarm at the default). Natural (Knockoff-style) queries are known to evade it
  (Atli et al., 2020): in-distribution Knockoff queries raised no PRADA alarm in 1,000 on digits.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from torch import Tensor

from sparring.errors import ConfigError


class _Rows:
    """A client's remembered queries as one tensor: appended in place, the oldest overwritten past ``limit``.

    The monitors compare each query with everything remembered; keeping the rows in one
    preallocated tensor spares a copy of the whole history per query (a list stacked anew
    each time cost more than the model's forward pass).
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self._data: Tensor | None = None
        self._n = 0  # rows filled
        self._next = 0  # where the next row goes once the ring is full

    def __len__(self) -> int:
        return self._n

    def view(self) -> Tensor:
        """The remembered rows (in no particular order once the ring has wrapped)."""
        assert self._data is not None
        return self._data[: self._n]

    def append(self, q: Tensor) -> None:
        if self._data is None:
            self._data = q.new_empty((self.limit or 16, q.numel()))
        if self.limit is not None and self._n == self.limit:
            self._data[self._next] = q
            self._next = (self._next + 1) % self.limit
            return
        if self._n == len(self._data):  # grow (append-only sets: PRADA's)
            self._data = torch.cat([self._data, torch.empty_like(self._data)])
        self._data[self._n] = q
        self._n += 1


class StatefulDetector:
    """Alarm when a client's query lies closer than ``threshold`` (mean k-NN L2 distance) to its recent queries."""

    def __init__(self, k: int = 10, threshold: float | None = None, history: int = 1000) -> None:
        if k < 1 or history < k:
            raise ConfigError(f"need 1 <= k <= history, got k={k}, history={history}")
        self.k, self.threshold, self.history = k, threshold, history
        self._seen: dict[str, _Rows] = defaultdict(lambda: _Rows(self.history))

    def _distance(self, past: Tensor, q: Tensor) -> float | None:
        if len(past) < self.k:
            return None
        d = torch.cdist(q[None], past).flatten()
        return float(d.topk(self.k, largest=False).values.mean())

    def calibrate(self, benign: Tensor, percentile: float = 0.1) -> float:
        """Set the threshold at ``percentile`` % of the k-NN distances of benign queries in order; returns it."""
        flat = benign.flatten(1).float()
        dists = [self._distance(flat[max(0, i - self.history) : i], flat[i]) for i in range(len(flat))]
        values = np.array([d for d in dists if d is not None])
        if len(values) == 0:
            raise ConfigError(f"calibration needs more than k={self.k} benign queries")
        self.threshold = float(np.percentile(values, percentile))
        return self.threshold

    def observe(self, client: str, x: Tensor, labels: Tensor) -> str | None:
        """Record the client's queries; the first alarm's reason, or None."""
        if self.threshold is None:
            raise ConfigError("the stateful detector needs a threshold: calibrate it on benign queries")
        alarm = None
        seen = self._seen[client]
        for q in x.flatten(1).float():
            d = self._distance(seen.view(), q) if len(seen) else None
            if alarm is None and d is not None and d < self.threshold:
                alarm = (
                    f"stateful detector: query {d:.3g} from its {self.k} nearest earlier ones (< {self.threshold:.3g})"
                )
            seen.append(q)
        return alarm


class Prada:
    """PRADA's test on the distribution of each new query's distance to the client's earlier queries of its class."""

    def __init__(self, delta: float = 0.95, min_queries: int = 50) -> None:
        if not 0 < delta < 1 or min_queries < 3:
            raise ConfigError(f"PRADA needs 0 < delta < 1 and min_queries >= 3, got {delta}, {min_queries}")
        self.delta, self.min_queries = delta, min_queries
        self._growing: dict[tuple[str, int], _Rows] = defaultdict(_Rows)
        self._set_dists: dict[tuple[str, int], list[float]] = defaultdict(list)
        self._dists: dict[str, list[float]] = defaultdict(list)

    def observe(self, client: str, x: Tensor, labels: Tensor) -> str | None:
        """Record the client's queries; the alarm's reason once W < delta, or None."""
        for q, c in zip(x.flatten(1).float(), labels.tolist(), strict=True):
            key = (client, int(c))
            grown = self._growing[key]
            if not grown:
                grown.append(q)
                continue
            d = float(torch.cdist(q[None], grown.view()).min())
            self._dists[client].append(d)
            known = self._set_dists[key]
            bar = float(np.mean(known) - np.std(known)) if known else 0.0
            if d > bar:
                grown.append(q)
                known.append(d)
        w = self.statistic(client)
        if w is None or w >= self.delta:
            return None
        return f"PRADA: Shapiro-Wilk W {w:.3f} < {self.delta} over {len(self._dists[client])} queries"

    def statistic(self, client: str) -> float | None:
        """The Shapiro-Wilk W of the client's distances (None before ``min_queries``)."""
        from scipy.stats import shapiro

        dists = self._dists[client]
        return float(shapiro(np.array(dists[-5000:])).statistic) if len(dists) >= self.min_queries else None
