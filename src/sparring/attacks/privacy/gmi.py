"""GAN-based model inversion: the Generative Model-Inversion attack (GMI) with a small generator prior.

Zhang, Jia, Pei, Wang, Li and Song, "The Secret Revealer: Generative Model-Inversion Attacks
Against Deep Neural Networks", CVPR 2020. Gradient inversion searches pixel space, where most
points that a model assigns to a class look like nothing; GMI searches the latent space of a
generator trained on *public* data of the same kind, so every candidate is an image the
generator can draw.

1. :func:`train_gan` trains a small DCGAN-style generator (Radford et al., ICLR 2016;
   transposed convolutions for images, an MLP otherwise) against a discriminator with
   spectral normalisation (Miyato et al., ICLR 2018) under the hinge loss (Lim and Ye, 2017).
   Spectral normalisation matters at this size: a plain MLP GAN collapsed onto a few modes.
   The public data must be disjoint from the target's training members; the assessment uses
   its held-out split minus the samples of the nearest-neighbour test (in-distribution data
   neither the target nor its reference trained on, which every dataset has offline; GMI's
   paper likewise uses disjoint identities of the same dataset as its public data).
2. :class:`GMI` then searches, for each target class, ``restarts`` random latent codes per
   reconstruction, minimising the target's identity loss (cross-entropy of the class) plus
   ``prior`` times the prior loss ``-D(G(z))`` (Adam on ``z``, clipped to ``[-clip, clip]``
   as GMI does), and keeps, per reconstruction, the start the target is most confident in.

The same trained generator must invert the target and its reference model, so the gap between
them measures what the target leaks, not what the GAN learnt: :meth:`GMI.use` hands an
already trained :class:`GanPrior` to an attack.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from sparring.attacks.privacy.inversion import INVERSION_ATTACKS, InversionAttack, _classes
from sparring.data import Dataset
from sparring.errors import InputError, check_nonnegative, check_positive, check_positive_int, check_seed
from sparring.models import Classifier


class Generator(nn.Module):
    """``z [N, latent]`` -> samples in ``bounds``: two stride-2 transposed convolutions for ``[C, H, W]`` inputs.

    Images start at a quarter of their size (rounded up) and are cropped to ``H x W`` (so 8x8
    digits and 28x28 MNIST both work); any other input shape gets a two-layer MLP.
    """

    def __init__(
        self, input_shape: Sequence[int], latent: int, width: int, bounds: tuple[float, float] = (0.0, 1.0)
    ) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.latent = latent
        self.lo, self.hi = float(bounds[0]), float(bounds[1])
        self.image = len(self.input_shape) == 3
        if self.image:
            c, h, w = self.input_shape
            self.base = (math.ceil(h / 4), math.ceil(w / 4))
            self.body: nn.Module = nn.Sequential(
                nn.Linear(latent, 2 * width * self.base[0] * self.base[1]),
                nn.BatchNorm1d(2 * width * self.base[0] * self.base[1]),
                nn.ReLU(),
                nn.Unflatten(1, (2 * width, *self.base)),
                nn.ConvTranspose2d(2 * width, width, 4, 2, 1),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.ConvTranspose2d(width, c, 4, 2, 1),
            )
        else:
            d = math.prod(self.input_shape)
            self.body = nn.Sequential(
                nn.Linear(latent, 4 * width),
                nn.BatchNorm1d(4 * width),
                nn.ReLU(),
                nn.Linear(4 * width, 4 * width),
                nn.BatchNorm1d(4 * width),
                nn.ReLU(),
                nn.Linear(4 * width, d),
            )

    def forward(self, z: Tensor) -> Tensor:
        """Samples ``[N, *input_shape]`` in the bounds."""
        out = self.body(z)
        if self.image:
            out = out[:, :, : self.input_shape[1], : self.input_shape[2]]
        return self.lo + (self.hi - self.lo) * torch.sigmoid(out.reshape(len(z), *self.input_shape))


class Discriminator(nn.Module):
    """A realness score per sample: spectrally normalised stride-2 convolutions (or an MLP), one linear output."""

    def __init__(self, input_shape: Sequence[int], width: int) -> None:
        super().__init__()
        shape = tuple(int(s) for s in input_shape)
        if len(shape) == 3:
            c, h, w = shape
            feat = 2 * width * math.ceil(math.ceil(h / 2) / 2) * math.ceil(math.ceil(w / 2) / 2)
            self.body: nn.Module = nn.Sequential(
                spectral_norm(nn.Conv2d(c, width, 3, 2, 1)),
                nn.LeakyReLU(0.2),
                spectral_norm(nn.Conv2d(width, 2 * width, 3, 2, 1)),
                nn.LeakyReLU(0.2),
                nn.Flatten(),
                spectral_norm(nn.Linear(feat, 1)),
            )
        else:
            d = math.prod(shape)
            self.body = nn.Sequential(
                nn.Flatten(),
                spectral_norm(nn.Linear(d, 4 * width)),
                nn.LeakyReLU(0.2),
                spectral_norm(nn.Linear(4 * width, 4 * width)),
                nn.LeakyReLU(0.2),
                spectral_norm(nn.Linear(4 * width, 1)),
            )

    def forward(self, x: Tensor) -> Tensor:
        """``[N]`` scores (higher: more like the public data)."""
        out: Tensor = self.body(x).flatten()
        return out


class GanPrior(nn.Module):
    """A generator and its discriminator, stored and loaded together (one ``state_dict``)."""

    def __init__(
        self, input_shape: Sequence[int], latent: int = 32, width: int = 32, bounds: tuple[float, float] = (0.0, 1.0)
    ) -> None:
        super().__init__()
        latent, width = check_positive_int("latent", latent), check_positive_int("width", width)
        self.generator = Generator(input_shape, latent, width, bounds)
        self.discriminator = Discriminator(input_shape, width)

    @property
    def latent(self) -> int:
        """The latent dimension."""
        return self.generator.latent

    def sample(self, n: int, seed: int = 0) -> Tensor:
        """``n`` generator samples from standard normal codes (evaluation mode, no gradients)."""
        z = torch.randn((n, self.latent), generator=torch.Generator().manual_seed(seed))
        was = self.training
        self.eval()
        with torch.no_grad():
            out: Tensor = self.generator(z)
        self.train(was)
        return out


@dataclass
class TrainedGan:
    """A trained :class:`GanPrior`, its training seconds and the mean losses per epoch."""

    gan: GanPrior
    seconds: float
    d_loss: list[float] = field(default_factory=list)
    g_loss: list[float] = field(default_factory=list)


def train_gan(
    public: Dataset,
    latent: int = 32,
    width: int = 32,
    epochs: int = 60,
    batch_size: int = 64,
    lr: float = 2e-4,
    seed: int = 0,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> TrainedGan:
    """Train a :class:`GanPrior` on ``public``: hinge loss, Adam (betas 0.5, 0.999), one D and one G step a batch."""
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    check_positive("lr", lr)
    check_seed(seed)
    if len(public) < 2:
        raise InputError(f"GMI needs at least 2 public samples to train its generator, got {len(public)}")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        gan = GanPrior(public.input_shape, latent, width, bounds)
    g = torch.Generator().manual_seed(seed)
    opt_g = torch.optim.Adam(gan.generator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(gan.discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    x_all = public.x.float()
    bs = min(batch_size, len(x_all))
    gan.train()
    d_hist: list[float] = []
    g_hist: list[float] = []
    t0 = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x_all), generator=g)
        d_sum = g_sum = 0.0
        steps = 0
        for i in range(0, len(order) - bs + 1, bs):
            real = x_all[order[i : i + bs]]
            fake = gan.generator(torch.randn((bs, latent), generator=g))
            d_real, d_fake = gan.discriminator(real), gan.discriminator(fake.detach())
            d_loss = F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            g_loss = -gan.discriminator(fake).mean()
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            d_sum += float(d_loss.detach())
            g_sum += float(g_loss.detach())
            steps += 1
        d_hist.append(d_sum / steps)
        g_hist.append(g_sum / steps)
    gan.eval()
    return TrainedGan(gan, time.perf_counter() - t0, d_hist, g_hist)


class GMI(InversionAttack):
    """The Generative Model-Inversion attack (Zhang et al., CVPR 2020): latent search under a GAN prior.

    :meth:`fit` trains the generator on public data (or :meth:`use` takes a trained one);
    :meth:`invert` then minimises, per latent code, ``CE(target class) - prior * D(G(z))``
    with ``steps`` Adam steps of size ``lr``, clipping ``z`` to ``[-clip, clip]``, from
    ``restarts`` random codes per reconstruction, and keeps the code whose image the target
    is most confident in. ``latent``, ``width``, ``gan_epochs``, ``gan_batch`` and ``gan_lr``
    size and train the GAN (see :func:`train_gan`). ``tv``, ``l2`` and ``spread`` of the
    pixel-space attacks do not apply (the generator is the image prior).
    """

    def __init__(
        self,
        n: int = 4,
        steps: int = 200,
        lr: float = 0.05,
        seed: int = 0,
        prior: float = 0.1,
        restarts: int = 5,
        clip: float = 1.0,
        latent: int = 32,
        width: int = 32,
        gan_epochs: int = 60,
        gan_batch: int = 64,
        gan_lr: float = 2e-4,
    ) -> None:
        super().__init__(n=n, steps=steps, lr=lr, seed=seed)
        self.prior = check_nonnegative("prior", prior)
        self.restarts = check_positive_int("restarts", restarts)
        self.clip = check_positive("clip", clip)
        self.latent = check_positive_int("latent", latent)
        self.width = check_positive_int("width", width)
        self.gan_epochs = check_positive_int("gan_epochs", gan_epochs)
        self.gan_batch = check_positive_int("gan_batch", gan_batch)
        self.gan_lr = check_positive("gan_lr", gan_lr)
        self.gan_: GanPrior | None = None

    def fit(self, public: Dataset, bounds: tuple[float, float] = (0.0, 1.0)) -> TrainedGan:
        """Train the GAN prior on ``public`` (data disjoint from the target's training set) and keep it."""
        trained = train_gan(
            public, self.latent, self.width, self.gan_epochs, self.gan_batch, self.gan_lr, self.seed, bounds
        )
        self.gan_ = trained.gan
        return trained

    def use(self, gan: GanPrior) -> GMI:
        """Invert with an already trained GAN prior (the same one for a target and its reference)."""
        if gan.latent != self.latent:
            raise InputError(f"the GAN prior has latent dimension {gan.latent}, the attack expects {self.latent}")
        self.gan_ = gan
        return self

    def invert(self, classifier: Classifier, target_class: int | Sequence[int]) -> Tensor:
        """``n`` reconstructions of each class in ``target_class``, ``[n * classes, *input_shape]``, class by class."""
        classifier.require(self.requires, type(self).__name__)
        classes = _classes(classifier, target_class)
        gan = self.gan_
        if gan is None:
            raise InputError("GMI has no generator: call fit(public_data) or use(trained_gan) before invert")
        if gan.generator.input_shape != tuple(classifier.input_shape):
            raise InputError(
                f"the GAN prior draws {list(gan.generator.input_shape)} inputs, the model takes "
                f"{list(classifier.input_shape)}"
            )
        gan.eval()
        for p in gan.parameters():
            p.requires_grad_(False)
        k = self.restarts
        labels = torch.tensor(classes).repeat_interleave(self.n * k)
        g = torch.Generator().manual_seed(self.seed)
        z = torch.randn((len(labels), self.latent), generator=g).clamp(-self.clip, self.clip).requires_grad_(True)
        opt = torch.optim.Adam([z], lr=self.lr)
        try:
            for _ in range(self.steps):
                opt.zero_grad(set_to_none=True)
                x = gan.generator(z)
                identity = F.cross_entropy(classifier.logits(x), labels, reduction="none")
                loss = identity - self.prior * gan.discriminator(x)
                loss.sum().backward()
                opt.step()
                with torch.no_grad():
                    z.clamp_(-self.clip, self.clip)
            with torch.no_grad():
                x = gan.generator(z)
                conf = classifier.logits(x).softmax(1)[torch.arange(len(labels)), labels]
        finally:
            for p in gan.parameters():
                p.requires_grad_(True)
        best = conf.view(-1, k).argmax(1) + torch.arange(0, len(labels), k)
        return x[best].detach()

    def _descend(self, classifier: Classifier, x: Tensor, labels: Tensor, g: torch.Generator) -> Tensor:
        raise NotImplementedError  # GMI searches latent space in invert


INVERSION_ATTACKS.add("gmi", GMI)
