"""Input-transformation defences: squeeze, smooth, compress or randomise inputs before the model.

Bit-depth reduction and median smoothing are the "feature squeezers" of Xu, Evans & Qi
("Feature Squeezing: Detecting Adversarial Examples in Deep Neural Networks", NDSS 2018);
JPEG compression is studied by Dziugaite, Ghahramani & Roy ("A study of the effect of JPG
compression on adversarial images", arXiv 2016) and Guo et al. ("Countering Adversarial
Images using Input Transformations", ICLR 2018); random noise is the simplest randomized
transform. All of them mask gradients rather than remove adversarial examples: evaluate
them with :class:`sparring.attacks.evasion.BPDA` (Athalye, Carlini & Wagner, ICML 2018),
not only with a naive attack.

Every transform works on whole batches in torch and expects values in ``[0, 1]``
(:class:`~sparring.models.TransformedClassifier` rescales from the model's bounds).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from sparring.errors import ConfigError, InputError, check_positive, check_positive_int, check_seed
from sparring.models import Classifier, InputTransform, TransformedClassifier
from sparring.params import Registry


def _need_images(name: str, input_shape: Sequence[int]) -> None:
    if len(input_shape) != 3:
        raise ConfigError(f"{name} needs image inputs [C, H, W], got input shape {tuple(input_shape)}")


def _need_batch_of_images(name: str, x: Tensor) -> None:
    if x.dim() != 4:
        raise InputError(f"{name} needs image inputs [N, C, H, W], got shape {tuple(x.shape)}")


class BitDepth(InputTransform):
    """Reduce every value to ``bits`` bits: ``round(x * (2^bits - 1)) / (2^bits - 1)``.

    Xu et al. (NDSS 2018) squeeze MNIST to 1 bit and colour images to 4 or 5 bits.
    """

    def __init__(self, bits: int = 4) -> None:
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
            raise ConfigError(f"bits must be an integer in [1, 16], got {bits!r}")
        self.bits = bits

    @property
    def name(self) -> str:
        return f"bit_depth:{self.bits}"

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        levels = 2**self.bits - 1
        return torch.round(x.clamp(0.0, 1.0) * levels) / levels


class MedianSmoothing(InputTransform):
    """Replace each pixel by the median of the ``size`` x ``size`` window at it, per channel.

    Xu et al. (NDSS 2018) use 2x2 on MNIST and 2x2 or 3x3 on colour images. As in
    ``scipy.ndimage.median_filter``, an even window reaches one pixel further up/left, the
    median of an even count is the upper middle value, and borders repeat the edge pixel.
    Image inputs only: a flat (tabular) input raises a clear error.
    """

    def __init__(self, size: int = 2) -> None:
        self.size = check_positive_int("median window size", size)

    @property
    def name(self) -> str:
        return f"median:{self.size}"

    def check_input_shape(self, input_shape: Sequence[int]) -> None:
        _need_images("median smoothing", input_shape)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        _need_batch_of_images("median smoothing", x)
        k = self.size
        if k == 1:
            return x
        n, c, h, w = x.shape
        before, after = k // 2, k - 1 - k // 2
        padded = F.pad(x.reshape(n * c, 1, h, w), (before, after, before, after), mode="replicate")
        windows = F.unfold(padded, k)  # [N*C, k*k, H*W]
        median = windows.kthvalue(k * k // 2 + 1, dim=1).values
        return median.reshape(n, c, h, w)


#: The JPEG standard's luminance quantisation table (ITU T.81, Annex K, table K.1).
_LUMINANCE = torch.tensor(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=torch.float32,
)


@functools.cache
def _dct_matrix(n: int = 8) -> Tensor:
    """The orthonormal DCT-II matrix ``D`` (``D @ block @ D.T`` is the 2-D DCT)."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.float()


@functools.cache
def quantisation_table(quality: int) -> Tensor:
    """The luminance table scaled to ``quality`` (1-100) as the IJG libjpeg does, clipped to [1, 255]."""
    scale = 5000.0 / quality if quality < 50 else 200.0 - 2.0 * quality
    return torch.floor((_LUMINANCE * scale + 50.0) / 100.0).clamp(1.0, 255.0)


class JpegCompression(InputTransform):
    """Lossy JPEG-style compression at ``quality`` (1-100), computed in torch on whole batches.

    Each channel is shifted to [-128, 127], cut into 8x8 blocks (edges padded by repetition),
    transformed by the 2-D DCT, quantised with the standard luminance table scaled to
    ``quality``, and transformed back (Dziugaite et al., 2016; Guo et al., ICLR 2018). Every
    channel uses the luminance table and there is no chroma subsampling or entropy coding
    (which is lossless), so colour images differ slightly from a real JPEG file. Image
    inputs only.
    """

    def __init__(self, quality: int = 75) -> None:
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            raise ConfigError(f"JPEG quality must be an integer in [1, 100], got {quality!r}")
        self.quality = quality

    @property
    def name(self) -> str:
        return f"jpeg:{self.quality}"

    def check_input_shape(self, input_shape: Sequence[int]) -> None:
        _need_images("JPEG compression", input_shape)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        _need_batch_of_images("JPEG compression", x)
        n, c, h, w = x.shape
        ph, pw = -h % 8, -w % 8
        pixels = x.clamp(0.0, 1.0) * 255.0 - 128.0
        if ph or pw:
            pixels = F.pad(pixels, (0, pw, 0, ph), mode="replicate")
        hb, wb = (h + ph) // 8, (w + pw) // 8
        # [N, C, hb, 8, wb, 8] -> blocks [N, C, hb, wb, 8, 8]
        blocks = pixels.reshape(n, c, hb, 8, wb, 8).permute(0, 1, 2, 4, 3, 5)
        d, q = _dct_matrix(8).to(x.dtype), quantisation_table(self.quality).to(x.dtype)
        coeff = d @ blocks @ d.T
        coeff = torch.round(coeff / q) * q
        restored = d.T @ coeff @ d
        out = restored.permute(0, 1, 2, 4, 3, 5).reshape(n, c, h + ph, w + pw)[:, :, :h, :w]
        return ((out + 128.0) / 255.0).clamp(0.0, 1.0)


class GaussianNoise(InputTransform):
    """Add N(0, ``sigma``^2) noise to every value and clip to [0, 1]; a randomized transform.

    Every query draws fresh noise, so the defended prediction is itself random; an adaptive
    attacker averages over draws (expectation over transformation, Athalye et al., ICML 2018).
    """

    randomized = True

    def __init__(self, sigma: float = 0.1, seed: int = 0) -> None:
        self.sigma = check_positive("noise sigma", sigma)
        self.seed = check_seed(seed)

    @property
    def name(self) -> str:
        return f"noise:{self.sigma:g}"

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return (x + self.sigma * noise).clamp(0.0, 1.0)


#: Input transformations by the name a config uses, each optionally followed by ``:ARG``.
TRANSFORMS: Registry[InputTransform] = Registry("transform")
TRANSFORMS.add("bit_depth", BitDepth, arg="bits")
TRANSFORMS.add("median", MedianSmoothing, arg="size")
TRANSFORMS.add("jpeg", JpegCompression, arg="quality")
TRANSFORMS.add("noise", GaussianNoise, arg="sigma")
TRANSFORM_NAMES = tuple(TRANSFORMS)


def parse_transform(spec: str, seed: int = 0) -> InputTransform:
    """Build the transform that ``spec`` names, with no classifier needed (config-time check).

    Forms: ``"bit_depth:4"`` (:class:`BitDepth`), ``"median:2"`` (:class:`MedianSmoothing`),
    ``"jpeg:75"`` (:class:`JpegCompression`), ``"noise:0.1"`` (:class:`GaussianNoise`, drawing
    from ``seed``); the argument may be left out for the default. A bad spec raises
    :class:`~sparring.errors.ConfigError` naming the valid forms.
    """
    return TRANSFORMS.build(spec, seed=seed)


def transform_defence(classifier: Classifier, spec: str, seed: int = 0) -> TransformedClassifier:
    """Wrap ``classifier`` so that every query first applies the transform ``spec`` names."""
    return parse_transform(spec, seed).wrap(classifier)
