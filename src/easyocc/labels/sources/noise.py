"""A noise model that turns exact 2D maps into maps with the errors foundation models make.

Depth (Metric3D-like): a per-image scale error (systematic bias + random), a spatially smooth relative error (so
the error in metres grows with distance), a little per-pixel noise, and depth smeared across discontinuities
("flying pixels" between a foreground object and the background).
Semantics (Grounded-SAM-like): small objects missed (they take the surrounding class, or ignore), whole objects
and blobs of stuff given a plausible wrong class (car<->truck, sidewalk<->driveable surface, ...), and class
boundaries that wander by a few pixels (labels bleed across boundaries).

Everything is deterministic per image: the random stream is seeded from a global seed and the image's relpath.
Spatial parameters are given in pixels of a 1600-px-wide image (nuScenes) and scale with the image width, so the
angular error is the same at any resolution.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields, replace

import cv2
import numpy as np
from scipy import ndimage

from easyocc.occ3d import CLASS_IDS, CLASS_NAMES, IGNORE

#: Image width the pixel-valued parameters refer to.
REFERENCE_WIDTH = 1600

#: Plausible confusions of an open-vocabulary detector, as data: class -> classes it may be mistaken for.
CONFUSIONS: dict[str, tuple[str, ...]] = {
    "car": ("truck",),
    "truck": ("car", "bus", "trailer", "construction_vehicle"),
    "bus": ("truck",),
    "trailer": ("truck",),
    "construction_vehicle": ("truck",),
    "bicycle": ("motorcycle",),
    "motorcycle": ("bicycle",),
    "barrier": ("traffic_cone", "manmade"),
    "traffic_cone": ("barrier",),
    "driveable_surface": ("sidewalk",),
    "sidewalk": ("driveable_surface", "terrain"),
    "other_flat": ("driveable_surface", "sidewalk"),
    "terrain": ("vegetation", "sidewalk"),
    "vegetation": ("terrain",),
}
#: Classes whose connected regions are objects (confused and missed as a whole); the others are stuff.
THING_CLASSES: tuple[int, ...] = tuple(range(CLASS_IDS["driveable_surface"]))


def _check_nonnegative(config, names: tuple[str, ...]) -> None:
    for name in names:
        if not getattr(config, name) >= 0:  # also refuses NaN
            raise ValueError(f"{name} must be >= 0, got {getattr(config, name)}")


@dataclass(frozen=True)
class DepthNoise:
    """Strength of each depth error; all zero = exact depth."""

    #: Systematic relative scale error: depth *= 1 + scale_bias (0.03 = 3 % too far).
    scale_bias: float = 0.0
    #: Standard deviation of a random per-image relative scale error.
    scale_std: float = 0.0
    #: Standard deviation of a spatially smooth relative error (an error in metres proportional to the distance).
    relative_std: float = 0.0
    #: Correlation length of that smooth error, in pixels (of a 1600-px-wide image).
    smooth_px: float = 80.0
    #: Standard deviation of per-pixel relative noise.
    white_std: float = 0.0
    #: Depth is smeared over this many pixels (of a 1600-px-wide image) on each side of a discontinuity.
    edge_px: float = 0.0

    def __post_init__(self):
        _check_nonnegative(self, ("scale_std", "relative_std", "smooth_px", "white_std", "edge_px"))
        if self.scale_bias <= -0.9:
            raise ValueError(f"scale_bias must be > -0.9, got {self.scale_bias}")

    def is_zero(self) -> bool:
        return not (self.scale_bias or self.scale_std or self.relative_std or self.white_std or self.edge_px)


@dataclass(frozen=True)
class SemanticNoise:
    """Strength of each semantic error; all zero = exact semantics."""

    #: Class boundaries move by about this many pixels (std, of a 1600-px-wide image).
    boundary_px: float = 0.0
    #: Correlation length of the boundary displacement along a boundary, in pixels (of a 1600-px-wide image).
    boundary_smooth_px: float = 40.0
    #: Probability that an object takes a confused class; for stuff, the fraction of its area that does.
    confusion_rate: float = 0.0
    #: Probability that a small object (area below ``small_area``) is missed.
    miss_rate: float = 0.0
    #: "Small", as a fraction of the image area.
    small_area: float = 0.001
    #: Share of missed objects that become ignore (no mask covers them); the rest take the surrounding class.
    miss_to_ignore: float = 0.5

    def __post_init__(self):
        _check_nonnegative(self, ("boundary_px", "boundary_smooth_px"))
        for name in ("confusion_rate", "miss_rate", "small_area", "miss_to_ignore"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    def is_zero(self) -> bool:
        return not (self.boundary_px or self.confusion_rate or self.miss_rate)


@dataclass(frozen=True)
class NoiseConfig:
    """Noise of the oracle source: depth and semantic errors plus the global seed."""

    depth: DepthNoise = field(default_factory=DepthNoise)
    semantics: SemanticNoise = field(default_factory=SemanticNoise)
    seed: int = 0

    def scaled(self, factor: float) -> "NoiseConfig":
        """The same noise with every strength (not correlation lengths or size thresholds) times ``factor``;
        probabilities are capped at 1. For sweeps over noise strength."""
        strengths = ("scale_bias", "scale_std", "relative_std", "white_std", "edge_px", "boundary_px",
                     "confusion_rate", "miss_rate")
        probabilities = ("confusion_rate", "miss_rate")

        def scale(cfg):
            changes = {}
            for f in fields(cfg):
                if f.name in strengths:
                    value = getattr(cfg, f.name) * factor
                    changes[f.name] = min(value, 1.0) if f.name in probabilities else value
            return replace(cfg, **changes)

        return replace(self, depth=scale(self.depth), semantics=scale(self.semantics))


#: Named presets. "realistic" gives errors of plausible size for Metric3Dv2 and Grounded-SAM on nuScenes (depth
#: AbsRel about 0.07, boundaries off by a few pixels, a few objects mislabelled, half the small objects missed);
#: they are not fitted to measured errors. "mild" is half as strong, "strong" twice.
NOISE_PRESETS: dict[str, NoiseConfig] = {
    "none": NoiseConfig(),
    "realistic": NoiseConfig(
        depth=DepthNoise(scale_bias=0.02, scale_std=0.05, relative_std=0.06, white_std=0.01, edge_px=3.0),
        semantics=SemanticNoise(boundary_px=3.0, confusion_rate=0.08, miss_rate=0.5),
    ),
}
NOISE_PRESETS["mild"] = NOISE_PRESETS["realistic"].scaled(0.5)
NOISE_PRESETS["strong"] = NOISE_PRESETS["realistic"].scaled(2.0)


def image_rng(seed: int, image_relpath: str, stream: str) -> np.random.Generator:
    """A random generator that depends only on (seed, image, stream): reruns and worker order change nothing."""
    digest = hashlib.sha256(f"{image_relpath}\0{stream}".encode()).digest()
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *np.frombuffer(digest[:16], dtype=np.uint32).tolist()])


def smooth_field(rng: np.random.Generator, height: int, width: int, cell_px: float) -> np.ndarray:
    """(height, width) float32 random field with zero mean and unit std, correlated over about ``cell_px``
    pixels (Gaussian noise on a coarse grid, bicubically upsampled)."""
    cell = max(float(cell_px), 1.0)
    coarse = rng.standard_normal((max(int(np.ceil(height / cell)) + 1, 2), max(int(np.ceil(width / cell)) + 1, 2)))
    fine = cv2.resize(coarse.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    fine -= fine.mean()
    std = fine.std()
    return fine / std if std > 0 else fine


def _pixels(value_px: float, width: int) -> float:
    return value_px * width / REFERENCE_WIDTH


# --- depth -----------------------------------------------------------------------------------------------------


def smear_depth_edges(depth: np.ndarray, radius_px: int, jump: float = 0.1) -> np.ndarray:
    """Replace depth near discontinuities by the local mean, as monocular networks do.

    depth: (H, W) float32, 0 = no depth (never used, never filled). A pixel is near a discontinuity when the
    valid depths within ``radius_px`` differ by more than ``jump`` (relative). Returns a new (H, W) float32.
    """
    if radius_px < 1:
        return depth.copy()
    size = 2 * int(radius_px) + 1
    valid = depth > 0
    window = np.ones((size, size), np.uint8)
    high = cv2.dilate(np.where(valid, depth, 0.0).astype(np.float32), window)  # local max of valid depths
    low = cv2.erode(np.where(valid, depth, np.inf).astype(np.float32), window)  # local min of valid depths
    edge = valid & (high / (1.0 + jump) > low)
    total = cv2.boxFilter(np.where(valid, depth, 0.0).astype(np.float32), -1, (size, size), normalize=False)
    count = cv2.boxFilter(valid.astype(np.float32), -1, (size, size), normalize=False)
    out = depth.copy()
    out[edge] = total[edge] / count[edge]
    return out


def add_depth_noise(depth: np.ndarray, noise: DepthNoise, rng: np.random.Generator) -> np.ndarray:
    """depth: (H, W) float32 metres, 0 = no depth (kept 0). Returns the noisy (H, W) float32, >= 0."""
    if noise.is_zero():
        return depth.copy()
    height, width = depth.shape
    out = smear_depth_edges(depth, int(round(_pixels(noise.edge_px, width))))
    factor = np.full((height, width), (1.0 + noise.scale_bias) * (1.0 + noise.scale_std * rng.standard_normal()),
                     dtype=np.float32)
    if noise.relative_std:
        factor *= 1.0 + noise.relative_std * smooth_field(rng, height, width, _pixels(noise.smooth_px, width))
    if noise.white_std:
        factor *= 1.0 + noise.white_std * rng.standard_normal((height, width), dtype=np.float32)
    # A factor near or below zero would flip the point behind the camera; no network is that wrong.
    return (out * np.maximum(factor, 0.1)).astype(np.float32)


# --- semantics -------------------------------------------------------------------------------------------------


def _surrounding_class(labels: np.ndarray, region: np.ndarray) -> int:
    """Most frequent valid class on the 1-pixel ring around ``region`` (bool, same shape); IGNORE if none."""
    ring = ndimage.binary_dilation(region) & ~region
    values = labels[ring]
    values = values[values != IGNORE]
    return int(np.bincount(values).argmax()) if values.size else IGNORE


def _components(labels: np.ndarray, class_id: int):
    """Connected regions of ``class_id``: yields (slice pair with a 1-pixel margin, region mask in that window)."""
    component_ids, _ = ndimage.label(labels == class_id)
    height, width = labels.shape
    for index, window in enumerate(ndimage.find_objects(component_ids), start=1):
        rows = slice(max(window[0].start - 1, 0), min(window[0].stop + 1, height))
        cols = slice(max(window[1].start - 1, 0), min(window[1].stop + 1, width))
        yield (rows, cols), component_ids[rows, cols] == index


def miss_small_objects(labels: np.ndarray, noise: SemanticNoise, rng: np.random.Generator) -> np.ndarray:
    """Drop small objects: each connected object region smaller than ``small_area`` of the image is missed with
    probability ``miss_rate`` and becomes IGNORE or the class around it. labels: (H, W) uint8 -> new (H, W)."""
    out = labels.copy()
    limit = noise.small_area * labels.size
    for class_id in np.intersect1d(np.unique(labels), THING_CLASSES):
        for window, region in _components(labels, int(class_id)):
            if region.sum() >= limit or rng.random() >= noise.miss_rate:
                continue
            fill = IGNORE if rng.random() < noise.miss_to_ignore else _surrounding_class(out[window], region)
            out[window][region] = fill
    return out


def confuse_classes(labels: np.ndarray, noise: SemanticNoise, rng: np.random.Generator) -> np.ndarray:
    """Swap classes with plausible partners (:data:`CONFUSIONS`): whole objects with probability
    ``confusion_rate``; for stuff, smooth blobs covering about that fraction of the class's area."""
    out = labels.copy()
    height, width = labels.shape
    for class_id in np.unique(labels):
        partners = CONFUSIONS.get(CLASS_NAMES[class_id], ()) if class_id < len(CLASS_NAMES) else ()
        if not partners:
            continue
        if class_id in THING_CLASSES:
            for window, region in _components(labels, int(class_id)):
                if rng.random() < noise.confusion_rate:
                    out[window][region] = CLASS_IDS[partners[rng.integers(len(partners))]]
            continue
        where = labels == class_id
        blobs = smooth_field(rng, height, width, width / 8.0)
        # Threshold the field at the quantile that gives the wanted share of this class's pixels.
        cut = np.quantile(blobs[where], 1.0 - noise.confusion_rate)
        out[where & (blobs > cut)] = CLASS_IDS[partners[rng.integers(len(partners))]]
    return out


def displace_boundaries(labels: np.ndarray, noise: SemanticNoise, rng: np.random.Generator) -> np.ndarray:
    """Resample labels through a smooth random displacement of about ``boundary_px`` pixels: far from a boundary
    nothing changes, near one the labels bleed a few pixels across it, by an amount that varies along it."""
    height, width = labels.shape
    sigma = _pixels(noise.boundary_px, width)
    cell = _pixels(noise.boundary_smooth_px, width)
    rows = np.arange(height, dtype=np.float32)[:, None] + sigma * smooth_field(rng, height, width, cell)
    cols = np.arange(width, dtype=np.float32)[None, :] + sigma * smooth_field(rng, height, width, cell)
    rows = np.clip(np.rint(rows), 0, height - 1).astype(np.intp)
    cols = np.clip(np.rint(cols), 0, width - 1).astype(np.intp)
    return labels[rows, cols]


def add_semantic_noise(labels: np.ndarray, noise: SemanticNoise, rng: np.random.Generator) -> np.ndarray:
    """labels: (H, W) uint8 Occ3D ids (17 sky, 255 ignore). Returns the noisy (H, W) uint8: misses first (on the
    exact objects), then confusions, then boundary displacement (which moves the sky edge too)."""
    out = labels
    if noise.miss_rate:
        out = miss_small_objects(out, noise, rng)
    if noise.confusion_rate:
        out = confuse_classes(out, noise, rng)
    if noise.boundary_px:
        out = displace_boundaries(out, noise, rng)
    return out.copy() if out is labels else out

