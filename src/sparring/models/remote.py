"""A deployed model seen from outside: the Open Inference Protocol (KServe v2) over HTTP.

:class:`RemoteClassifier` reads the endpoint's metadata (input shape, classes, bounds, and
whether it releases scores or only labels) and sends queries in batches within the
deployment's limit over one pooled connection. A 401 is an :class:`AccessError`, a 429 a
spent :class:`QueryBudgetExceeded`, any other refusal an :class:`InputError` with the
gateway's one-line reason.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sparring.errors import AccessError, InputError, QueryBudgetExceeded
from sparring.models.base import Access, Classifier


class RemoteClassifier(Classifier):
    """The model at ``url`` (``http://HOST:PORT/v2/models/NAME``), queried with ``api_key``."""

    def __init__(self, url: str, api_key: str, timeout: float = 30.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        self._client = httpx.Client(headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout)
        meta = self._call("GET", self.url)
        params = meta.get("parameters", {})
        try:
            shape = [int(s) for s in meta["inputs"][0]["shape"][1:]]
            bounds = (float(params["bounds"][0]), float(params["bounds"][1]))
            num_classes = int(params["num_classes"])
        except (KeyError, IndexError, TypeError, ValueError):
            raise InputError(f"{self.url} did not return sparring gateway metadata") from None
        self.max_batch = int(params.get("max_batch", 256))
        access = Access.LABELS | (Access.SCORES if params.get("access") == "scores" else Access.NONE)
        super().__init__(input_shape=shape, num_classes=num_classes, access=access, bounds=bounds)

    def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        import httpx

        try:
            response = self._client.request(method, url, json=body)
        except httpx.HTTPError as e:
            raise InputError(f"cannot reach {url}: {e}") from None
        if response.status_code == 200:
            data: dict[str, Any] = response.json()
            return data
        try:
            reason = str(response.json().get("error", response.text))
        except ValueError:
            reason = response.text[:200]
        if response.status_code == 401:
            raise AccessError(f"{url}: {reason}")
        if response.status_code == 429:
            raise QueryBudgetExceeded(f"{url}: {reason}")
        raise InputError(f"{url} refused the query ({response.status_code}): {reason}")

    def _outputs(self, x: Tensor) -> Tensor:
        parts = []
        for b in x.split(self.max_batch):
            request = {
                "inputs": [{"name": "input", "shape": list(b.shape), "datatype": "FP32", "data": b.flatten().tolist()}]
            }
            out = self._call("POST", f"{self.url}/infer", request)["outputs"][0]
            parts.append(torch.tensor(out["data"]).reshape(out["shape"]))
        return torch.cat(parts) if parts else torch.empty(0)

    def _labels(self, x: Tensor) -> Tensor:
        out = self._outputs(x)
        return out.long() if out.dim() == 1 else out.argmax(dim=1)

    def _scores(self, x: Tensor) -> Tensor:
        return self._outputs(x).float()

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
