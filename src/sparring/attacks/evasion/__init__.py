"""Evasion attacks (test-time integrity)."""

from sparring.attacks.evasion.base import EvasionAttack, EvasionResult, success_by_queries
from sparring.attacks.evasion.gradient import FGSM, PGD
from sparring.attacks.evasion.norms import L2, Linf, Norm, get_norm

#: Evasion attacks by the name an assessment config uses.
EVASION_ATTACKS: dict[str, type[EvasionAttack]] = {
    "fgsm": FGSM,
    "pgd": PGD,
}

__all__ = [
    "EVASION_ATTACKS",
    "FGSM",
    "L2",
    "PGD",
    "EvasionAttack",
    "EvasionResult",
    "Linf",
    "Norm",
    "get_norm",
    "success_by_queries",
]
