"""Evasion attacks (test-time integrity)."""

from sparring.attacks.evasion.adaptive import BPDA, EOT, SqueezingAwarePGD, transformed_layers
from sparring.attacks.evasion.apgd import APGD
from sparring.attacks.evasion.base import EvasionAttack, EvasionResult, success_by_queries
from sparring.attacks.evasion.curve import (
    CurvePoint,
    SecurityCurve,
    query_budgets,
    robust_at,
    security_curve,
    worst_of,
)
from sparring.attacks.evasion.cw import CarliniWagnerL2
from sparring.attacks.evasion.ensemble import WorstCaseEnsemble, autoattack
from sparring.attacks.evasion.gradient import FGSM, PGD
from sparring.attacks.evasion.hopskipjump import HopSkipJump
from sparring.attacks.evasion.mimicry import InternalMimicry
from sparring.attacks.evasion.norms import L2, Linf, Norm, get_norm
from sparring.attacks.evasion.patch import AdversarialPatch, Patch
from sparring.attacks.evasion.square import Square
from sparring.attacks.evasion.transfer import Transfer
from sparring.attacks.evasion.universal import (
    DeepFoolUAP,
    Universal,
    UniversalAttack,
    UniversalEvaluation,
    UniversalPerturbation,
    UniversalPGD,
)
from sparring.params import Registry

#: Evasion attacks by the name an assessment config uses.
EVASION_ATTACKS: Registry[EvasionAttack] = Registry("evasion attack")
EVASION_ATTACKS.add("fgsm", FGSM)
EVASION_ATTACKS.add("pgd", PGD)
EVASION_ATTACKS.add("apgd", APGD)
EVASION_ATTACKS.add("cw-l2", CarliniWagnerL2)
EVASION_ATTACKS.add("square", Square)
EVASION_ATTACKS.add("hopskipjump", HopSkipJump)

#: Input-agnostic attacks (one perturbation or patch for every input), by config name: they
#: ``craft`` on some inputs and are judged on others, so they are not per-input ``run`` attacks.
UNIVERSAL_ATTACKS: Registry[UniversalAttack[Universal]] = Registry("universal attack")
UNIVERSAL_ATTACKS.add("uap", UniversalPGD)
UNIVERSAL_ATTACKS.add("uap-deepfool", DeepFoolUAP)
UNIVERSAL_ATTACKS.add("patch", AdversarialPatch)

__all__ = [
    "APGD",
    "BPDA",
    "EOT",
    "EVASION_ATTACKS",
    "FGSM",
    "L2",
    "PGD",
    "UNIVERSAL_ATTACKS",
    "AdversarialPatch",
    "CarliniWagnerL2",
    "CurvePoint",
    "DeepFoolUAP",
    "EvasionAttack",
    "EvasionResult",
    "HopSkipJump",
    "InternalMimicry",
    "Linf",
    "Norm",
    "Patch",
    "SecurityCurve",
    "Square",
    "SqueezingAwarePGD",
    "Transfer",
    "Universal",
    "UniversalAttack",
    "UniversalEvaluation",
    "UniversalPGD",
    "UniversalPerturbation",
    "WorstCaseEnsemble",
    "autoattack",
    "get_norm",
    "query_budgets",
    "robust_at",
    "security_curve",
    "success_by_queries",
    "transformed_layers",
    "worst_of",
]
