"""Shadow models: Shokri et al., "Membership Inference Attacks Against Machine Learning Models", S&P 2017.

Shadow models are trained like the target on data from the same distribution (here: the
reference models, each on its own random half of the population). Their outputs on samples
they trained on (IN) and did not (OUT) teach an attack classifier to tell members from
non-members; it then scores the target's outputs. Shokri et al. train one attack model per
class on the full prediction vector; this one is a single gradient-boosted classifier
(scikit-learn's ``HistGradientBoostingClassifier``, classes balanced) over the sorted
probability vector, the label one-hot and the log-probability of the true class, which
carries the same information with one model (ART's black-box attack also takes the label
as a feature).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from sparring.attacks.privacy.membership import MEMBERSHIP_ATTACKS, ReferenceAttack, cross_entropy_from_scores
from sparring.errors import ConfigError


def shadow_features(scores: Tensor, y: Tensor, num_classes: int) -> np.ndarray:
    """``[N, 2C + 1]``: probabilities sorted high to low, the label one-hot, ``log p_y``."""
    p = scores.detach().to(torch.float64)
    ranked = torch.sort(p, dim=1, descending=True).values
    onehot = torch.nn.functional.one_hot(y.long(), num_classes).to(torch.float64)
    log_py = -cross_entropy_from_scores(scores, y).unsqueeze(1)
    return torch.cat([ranked, onehot, log_py], dim=1).numpy()


class ShadowModels(ReferenceAttack):
    """Shokri et al. (IEEE S&P 2017): an attack classifier trained on shadow models' IN / OUT outputs.

    Needs the population and which of it each shadow model trained on (``population_keep``
    of :meth:`fit_references`); ``seed`` seeds the attack classifier.
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed

    def score(self, x: Tensor, y: Tensor) -> Tensor:
        """The attack classifier's member probability per sample (float64); higher means more likely a member."""
        from sklearn.ensemble import HistGradientBoostingClassifier

        classifier, x, y = self._validated(x, y)
        if len(y) == 0:
            return torch.empty(0, dtype=torch.float64)
        population, keep = self.population_, self.population_keep_
        if population is None or keep is None or keep.shape[1] != len(population):
            raise ConfigError("ShadowModels needs the population and which of it each shadow model trained on")
        c = classifier.num_classes
        feats, labels = [], []
        for ref, row in zip(self.references_, keep, strict=True):
            feats.append(shadow_features(ref.predict_scores(population.x), population.y, c))
            labels.append(row.numpy())
        target_y = np.concatenate(labels)
        if target_y.all() or not target_y.any():
            raise ConfigError("ShadowModels needs population samples both IN and OUT of the shadow models")
        attack = HistGradientBoostingClassifier(class_weight="balanced", random_state=self.seed, max_iter=200)
        attack.fit(np.concatenate(feats), target_y)
        proba = attack.predict_proba(shadow_features(classifier.predict_scores(x), y, c))[:, 1]
        return torch.from_numpy(np.ascontiguousarray(proba, dtype=np.float64))


MEMBERSHIP_ATTACKS.add("shadow", ShadowModels)
