"""Scenario runners, one module per threat-matrix family; each returns a JSON-able dict."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sparring.assess.context import Context
from sparring.assess.planner import Scenario
from sparring.assess.scenarios import (
    backdoor,
    clean_label,
    evasion,
    federated,
    membership,
    poisoning,
    transfer_learning,
)

RUNNERS: dict[str, Callable[[Context, Scenario], dict[str, Any]]] = {
    "evasion": evasion.run,
    "transfer_learning": transfer_learning.run,
    "backdoor": backdoor.run,
    "poisoning": poisoning.run,
    "clean_label": clean_label.run,
    "federated": federated.run,
    "membership": membership.run,
}

__all__ = ["RUNNERS"]
