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

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from sparring.errors import ConfigError, InputError
from sparring.models import Classifier, InputTransform, TransformedClassifier

#: Names accepted by :func:`transform_defence` (each optionally followed by ``:ARG``).
TRANSFORM_NAMES = ("bit_depth", "median", "jpeg", "noise")

_VALID_FORMS = (
    "'bit_depth[:BITS]' (default 4), 'median[:SIZE]' (default 2), 'jpeg[:QUALITY]' (default 75), "
    "'noise[:SIGMA]' (default 0.1)"
)


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
        self.name = f"bit_depth:{bits}"

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
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"median window size must be an integer >= 1, got {size!r}")
        self.size = size
        self.name = f"median:{size}"

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


def _dct_matrix(n: int = 8) -> Tensor:
    """The orthonormal DCT-II matrix ``D`` (``D @ block @ D.T`` is the 2-D DCT)."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.float()


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
        self.name = f"jpeg:{quality}"
        self._table = quantisation_table(quality)
        self._dct = _dct_matrix(8)

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
        d, q = self._dct.to(x.dtype), self._table.to(x.dtype)
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

    def __init__(self, sigma: float = 0.1) -> None:
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0.0 < float(sigma) < float("inf"):
            raise ConfigError(f"noise sigma must be a finite number > 0, got {sigma!r}")
        self.sigma = float(sigma)
        self.name = f"noise:{self.sigma:g}"

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return (x + self.sigma * noise).clamp(0.0, 1.0)


def _number(name: str, text: str, spec: str, kind: type[int] | type[float]) -> float:
    try:
        return kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"{name} in transform spec {spec!r} must be {what}, got {text!r}") from None


def parse_transform(spec: str) -> InputTransform:
    """Build the transform that ``spec`` names, with no classifier needed (config-time check).

    Forms: ``"bit_depth:4"`` (:class:`BitDepth`), ``"median:2"`` (:class:`MedianSmoothing`),
    ``"jpeg:75"`` (:class:`JpegCompression`), ``"noise:0.1"`` (:class:`GaussianNoise`); the
    argument may be left out for the default. A bad spec raises
    :class:`~sparring.errors.ConfigError` naming the valid forms.
    """
    if not isinstance(spec, str):
        raise ConfigError(f"transform spec must be a string, got {type(spec).__name__}; valid forms: {_VALID_FORMS}")
    name, sep, arg = (part.strip() for part in spec.strip().partition(":"))
    if name not in TRANSFORM_NAMES:
        raise ConfigError(f"unknown transform {spec!r}; valid forms: {_VALID_FORMS}")
    if sep and not arg:
        raise ConfigError(f"transform spec {spec!r} has an empty argument; valid forms: {_VALID_FORMS}")
    try:
        if name == "bit_depth":
            return BitDepth(int(_number("bits", arg, spec, int)) if sep else 4)
        if name == "median":
            return MedianSmoothing(int(_number("size", arg, spec, int)) if sep else 2)
        if name == "jpeg":
            return JpegCompression(int(_number("quality", arg, spec, int)) if sep else 75)
        return GaussianNoise(_number("sigma", arg, spec, float) if sep else 0.1)
    except ConfigError as err:
        if "transform spec" in str(err):
            raise
        raise ConfigError(f"transform spec {spec!r}: {err}") from None


def transform_defence(classifier: Classifier, spec: str, seed: int = 0) -> TransformedClassifier:
    """Wrap ``classifier`` so that every query first applies the transform ``spec`` names.

    See :func:`parse_transform` for the forms; ``seed`` seeds a randomized transform.
    """
    return TransformedClassifier(classifier, parse_transform(spec), seed=seed)
