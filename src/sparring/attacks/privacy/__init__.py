"""Privacy attacks: membership inference, extraction, inversion."""

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
    "MEMBERSHIP_ATTACKS",
    "LabelOnlyGap",
    "LossThreshold",
    "MembershipAttack",
    "MembershipResult",
    "cross_entropy_from_scores",
    "evaluate_membership",
]
