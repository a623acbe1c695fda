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
from sparring.attacks.privacy.membership import (
    MEMBERSHIP_ATTACKS,
    LabelOnlyGap,
    LossThreshold,
    MembershipAttack,
    MembershipResult,
    cross_entropy_from_scores,
    evaluate_membership,
)

__all__ = [
    "EXTRACTION_ATTACKS",
    "MEMBERSHIP_ATTACKS",
    "QUERY_POOLS",
    "CurvePoint",
    "EquationSolving",
    "ExtractionAttack",
    "ExtractionResult",
    "KnockoffNets",
    "LabelOnlyGap",
    "LossThreshold",
    "MembershipAttack",
    "MembershipResult",
    "cross_entropy_from_scores",
    "evaluate_membership",
    "query_pool",
]
