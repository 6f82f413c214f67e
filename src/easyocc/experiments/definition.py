"""An experiment: one SimScenes world, named label sets, and named training variants, as a typed YAML file.

>>> from easyocc.config import config_from_dict
>>> experiment = config_from_dict(ExperimentConfig, {
...     "label_sets": {"past3": {"frames": 3}},
...     "variants": {"a": {"labels": "past3"}, "b": {"labels": "past3", "overrides": ["loss.region=all"]}}})
>>> experiment.reference_variant, experiment.label_sets["past3"].frames, experiment.variants["b"].overrides
('a', 3, ['loss.region=all'])

``load_experiment(path, overrides)`` reads a file (or a shipped experiment's name) with ``--set`` overrides and
checks everything a run needs before it starts: every variant's training config resolves and loads with its
overrides, every label set a variant names exists; each problem is a one-line error naming the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Literal

from easyocc.config import BUILTIN_CONFIG_DIR, load_config, resolve_config_path
from easyocc.errors import InputError
from easyocc.experiments.stages import DEFAULT_MASKS, VERSION
from easyocc.labels.config import LabelConfig

#: The experiments shipped with the package (``configs/experiments/`` in the repository): ``--experiment NAME``.
BUILTIN_EXPERIMENT_DIR = BUILTIN_CONFIG_DIR / "experiments"
#: Variant and label-set names become folder names.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
Mask = Literal["camera", "none", "lidar", "camera+lidar"]
Noise = Literal["none", "mild", "realistic", "strong"]
Sweeps = Literal["none", "neighbours", "all"]


@dataclass
class WorldConfig:
    """The SimScenes world every variant trains on (its train scenes) and is scored on (its val scenes, exact GT)."""

    scenes: int = 6
    keyframes: int = 13
    #: Camera images (width, height).
    image_size: tuple[int, int] = (320, 180)
    seed: int = 0
    #: Camera sweeps (``easyocc synth --sweeps``): none for models trained on keyframes alone (EasyOcc),
    #: neighbours for the rendering model's photometric loss (the images just before and after each keyframe).
    sweeps: Sweeps = "none"

    def __post_init__(self):
        if self.scenes < 2:
            raise ValueError(f"scenes must be at least 2 (got {self.scenes}): variants train on the train scenes "
                             "and are scored on the val scenes")

    def synth_config(self):
        """The SynthConfig of this world; impossible values raise ValueError."""
        from easyocc.data.synthetic.generate import SynthConfig

        config = SynthConfig(scenes=self.scenes, keyframes=self.keyframes, image_size=tuple(self.image_size),
                             seed=self.seed, sweeps=self.sweeps, version=VERSION)  # checks its values
        return config


@dataclass
class SourcesConfig:
    """The 2D sources of every label set: SimScenes' exact semantics and depth spoiled with the errors of a preset
    (``realistic``: foundation-model-like; see ``easyocc labels --oracle-noise``)."""

    noise: Noise = "realistic"


@dataclass
class TrainingDefaults:
    """What every variant starts from."""

    #: A training config: a shipped name (demo, paper) or a YAML file (relative to the experiment file's folder).
    config: str = "demo"
    #: Epochs of every variant (null: the config's own).
    epochs: int | None = None
    #: ``key=value`` overrides applied to every variant before its own.
    overrides: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be at least 1 (got {self.epochs})")


@dataclass
class VariantConfig:
    """One row of the comparison: a training config with overrides, trained on one label set."""

    description: str = ""
    #: The training config (null: ``training.config``).
    config: str | None = None
    #: ``key=value`` overrides of the training config, after ``training.overrides`` (``loss.region=all``).
    overrides: list[str] = field(default_factory=list)
    #: The label set it trains on (a name in ``label_sets``).
    labels: str = "default"
    #: The masks its predictions are scored with (null: ``scoring.masks``).
    masks: list[Mask] | None = None


@dataclass
class ScoringConfig:
    #: mIoU, mIoU_15, IoU and per-class IoU under each of these masks; RayIoU (no mask) with the first.
    masks: list[Mask] = field(default_factory=lambda: list(DEFAULT_MASKS))

    def __post_init__(self):
        if not self.masks or len(set(self.masks)) != len(self.masks):
            raise ValueError(f"masks must be a non-empty list without repeats (got {self.masks})")


@dataclass
class ExperimentConfig:
    description: str = ""
    world: WorldConfig = field(default_factory=WorldConfig)
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    #: name -> label settings (``easyocc labels`` options: frames, min_points, carve, ...); each set is labelled
    #: once, into its own folder.
    label_sets: dict[str, LabelConfig] = field(default_factory=lambda: {"default": LabelConfig()})
    training: TrainingDefaults = field(default_factory=TrainingDefaults)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    #: name -> variant, in the order of the report.
    variants: dict[str, VariantConfig] = field(default_factory=dict)
    #: The variant the cost ratios are measured against (null: the first).
    reference: str | None = None

    def __post_init__(self):
        if not self.variants:
            raise ValueError("variants: an experiment needs at least one variant")
        for kind, names in (("variant", self.variants), ("label set", self.label_sets)):
            for name in names:
                if not NAME_PATTERN.fullmatch(name):
                    raise ValueError(f"{kind} name '{name}' is not a folder name (letters, digits, _ . + -)")
        for name, variant in self.variants.items():
            if variant.labels not in self.label_sets:
                raise ValueError(f"variant '{name}': unknown label set '{variant.labels}' (label sets: "
                                 f"{', '.join(self.label_sets) or 'none'})")
            if variant.masks is not None and (not variant.masks or len(set(variant.masks)) != len(variant.masks)):
                raise ValueError(f"variant '{name}': masks must be a non-empty list without repeats")
        if self.reference is not None and self.reference not in self.variants:
            raise ValueError(f"reference: unknown variant '{self.reference}' (variants: {', '.join(self.variants)})")

    @property
    def reference_variant(self) -> str:
        return self.reference or next(iter(self.variants))

    def masks_of(self, variant: str) -> list[str]:
        return list(self.variants[variant].masks or self.scoring.masks)

    def used_label_sets(self) -> list[str]:
        """The label sets some variant trains on, in the order of ``label_sets``."""
        used = {v.labels for v in self.variants.values()}
        return [name for name in self.label_sets if name in used]


@dataclass(frozen=True)
class Experiment:
    """A loaded experiment: its definition, where it came from, and each variant's resolved training config."""

    name: str
    path: Path
    config: ExperimentConfig
    #: variant name -> TrainConfig (``training`` defaults, the variant's config and overrides, the world's version).
    training: dict


def variant_overrides(config: ExperimentConfig, name: str) -> list[str]:
    """Every override of variant ``name``'s training config, in the order they apply."""
    epochs = [] if config.training.epochs is None else [f"optim.epochs={config.training.epochs}"]
    return [*config.training.overrides, *epochs, *config.variants[name].overrides,
            f"data.version={VERSION}", "data.split=train"]


def resolve_training_config(value: str, base_dir: Path) -> Path:
    """A variant's training config: a file relative to the experiment's folder, else a path or a shipped name."""
    candidate = base_dir / value
    if not Path(value).is_absolute() and candidate.is_file():
        return candidate
    return resolve_config_path(value)


def load_experiment(value: str | PathLike, overrides: list[str] = ()) -> Experiment:
    """Read an experiment file (or a shipped experiment's name) with ``key=value`` overrides, and resolve every
    variant's training config. Any problem is an InputError naming the file and the key or variant."""
    from easyocc.training.config import TrainConfig

    path = resolve_config_path(value, BUILTIN_EXPERIMENT_DIR, "experiment")
    config = load_config(ExperimentConfig, path, list(overrides))
    try:
        config.world.synth_config()
    except ValueError as exc:
        raise InputError(path, f"world: {exc}") from None
    training = {}
    for name, variant in config.variants.items():
        source = variant.config or config.training.config
        try:
            config_path = resolve_training_config(source, path.parent)
        except InputError as exc:
            raise InputError(path, f"variant '{name}': training config '{source}': {exc.problem}") from None
        try:
            training[name] = load_config(TrainConfig, config_path, variant_overrides(config, name))
        except InputError as exc:
            where = exc.problem if exc.path == "--set" else str(exc)
            raise InputError(path, f"variant '{name}': {where}") from None
        problem = sources_mismatch(config, training[name])
        if problem:
            raise InputError(path, f"variant '{name}': {problem}")
    return Experiment(name=path.stem, path=path, config=config, training=training)


def sources_mismatch(config: ExperimentConfig, training) -> str | None:
    """What keeps a variant that reads 2D maps from training on this world like the others, or None: a rendering
    variant (a training config with a ``render`` section) warps the keyframe images into their camera sweeps, so the
    world needs them; its 2D maps, and those of a variant with ray queries (``loss.ray_queries``), must come from
    the same noisy oracle as the experiment's labels."""
    rendering = getattr(training, "render", None) is not None
    if not (rendering or getattr(training, "uses_ray_queries", False)):
        return None
    if rendering and config.world.sweeps == "none":
        return "a rendering model warps into camera sweeps: set world.sweeps to neighbours (or all)"
    sources = training.sources
    if "oracle" in (sources.semantics, sources.depth) and sources.oracle_noise != config.sources.noise:
        return (f"its 2D sources' oracle noise '{sources.oracle_noise}' is not the experiment's "
                f"'{config.sources.noise}' (sources.noise); set sources.oracle_noise={config.sources.noise}")
    return None
