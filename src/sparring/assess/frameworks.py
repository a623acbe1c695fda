"""Where each threat and defence sits in the frameworks reviewers file against.

Every threat of the matrix (:data:`sparring.assess.family.SCOPE`) maps to MITRE ATLAS
techniques, the OWASP Machine Learning Security Top 10, sections of NIST AI 100-2 (the
predictive-AI taxonomy) and sections of the BSI guideline; every defence maps to ATLAS
mitigations. The ATLAS identifiers and names are those of the published ATLAS data
(``mitre-atlas/atlas-data``, ``dist/ATLAS.yaml``) at the version in :data:`VERSIONS`. The
families' conformance test checks that every registered threat and defence has a mapping.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: The framework versions the identifiers below come from.
VERSIONS = {
    "atlas": "MITRE ATLAS 5.6.0 (atlas-data dist/ATLAS.yaml)",
    "owasp": "OWASP Machine Learning Security Top 10, v0.3 (2023)",
    "nist": "NIST AI 100-2e2023, Adversarial Machine Learning: A Taxonomy and Terminology (section numbers)",
    "bsi": "BSI, AI Security Concerns in a Nutshell (2023) (section numbers)",
}

#: ATLAS techniques and mitigations used here, with their names in ATLAS 5.6.0.
ATLAS = {
    "AML.T0015": "Evade AI Model",
    "AML.T0043": "Craft Adversarial Data",
    "AML.T0043.000": "White-Box Optimization",
    "AML.T0043.001": "Black-Box Optimization",
    "AML.T0043.002": "Black-Box Transfer",
    "AML.T0043.004": "Insert Backdoor Trigger",
    "AML.T0020": "Poison Training Data",
    "AML.T0018.000": "Poison AI Model",
    "AML.T0024": "Exfiltration via AI Inference API",
    "AML.T0024.000": "Infer Training Data Membership",
    "AML.T0024.001": "Invert AI Model",
    "AML.T0024.002": "Extract AI Model",
    "AML.T0029": "Denial of AI Service",
    "AML.T0031": "Erode AI Model Integrity",
    "AML.T0034.001": "Resource-Intensive Queries",
    "AML.M0002": "Passive AI Output Obfuscation",
    "AML.M0003": "Model Hardening",
    "AML.M0004": "Restrict Number of AI Model Queries",
    "AML.M0006": "Use Ensemble Methods",
    "AML.M0007": "Sanitize Training Data",
    "AML.M0008": "Validate AI Model",
    "AML.M0010": "Input Restoration",
    "AML.M0015": "Adversarial Input Detection",
}

#: OWASP Machine Learning Security Top 10 (v0.3) entries used here.
OWASP = {
    "ML01": "Input Manipulation Attack",
    "ML02": "Data Poisoning Attack",
    "ML03": "Model Inversion Attack",
    "ML04": "Membership Inference Attack",
    "ML05": "Model Theft",
    "ML10": "Model Poisoning",
}


@dataclass(frozen=True)
class Mapping:
    """A threat's identifiers in each framework."""

    atlas: tuple[str, ...]
    owasp: tuple[str, ...]
    nist: tuple[str, ...]
    bsi: tuple[str, ...]

    def as_dict(self) -> dict[str, list[str]]:
        """The identifiers as ``report.json`` holds them."""
        return {"atlas": list(self.atlas), "owasp": list(self.owasp), "nist": list(self.nist), "bsi": list(self.bsi)}



def describe(ids: dict[str, list[str]]) -> str:
    """One line for a report from :meth:`Mapping.as_dict`: ``ATLAS AML.T0015, ... · OWASP ML01 · NIST AI 100-2 2.2``."""
    names = {"atlas": "ATLAS", "owasp": "OWASP", "nist": "NIST AI 100-2", "bsi": "BSI"}
    return " · ".join(f"{names[k]} {', '.join(v)}" for k, v in ids.items() if v and k in names)


#: Every threat of the matrix, by its name in ``family.SCOPE``.
THREATS: dict[str, Mapping] = {
    "evasion": Mapping(
        ("AML.T0015", "AML.T0043.000", "AML.T0043.001", "AML.T0043.002"), ("ML01",), ("2.2",), ("§3",)
    ),
    "sponge examples": Mapping(("AML.T0029", "AML.T0034.001"), (), ("2.1.2",), ()),
    "membership inference": Mapping(("AML.T0024.000",), ("ML04",), ("2.4.2",), ("§4",)),
    "model stealing": Mapping(("AML.T0024.002",), ("ML05",), ("2.4.3",), ("§4",)),
    "model inversion": Mapping(("AML.T0024.001",), ("ML03",), ("2.4.1",), ("§4",)),
    "attribute inference": Mapping(("AML.T0024.001",), ("ML03",), ("2.4.1",), ("§4",)),
    "property inference": Mapping(("AML.T0024",), (), ("2.4.4",), ("§4",)),
    "backdoors": Mapping(("AML.T0020", "AML.T0043.004", "AML.T0018.000"), ("ML02", "ML10"), ("2.3.3",), ("§5",)),
    "clean-label targeted poisoning": Mapping(("AML.T0020",), ("ML02",), ("2.3.2",), ("§5",)),
    "federated model replacement": Mapping(("AML.T0018.000",), ("ML10",), ("2.3.4",), ("§5",)),
    "availability poisoning": Mapping(("AML.T0020", "AML.T0031"), ("ML02",), ("2.3.1",), ("§5",)),
    "federated label flips": Mapping(("AML.T0020",), ("ML02", "ML10"), ("2.3.1", "2.3.4"), ("§5",)),
    "sponge poisoning": Mapping(("AML.T0020", "AML.T0029"), ("ML02",), ("2.3.1",), ("§5",)),
}

#: ATLAS mitigations of each defence, by ``family.name`` (the name before ``:`` in a config).
DEFENCES: dict[str, tuple[str, ...]] = {
    # model hardening: training-time defences
    "evasion.adversarial_training": ("AML.M0003",),
    "evasion.augmentation": ("AML.M0003",),
    "evasion.dropout": ("AML.M0003",),
    "evasion.weight_decay": ("AML.M0003",),
    "transfer_learning.fine_tune": ("AML.M0003",),
    "transfer_learning.dissimilarity": ("AML.M0003",),
    "transfer_learning.gradient_dissimilarity": ("AML.M0003",),
    "backdoor.mixup": ("AML.M0003",),
    "backdoor.cutmix": ("AML.M0003",),
    "universal.universal_adversarial_training": ("AML.M0003",),
    "universal.adversarial_training": ("AML.M0003",),
    # a classifier voting over ablated inputs (certified against a patch): a hardened model
    "universal.derandomized_smoothing": ("AML.M0003",),
    "universal.strip": ("AML.M0015",),
    "universal.random_masking": ("AML.M0015",),
    # robust aggregation of federated updates hardens the global model against its clients
    "federated.median": ("AML.M0003",),
    "federated.trimmed_mean": ("AML.M0003",),
    "federated.clipping": ("AML.M0003",),
    # input restoration: transformations in front of the model
    "evasion.bit_depth": ("AML.M0010",),
    "evasion.median": ("AML.M0010",),
    "evasion.jpeg": ("AML.M0010",),
    "evasion.noise": ("AML.M0010",),
    "backdoor.purification": ("AML.M0010",),
    # detection of adversarial or triggered inputs
    "evasion.feature_squeezing": ("AML.M0015",),
    "backdoor.strip": ("AML.M0015",),
    "backdoor.random_masking": ("AML.M0015",),
    # redundant diverse models (with human review on disagreement) and partition ensembles
    "redundancy.ensemble": ("AML.M0006",),
    "redundancy.partition": ("AML.M0006",),
    # a per-input cost budget: an input above it is treated as abnormal and takes the cheap path
    "sponge.cost_cutoff": ("AML.M0015",),
    # output obfuscation
    "membership.round": ("AML.M0002",),
    "membership.top_k": ("AML.M0002",),
    "membership.label_only": ("AML.M0002",),
    "membership.reverse_sigmoid": ("AML.M0002",),
    # differentially private training bounds what any one record can change: a hardened model
    "membership.dp_sgd": ("AML.M0003",),
    # regularised retraining narrows the gap between members and non-members: a hardened model
    "membership.weight_decay": ("AML.M0003",),
    "membership.label_smoothing": ("AML.M0003",),
    "membership.early_stopping": ("AML.M0003",),
    "membership.dropout": ("AML.M0003",),
    # GroupNorm in place of BatchNorm (as DP-SGD trains) keeps no training-set statistics in the model: hardening
    "inversion.group_norm": ("AML.M0003",),
    "inversion.dp_sgd": ("AML.M0003",),
    "extraction.round": ("AML.M0002",),
    "extraction.top_k": ("AML.M0002",),
    "extraction.label_only": ("AML.M0002",),
    "extraction.reverse_sigmoid": ("AML.M0002",),
    # ownership watermarks make a stolen copy attributable; ATLAS 5.6.0 names no mitigation for that
    "watermark.trigger": (),
    "watermark.ewe": (),
    # sanitising the training data
    "backdoor.activation_clustering": ("AML.M0007",),
    "backdoor.spectral_signatures": ("AML.M0007",),
    "backdoor.autoencoder": ("AML.M0007",),
    "poisoning.knn_label_consistency": ("AML.M0007",),
    # validating and repairing a trained model
    "backdoor.neural_cleanse": ("AML.M0008",),
    "backdoor.tabor": ("AML.M0008",),
    "backdoor.fine_pruning": ("AML.M0008", "AML.M0003"),
    "backdoor.fine_tuning": ("AML.M0008", "AML.M0003"),
    "backdoor.unlearning": ("AML.M0008", "AML.M0003"),
}


def threat(name: str) -> Mapping:
    """The mapping of a threat of the matrix (KeyError names the threat when one is missing)."""
    return THREATS[name]


def defence(family: str, spec: str) -> list[str]:
    """The ATLAS mitigations of a family's defence spec (``evasion``, ``jpeg:75`` -> ``["AML.M0010"]``); [] if none."""
    return list(DEFENCES.get(f"{family}.{spec.split(':', 1)[0]}", ()))


def merged(names: Iterable[str]) -> Mapping:
    """One mapping holding the identifiers of several threats (each once, in order)."""
    ms = [THREATS[n] for n in names]

    def union(field: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i for m in ms for i in getattr(m, field)))

    return Mapping(union("atlas"), union("owasp"), union("nist"), union("bsi"))


def coverage(assessed: Iterable[str]) -> list[dict[str, Any]]:
    """Per ATLAS technique of the matrix: its name, the threats it covers, and whether any of them was assessed."""
    ran = set(assessed)
    rows: dict[str, dict[str, Any]] = {}
    for name, m in THREATS.items():
        for tid in m.atlas:
            row = rows.setdefault(tid, {"id": tid, "name": ATLAS[tid], "threats": [], "assessed": False})
            row["threats"].append(name)
            row["assessed"] = row["assessed"] or name in ran
    return sorted(rows.values(), key=lambda r: r["id"])
