"""Synthetic degradation of face images, paper eq. 9 (appendix A, after DiffBIR/CodeFormer):

    I_low = {[(I_high (*) k_sigma) downsample_r + n_delta]_JPEG_q} upsample_r

Every stage is a deterministic core (``add_blur``, ``downsample``, ``add_gaussian_noise``,
``add_jpeg_compression``, ``upsample``) and ``degrade(img, params)`` chains them. Randomness
lives only in the samplers, which take an explicit ``rng: np.random.Generator`` and draw a
``DegradationParams`` from a ``DegradationPreset`` (a frozen dataclass of ranges). The same
rng state and input always give the same bytes; no global random state is used.

Images at the public boundary are uint8 arrays (H, W, 3), RGB, range [0, 255].
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "DegradationParams", "DegradationPreset", "PRESETS", "get_preset",
    "gaussian_kernel", "add_blur", "downsample", "add_gaussian_noise", "add_jpeg_compression",
    "upsample", "degrade", "random_degradation_params", "random_degrade",
]

Range = tuple[float, float]


# ------------------------------------------------------------------ parameters and presets

@dataclass(frozen=True)
class DegradationParams:
    """One concrete draw of eq. 9.

    sigma_x, sigma_y: blur std in pixels of the input (sigma_x == sigma_y and theta 0 for isotropic);
    theta: kernel rotation in radians; kernel_size: odd, pixels; scale: downsampling factor r >= 1;
    noise_sigma: Gaussian noise std on the 0-255 scale; noise_seed: seeds the noise pixels so
    ``degrade`` stays a pure function; jpeg_quality: 1-100 (100 still encodes).
    """

    kernel_size: int = 41
    sigma_x: float = 0.0
    sigma_y: float = 0.0
    theta: float = 0.0
    scale: float = 1.0
    noise_sigma: float = 0.0
    noise_seed: int = 0
    jpeg_quality: int = 100

    def to_dict(self) -> dict:
        """The parameters as a JSON-ready dict (recorded next to each degraded test image)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DegradationPreset:
    """Ranges the sampler draws from (uniform, inclusive). Override any field with ``get_preset``.

    sigma_range: blur std in pixels; iso_prob: probability of an isotropic kernel (else
    anisotropic with independent sigmas and a random rotation); scale_range: downsampling r;
    noise_range: noise std on the 0-255 scale; jpeg_range: JPEG quality.
    """

    name: str = "custom"
    kernel_size: int = 41
    iso_prob: float = 0.5
    sigma_range: Range = (0.1, 12.0)
    scale_range: Range = (1.0, 12.0)
    noise_range: Range = (0.0, 15.0)
    jpeg_range: Range = (30, 100)

    def __post_init__(self) -> None:
        if self.kernel_size % 2 != 1 or self.kernel_size < 1:
            raise ValueError(f"preset {self.name}: kernel_size must be odd and positive, got {self.kernel_size}")
        for field in ("sigma_range", "scale_range", "noise_range", "jpeg_range"):
            lo, hi = getattr(self, field)
            if lo > hi:
                raise ValueError(f"preset {self.name}: {field} has low {lo} > high {hi}")
        if self.scale_range[0] < 1:
            raise ValueError(f"preset {self.name}: scale_range must be >= 1, got {self.scale_range}")
        if not (1 <= self.jpeg_range[0] and self.jpeg_range[1] <= 100):
            raise ValueError(f"preset {self.name}: jpeg_range must lie in [1, 100], got {self.jpeg_range}")
        if not 0.0 <= self.iso_prob <= 1.0:
            raise ValueError(f"preset {self.name}: iso_prob must be in [0, 1], got {self.iso_prob}")


# paper: DiffBIR / CodeFormer face ranges (appendix A). srN: the fixed-factor super-resolution
# test of table 6, with the ASFFNet/DMDNet-style random blur, noise and JPEG it follows.
PRESETS: dict[str, DegradationPreset] = {
    "paper": DegradationPreset("paper"),
    "sr4": DegradationPreset("sr4", sigma_range=(0.1, 3.0), scale_range=(4.0, 4.0),
                             noise_range=(0.0, 15.0), jpeg_range=(40, 80)),
    "sr8": DegradationPreset("sr8", sigma_range=(0.1, 3.0), scale_range=(8.0, 8.0),
                             noise_range=(0.0, 15.0), jpeg_range=(40, 80)),
    "sr16": DegradationPreset("sr16", sigma_range=(0.1, 3.0), scale_range=(16.0, 16.0),
                              noise_range=(0.0, 15.0), jpeg_range=(40, 80)),
    "moderate": DegradationPreset("moderate", sigma_range=(0.1, 3.0), scale_range=(1.0, 4.0),
                                  noise_range=(0.0, 8.0), jpeg_range=(60, 100)),
    "severe": DegradationPreset("severe", sigma_range=(3.0, 12.0), scale_range=(8.0, 16.0),
                                noise_range=(8.0, 20.0), jpeg_range=(20, 50)),
}


def get_preset(preset: str | DegradationPreset, **overrides) -> DegradationPreset:
    """A preset by name (or as given) with any fields replaced, e.g. ``get_preset("sr8", noise_range=(0, 5))``."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown degradation preset {preset!r}; choose one of {', '.join(PRESETS)}")
        preset = PRESETS[preset]
    unknown = set(overrides) - {f.name for f in dataclasses.fields(DegradationPreset)}
    if unknown:
        raise ValueError(f"unknown preset field(s) {sorted(unknown)}")
    fixed = {k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in overrides.items()}
    return dataclasses.replace(preset, **fixed) if fixed else preset


def _check_image(img: np.ndarray) -> None:
    if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3):
        shape = getattr(img, "shape", None)
        raise ValueError(f"expected a uint8 (H, W, 3) RGB array, got {type(img).__name__} "
                         f"dtype={getattr(img, 'dtype', None)} shape={shape}")


# ------------------------------------------------------------------ blur

def gaussian_kernel(kernel_size: int, sigma_x: float, sigma_y: float, theta: float = 0.0) -> np.ndarray:
    """Normalised (an)isotropic Gaussian kernel, float32 (kernel_size, kernel_size), sums to 1.

    sigma_x/sigma_y are the stds (pixels) along the axes rotated by ``theta`` radians.
    """
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    half = kernel_size // 2
    ax = np.arange(-half, half + 1, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)
    c, s = math.cos(theta), math.sin(theta)
    u, v = c * xx + s * yy, -s * xx + c * yy
    sx, sy = max(float(sigma_x), 1e-6), max(float(sigma_y), 1e-6)
    kernel = np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return (kernel / kernel.sum()).astype(np.float32)


def add_blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve float32 (H, W, 3) with ``kernel`` (reflect border); returns float32 of the same range."""
    return cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT_101)


# ------------------------------------------------------------------ resampling

def downsample(img: np.ndarray, scale: float) -> np.ndarray:
    """Bilinear downsampling by ``scale`` (>= 1) to (int(H / scale), int(W / scale)), at least 1 px."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    h, w = img.shape[:2]
    size = (max(1, int(w / scale)), max(1, int(h / scale)))
    if size == (w, h):
        return img
    return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)


def upsample(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize back to ``size`` = (H, W)."""
    h, w = size
    if img.shape[:2] == (h, w):
        return img
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


# ------------------------------------------------------------------ noise

def add_gaussian_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Add per-channel Gaussian noise of std ``sigma`` (0-255 scale) to float32 (H, W, 3) in [0, 255]."""
    if sigma <= 0:
        return img
    return img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma)


# ------------------------------------------------------------------ JPEG

def add_jpeg_compression(img: np.ndarray, quality: int) -> np.ndarray:
    """Really encode and decode as JPEG at ``quality``; uint8 (H, W, 3) RGB in and out."""
    _check_image(img)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV failed to encode JPEG")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


# ------------------------------------------------------------------ eq. 9

def degrade(img: np.ndarray, params: DegradationParams) -> np.ndarray:
    """Apply eq. 9 with fixed ``params``: blur, downsample, noise, JPEG, upsample.

    img: uint8 (H, W, 3) RGB. Returns uint8 (H, W, 3) RGB of the same size. Pure: the noise
    pixels come from ``params.noise_seed``.
    """
    _check_image(img)
    h, w = img.shape[:2]
    x = img.astype(np.float32)
    if max(params.sigma_x, params.sigma_y) > 0:
        x = add_blur(x, gaussian_kernel(params.kernel_size, params.sigma_x, params.sigma_y, params.theta))
    x = downsample(x, params.scale)
    x = add_gaussian_noise(x, params.noise_sigma, np.random.default_rng(params.noise_seed))
    x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    x = add_jpeg_compression(x, params.jpeg_quality)
    x = upsample(x, (h, w))
    return x


def random_degradation_params(preset: str | DegradationPreset, rng: np.random.Generator) -> DegradationParams:
    """Draw one ``DegradationParams`` uniformly from the preset's ranges using ``rng`` only."""
    p = get_preset(preset)
    if rng.random() < p.iso_prob:
        sigma_x = sigma_y = float(rng.uniform(*p.sigma_range))
        theta = 0.0
    else:
        sigma_x, sigma_y = (float(s) for s in rng.uniform(*p.sigma_range, size=2))
        theta = float(rng.uniform(-math.pi, math.pi))
    return DegradationParams(
        kernel_size=p.kernel_size,
        sigma_x=sigma_x,
        sigma_y=sigma_y,
        theta=theta,
        scale=float(rng.uniform(*p.scale_range)),
        noise_sigma=float(rng.uniform(*p.noise_range)),
        noise_seed=int(rng.integers(0, 2**63 - 1)),
        jpeg_quality=int(rng.integers(int(p.jpeg_range[0]), int(p.jpeg_range[1]) + 1)),
    )


def random_degrade(img: np.ndarray, preset: str | DegradationPreset, rng: np.random.Generator) -> np.ndarray:
    """``degrade(img, random_degradation_params(preset, rng))``: uint8 (H, W, 3) RGB in and out."""
    return degrade(img, random_degradation_params(preset, rng))
