"""Privacy attacks: membership inference, extraction, inversion."""

from sparring.attacks.privacy.extraction import (
    EXTRACTION_ATTACKS,
    QUERY_POOLS,
    CurvePoint,
    EquationSolving,
    ExtractionAttack,
    ExtractionResult,
    KnockoffNets,
    query_pool,
)
from sparring.attacks.privacy.jacobian import JacobianAugmentation
from sparring.attacks.privacy.label_only import LabelOnlyMembership
from sparring.attacks.privacy.lira import LiRA
from sparring.attacks.privacy.membership import (
    MEMBERSHIP_ATTACKS,
    LabelOnlyGap,
    LossThreshold,
    MembershipAttack,
    MembershipResult,
    ReferenceAttack,
    cross_entropy_from_scores,
    evaluate_membership,
)
from sparring.attacks.privacy.reference import MembershipSplit, ReferenceModels, membership_split, train_references
from sparring.attacks.privacy.rmia import RMIA
from sparring.attacks.privacy.shadow import ShadowModels

__all__ = [
    "EXTRACTION_ATTACKS",
    "MEMBERSHIP_ATTACKS",
    "QUERY_POOLS",
    "RMIA",
    "CurvePoint",
    "EquationSolving",
    "ExtractionAttack",
    "ExtractionResult",
    "JacobianAugmentation",
    "KnockoffNets",
    "LabelOnlyGap",
    "LabelOnlyMembership",
    "LiRA",
    "LossThreshold",
    "MembershipAttack",
    "MembershipResult",
    "MembershipSplit",
    "ReferenceAttack",
    "ReferenceModels",
    "ShadowModels",
    "cross_entropy_from_scores",
    "evaluate_membership",
    "membership_split",
    "query_pool",
    "train_references",
]
