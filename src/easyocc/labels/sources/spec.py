"""Which 2D sources to build, as plain data: ``SourceSpec``.

A spec names the semantic and the depth source and holds every source's settings (the fields are the
``easyocc labels`` options, ``--oracle-noise`` -> ``oracle_noise``). It is a frozen dataclass of strings and
numbers: it reads from YAML (the training config's ``sources:`` section), pickles to worker processes, and builds
the sources through the registry (``registry.SEMANTIC_SOURCES`` / ``DEPTH_SOURCES``) wherever it is needed.

>>> spec = SourceSpec(semantics="oracle", depth="oracle", oracle_noise="realistic")
>>> semantics, depth = spec.build("data/simscenes")          # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from easyocc.errors import EasyOccError
from easyocc.labels.sources.base import DepthSource, SemanticSource
from easyocc.labels.sources.registry import DEPTH_SOURCES, SEMANTIC_SOURCES, cached


@dataclass(frozen=True)
class SourceSpec:
    """The 2D sources by name and their settings (defaults: the ``easyocc labels`` options' defaults)."""

    #: Semantic source: grounded-sam, oracle, occnerf, npy.
    semantics: str = "oracle"
    #: Depth source: metric3d, depth-anything, oracle, npy.
    depth: str = "oracle"
    #: Torch device of the foundation models: auto (cuda when present), cpu, cuda, cuda:1.
    device: str = "auto"
    #: Cache the 2D maps here (keyed by each source's settings; the same folder ``easyocc labels`` can use).
    cache_dir: str | None = None
    # grounded-sam
    grounded_sam_dir: str | None = None
    sam_dir: str | None = None
    prompts: str | None = None
    box_threshold: float = 0.2
    text_threshold: float = 0.2
    prompt_batch: int = 8
    sam_batch: int = 32
    # metric3d, depth-anything
    metric3d_repo: str | None = None
    metric3d_checkpoint: str | None = None
    metric3d_model: str = "metric3d_vit_giant2"
    metric3d_trust_checkpoint: bool = False
    depth_anything_dir: str | None = None
    # maps on disk
    depth_dir: str | None = None
    semantics_dir: str | None = None
    occnerf_dir: str | None = None
    # oracle (SimScenes): a noise preset, single values overriding it (None: the preset's), the noise seed
    oracle_noise: str = "none"
    oracle_depth_bias: float | None = None
    oracle_depth_scale_std: float | None = None
    oracle_depth_noise: float | None = None
    oracle_depth_edge_px: float | None = None
    oracle_boundary_px: float | None = None
    oracle_confusion: float | None = None
    oracle_miss: float | None = None
    oracle_seed: int | None = None

    def __post_init__(self):
        from easyocc.labels.sources.noise import NOISE_PRESETS

        for kind, name, table in (("semantic", self.semantics, SEMANTIC_SOURCES), ("depth", self.depth, DEPTH_SOURCES)):
            if name not in table:
                raise ValueError(f"unknown {kind} source '{name}' (known: {', '.join(table)})")
        if self.oracle_noise not in NOISE_PRESETS:
            raise ValueError(f"unknown oracle noise preset '{self.oracle_noise}' (known: {', '.join(NOISE_PRESETS)})")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "SourceSpec":
        """The spec of parsed ``add_source_arguments`` options (paths become strings); one-line errors."""
        values = {}
        for field in dataclasses.fields(cls):
            value = getattr(args, field.name, None)
            if value is not None:  # None: not given (an optional source not named included), the field's default
                values[field.name] = str(value) if isinstance(value, Path) else value
        try:
            return cls(**values)
        except ValueError as exc:
            raise EasyOccError(str(exc)) from None

    def semantic_source(self, dataroot: str | Path) -> SemanticSource:
        """The semantic source (cached when ``cache_dir`` is set) for images under ``dataroot``."""
        source = SEMANTIC_SOURCES[self.semantics].build(self, Path(dataroot))
        return source if self.cache_dir is None else cached(source, self.cache_dir)

    def depth_source(self, dataroot: str | Path) -> DepthSource:
        """The depth source (cached when ``cache_dir`` is set) for images under ``dataroot``."""
        source = DEPTH_SOURCES[self.depth].build(self, Path(dataroot))
        return source if self.cache_dir is None else cached(source, self.cache_dir)

    def build(self, dataroot: str | Path) -> tuple[SemanticSource, DepthSource]:
        """(semantic source, depth source)."""
        return self.semantic_source(dataroot), self.depth_source(dataroot)
