"""DP-SGD (Abadi et al., CCS 2016) through Opacus (Yousefpour et al., 2021), not reimplemented.

:class:`DPSGD` trains a model with per-sample gradient clipping and Gaussian noise calibrated
by Opacus' ``make_private_with_epsilon`` to reach ``epsilon`` at ``delta`` after the
configured epochs, with Poisson sampling of batches. Layers DP-SGD cannot handle (BatchNorm)
are replaced by Opacus' ``ModuleValidator.fix`` (BatchNorm becomes GroupNorm). The
accountant's epsilon spent is returned beside the model. Opacus is the optional extra
``privacy`` (``pip install 'sparring[privacy]'``).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from sparring.data import Dataset
from sparring.errors import ConfigError, InputError
from sparring.params import Params, Registry
from sparring.train import TrainConfig

#: δ used when none is given (lowered below 1/N for smaller training sets).
DEFAULT_DELTA = 1e-5


def opacus_available() -> bool:
    """True when Opacus can be imported."""
    try:
        import opacus  # noqa: F401
    except ImportError:
        return False
    return True


def require_opacus(what: str = "dp_sgd") -> None:
    """Raise a one-line :class:`ConfigError` naming the extra when Opacus is missing."""
    if not opacus_available():
        raise ConfigError(f"{what} needs Opacus, which is not installed: pip install 'sparring[privacy]'")


def has_batchnorm(module: nn.Module) -> bool:
    """True when ``module`` holds a BatchNorm layer (which ``ModuleValidator.fix`` replaces with GroupNorm)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def fix_module(module: nn.Module) -> nn.Module:
    """``module`` with the layers DP-SGD cannot train replaced (Opacus' ``ModuleValidator.fix``)."""
    from opacus.validators import ModuleValidator

    fixed: nn.Module = ModuleValidator.fix(module)
    return fixed


@dataclass
class PrivateTraining:
    """A DP-SGD model, its training seconds, the accountant's ε spent at δ, and the noise used."""

    model: nn.Module
    seconds: float
    epsilon: float
    delta: float
    noise_multiplier: float
    #: True when ``ModuleValidator.fix`` replaced BatchNorm layers (with GroupNorm).
    batchnorm_replaced: bool = False


class DPSGD(Params):
    """DP-SGD through Opacus (Abadi et al., CCS 2016): ``epsilon`` at ``delta``, gradients clipped at ``max_grad_norm``.

    ``delta`` None means ``min(1e-5, 0.1 / N)`` for N training samples; a given ``delta`` must
    be below ``1 / N``.
    """

    def __init__(self, epsilon: float = 8.0, delta: float | None = None, max_grad_norm: float = 1.0) -> None:
        if not epsilon > 0 or epsilon != epsilon or epsilon == float("inf"):
            raise ConfigError(f"epsilon must be a finite number > 0, got {epsilon}")
        if delta is not None and not 0 < delta < 1:
            raise ConfigError(f"delta must be in (0, 1), got {delta}")
        if not max_grad_norm > 0:
            raise ConfigError(f"max_grad_norm must be > 0, got {max_grad_norm}")
        self.epsilon = float(epsilon)
        self.delta = delta
        self.max_grad_norm = float(max_grad_norm)

    def delta_for(self, n: int) -> float:
        """The δ used for ``n`` training samples."""
        if self.delta is None:
            return min(DEFAULT_DELTA, 0.1 / n)
        if self.delta >= 1.0 / n:
            raise ConfigError(f"delta {self.delta} is not below 1/N = {1.0 / n:.3g} for {n} training samples")
        return self.delta

    def train(self, module: nn.Module, data: Dataset, config: TrainConfig) -> PrivateTraining:
        """Train ``module`` (fixed for DP first) on ``data`` with DP-SGD; returns it in eval mode with ε spent."""
        require_opacus()
        from opacus import PrivacyEngine

        if len(data) == 0:
            raise InputError("cannot train on an empty dataset")
        delta = self.delta_for(len(data))
        replaced = has_batchnorm(module)
        model = fix_module(module)
        if config.optimizer == "adam":
            opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        else:
            opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
        gen = torch.Generator().manual_seed(config.seed)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(data.x, data.y), batch_size=config.batch_size, generator=gen
        )
        start = time.perf_counter()
        with torch.random.fork_rng(), warnings.catch_warnings():
            # Opacus' notices about its non-cryptographic RNG and input-less backward hooks, not problems here.
            warnings.filterwarnings("ignore", message="Secure RNG turned off")
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            # The RDP accountant's alpha grid ends before the optimum: its ε is then an upper bound a
            # little looser than it could be (conservative), which is not the user's problem to act on.
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            torch.manual_seed(config.seed + 3)
            engine = PrivacyEngine()
            private, opt, loader = engine.make_private_with_epsilon(
                module=model,
                optimizer=opt,
                data_loader=loader,
                target_epsilon=self.epsilon,
                target_delta=delta,
                epochs=max(1, config.epochs),
                max_grad_norm=self.max_grad_norm,
                noise_generator=torch.Generator().manual_seed(config.seed + 5),
            )
            loss_fn = nn.CrossEntropyLoss()
            private.train()
            for _ in range(max(1, config.epochs)):
                for xb, yb in loader:
                    if len(yb) == 0:  # Poisson sampling can draw an empty batch
                        continue
                    opt.zero_grad(set_to_none=True)
                    loss_fn(private(xb), yb).backward()
                    opt.step()
        seconds = time.perf_counter() - start
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            spent = float(engine.get_epsilon(delta))
        noise = float(getattr(opt, "noise_multiplier", float("nan")))
        # Opacus' per-sample-gradient hooks stay on the module; a later backward (an evasion
        # attack's input gradient) would fail inside them, so they go before it is returned.
        remove = getattr(private, "remove_hooks", None)
        if callable(remove):
            remove()
        trained: nn.Module = private._module
        for p in trained.parameters():
            p.grad = None
            if hasattr(p, "grad_sample"):
                p.grad_sample = None
        return PrivateTraining(trained.eval(), seconds, spent, delta, noise, replaced)


#: Private-training defences by config name (``dp_sgd:EPS``).
PRIVATE_TRAINING: Registry[DPSGD] = Registry("private training")
PRIVATE_TRAINING.add("dp_sgd", DPSGD, arg="epsilon", summary="DP-SGD through Opacus at the given ε")
