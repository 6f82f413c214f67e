"""Choosing 2D sources by name: the registry of source builders, and the command-line options
(``add_source_arguments``, ``sources_from_args``).

Every builder takes a :class:`~.spec.SourceSpec` (the sources' names and settings as plain data) and the dataroot;
``sources_from_args`` turns parsed options into a spec and builds through it. Source modules are imported only when
their source is built, so adding the arguments stays cheap. For library use, build a ``SourceSpec`` or construct
the source classes directly (``OracleSemantics(dataroot, noise)``, ``CachedDepth(source, dir)``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from easyocc.errors import EasyOccError, InputError
from easyocc.labels.sources.base import DepthSource, SemanticSource

if TYPE_CHECKING:
    from easyocc.labels.sources.spec import SourceSpec


@dataclass(frozen=True)
class SourceEntry:
    """A source name: what it is, and how to build it from a spec (and the dataroot)."""

    help: str
    build: Callable[["SourceSpec", Path], object]


# --- oracle ----------------------------------------------------------------------------------------------------

#: Oracle noise flags: argparse dest (= SourceSpec field) -> (part of NoiseConfig, field, help).
ORACLE_NOISE_FLAGS: dict[str, tuple[str, str, str]] = {
    "oracle_depth_bias": ("depth", "scale_bias", "systematic relative depth scale error (0.03 = 3%% too far)"),
    "oracle_depth_scale_std": ("depth", "scale_std", "std of a random per-image relative depth scale error"),
    "oracle_depth_noise": ("depth", "relative_std", "std of the spatially smooth relative depth error"),
    "oracle_depth_edge_px": ("depth", "edge_px", "depth smeared over this many pixels at discontinuities"),
    "oracle_boundary_px": ("semantics", "boundary_px", "class boundaries move by about this many pixels"),
    "oracle_confusion": ("semantics", "confusion_rate", "probability of a plausible wrong class per object"),
    "oracle_miss": ("semantics", "miss_rate", "probability that a small object is missed"),
}


def oracle_noise(spec: "SourceSpec"):
    """The :class:`~.noise.NoiseConfig` of ``spec.oracle_noise`` (a preset) with the single values applied."""
    from easyocc.labels.sources.noise import NOISE_PRESETS

    preset = spec.oracle_noise
    if preset not in NOISE_PRESETS:
        raise EasyOccError(f"unknown --oracle-noise preset '{preset}' (known: {', '.join(NOISE_PRESETS)})")
    noise = NOISE_PRESETS[preset]
    try:
        for dest, (part, name, _) in ORACLE_NOISE_FLAGS.items():
            value = getattr(spec, dest)
            if value is not None:
                noise = replace(noise, **{part: replace(getattr(noise, part), **{name: value})})
        seed = spec.oracle_seed
        return noise if seed is None else replace(noise, seed=seed)
    except ValueError as exc:
        raise EasyOccError(f"oracle noise: {exc}") from None


def _oracle_semantics(spec: "SourceSpec", dataroot: Path) -> SemanticSource:
    from easyocc.labels.sources.oracle import OracleSemantics

    noise = oracle_noise(spec)
    return OracleSemantics(dataroot, noise.semantics, noise.seed)


def _oracle_depth(spec: "SourceSpec", dataroot: Path) -> DepthSource:
    from easyocc.labels.sources.oracle import OracleDepth

    noise = oracle_noise(spec)
    return OracleDepth(dataroot, noise.depth, noise.seed)


# --- foundation models -----------------------------------------------------------------------------------------


def _grounded_sam(spec: "SourceSpec", dataroot: Path) -> SemanticSource:
    from easyocc.labels.sources.grounded_sam import GroundedSamConfig, GroundedSamSemantics

    config = GroundedSamConfig(
        grounding_dino_dir=require_path(spec.grounded_sam_dir, "--grounded-sam-dir",
                                        "GroundingDINO model folder", "grounded-sam"),
        sam_dir=require_path(spec.sam_dir, "--sam-dir", "SAM model folder", "grounded-sam"),
        prompts=spec.prompts, box_threshold=spec.box_threshold, text_threshold=spec.text_threshold,
        device=spec.device, prompt_batch=spec.prompt_batch, sam_batch=spec.sam_batch,
    )
    try:
        return GroundedSamSemantics(config)
    except ValueError as exc:
        raise EasyOccError(f"grounded-sam: {exc}") from None


def _metric3d(spec: "SourceSpec", dataroot: Path) -> DepthSource:
    from easyocc.labels.sources.metric3d import Metric3DConfig, Metric3DDepth

    return Metric3DDepth(Metric3DConfig(
        repo_dir=require_path(spec.metric3d_repo, "--metric3d-repo", "Metric3D repository clone", "metric3d"),
        checkpoint=require_path(spec.metric3d_checkpoint, "--metric3d-checkpoint", "Metric3D checkpoint",
                                "metric3d"),
        model_name=spec.metric3d_model, device=spec.device, trust_checkpoint=spec.metric3d_trust_checkpoint,
    ))


def _depth_anything(spec: "SourceSpec", dataroot: Path) -> DepthSource:
    from easyocc.labels.sources.depth_anything import DepthAnythingConfig, DepthAnythingDepth

    return DepthAnythingDepth(DepthAnythingConfig(
        require_path(spec.depth_anything_dir, "--depth-anything-dir", "Depth Anything model folder",
                     "depth-anything"),
        device=spec.device,
    ))


# --- maps on disk ---------------------------------------------------------------------------------------------


def _npy_semantics(spec: "SourceSpec", dataroot: Path) -> SemanticSource:
    from easyocc.labels.sources.precomputed import PrecomputedSemantics

    return PrecomputedSemantics(require_path(spec.semantics_dir, "--semantics-dir", "precomputed semantic maps", "npy"))


def _npy_depth(spec: "SourceSpec", dataroot: Path) -> DepthSource:
    from easyocc.labels.sources.precomputed import PrecomputedDepth

    return PrecomputedDepth(require_path(spec.depth_dir, "--depth-dir", "precomputed depth maps", "npy"))


def _occnerf_semantics(spec: "SourceSpec", dataroot: Path) -> SemanticSource:
    from easyocc.labels.sources.occnerf import OccNeRFSemantics

    return OccNeRFSemantics(require_path(spec.occnerf_dir, "--occnerf-dir", "OccNeRF's nuscenes_semantic folder",
                                         "occnerf"))


# --- the registry ----------------------------------------------------------------------------------------------

SEMANTIC_SOURCES: dict[str, SourceEntry] = {
    "grounded-sam": SourceEntry("GroundingDINO + SAM from local folders (--grounded-sam-dir, --sam-dir)",
                                _grounded_sam),
    "oracle": SourceEntry("SimScenes' exact semantics, optionally noisy (--oracle-noise)", _oracle_semantics),
    "occnerf": SourceEntry("OccNeRF's released Grounded-SAM labels (--occnerf-dir)", _occnerf_semantics),
    "npy": SourceEntry("precomputed semantic maps (--semantics-dir)", _npy_semantics),
}
DEPTH_SOURCES: dict[str, SourceEntry] = {
    "metric3d": SourceEntry("Metric3Dv2 from a local repo clone and checkpoint (--metric3d-repo, "
                            "--metric3d-checkpoint)", _metric3d),
    "depth-anything": SourceEntry("Depth Anything V2 metric from a local folder (--depth-anything-dir)",
                                  _depth_anything),
    "oracle": SourceEntry("SimScenes' exact depth, optionally noisy (--oracle-noise)", _oracle_depth),
    "npy": SourceEntry("precomputed depth maps (--depth-dir)", _npy_depth),
}


def require_path(value: str | Path | None, flag: str, what: str, source: str) -> Path:
    """The path given with ``flag``: an error naming the flag when absent, naming the path when it does not
    exist."""
    if value is None or str(value) == "":
        key = flag.removeprefix("--").replace("-", "_")
        raise EasyOccError(f"the {source} source needs {flag} ({what}; in a training config: sources.{key})")
    path = Path(value).expanduser()
    if not path.exists():
        raise InputError(path, f"{what} not found ({flag})")
    return path


def _names(table: dict[str, SourceEntry]) -> str:
    return ", ".join(table)


def add_source_arguments(
    parser: argparse.ArgumentParser, default_semantics: str | None = "oracle", default_depth: str | None = "oracle"
) -> None:
    """Add the 2D-source options to ``parser``: source names, each source's options, --device, --cache-dir.
    A default of None makes that source optional (none unless named)."""
    from easyocc.labels.sources.noise import NOISE_PRESETS
    from easyocc.labels.sources.spec import SourceSpec

    spec = SourceSpec()  # the options' defaults
    group = parser.add_argument_group("2D sources")
    group.add_argument("--semantics", default=default_semantics, metavar="NAME",
                       help=f"semantic source: {_names(SEMANTIC_SOURCES)} (default: {default_semantics or 'none'})")
    group.add_argument("--depth", default=default_depth, metavar="NAME",
                       help=f"depth source: {_names(DEPTH_SOURCES)} (default: {default_depth or 'none'})")
    group.add_argument("--device", default=spec.device,
                       help="torch device of the foundation models: auto (cuda when present), cpu, cuda, cuda:1, ...")
    group.add_argument("--cache-dir", type=Path, default=None,
                       help="cache 2D maps here, keyed by the source's settings, so reruns skip the models")

    gsam = parser.add_argument_group("grounded-sam (semantics)")
    gsam.add_argument("--grounded-sam-dir", type=Path, default=None,
                      help="GroundingDINO folder (save_pretrained layout), e.g. IDEA-Research/grounding-dino-base")
    gsam.add_argument("--sam-dir", type=Path, default=None, help="SAM folder, e.g. facebook/sam-vit-huge")
    gsam.add_argument("--prompts", type=Path, default=None,
                      help="YAML/JSON prompt table {groups: [{phrase: class}, ...]} (default: OccNeRF's prompts)")
    gsam.add_argument("--box-threshold", type=float, default=spec.box_threshold,
                      help=f"keep boxes scoring above this ({spec.box_threshold})")
    gsam.add_argument("--text-threshold", type=float, default=spec.text_threshold,
                      help=f"keep a box only if its phrase's mean token score is above this ({spec.text_threshold})")
    gsam.add_argument("--prompt-batch", type=int, default=spec.prompt_batch,
                      help=f"prompt groups per GroundingDINO forward ({spec.prompt_batch})")
    gsam.add_argument("--sam-batch", type=int, default=spec.sam_batch,
                      help=f"boxes per SAM mask-decoder call ({spec.sam_batch})")

    m3d = parser.add_argument_group("metric3d (depth)")
    m3d.add_argument("--metric3d-repo", type=Path, default=None,
                     help="local clone of github.com/YvanYin/Metric3D (its hubconf.py is loaded)")
    m3d.add_argument("--metric3d-checkpoint", type=Path, default=None,
                     help="checkpoint file, e.g. metric_depth_vit_giant2_800k.pth")
    m3d.add_argument("--metric3d-model", default=spec.metric3d_model,
                     help=f"hubconf entry point matching the checkpoint (default {spec.metric3d_model})")
    m3d.add_argument("--metric3d-trust-checkpoint", action="store_true",
                     help="allow a checkpoint that torch.load(weights_only=True) refuses (it may run code)")

    dany = parser.add_argument_group("depth-anything (depth)")
    dany.add_argument("--depth-anything-dir", type=Path, default=None,
                      help="folder of a metric model, e.g. depth-anything/Depth-Anything-V2-Metric-Outdoor-Large-hf")

    disk = parser.add_argument_group("maps on disk (npy, occnerf)")
    disk.add_argument("--depth-dir", type=Path, default=None,
                      help="npy depth: <dir>/<image relpath>.npy (float metres) or .png (16-bit millimetres)")
    disk.add_argument("--semantics-dir", type=Path, default=None,
                      help="npy semantics: <dir>/<image relpath>.png (8-bit Occ3D ids) or .npy")
    disk.add_argument("--occnerf-dir", type=Path, default=None,
                      help="occnerf: OccNeRF's nuscenes_semantic folder (samples/CAM_*/<image>_mask.bin)")

    oracle = parser.add_argument_group("oracle (SimScenes' exact maps)")
    oracle.add_argument("--oracle-noise", default=spec.oracle_noise, choices=tuple(NOISE_PRESETS),
                        help="noise preset mimicking foundation-model errors (default: none = exact)")
    for dest, (_, _, help_text) in ORACLE_NOISE_FLAGS.items():
        oracle.add_argument("--" + dest.replace("_", "-"), dest=dest, type=float, default=None, metavar="X",
                            help=help_text + " (overrides the preset)")
    oracle.add_argument("--oracle-seed", type=int, default=None, help="global seed of the noise (default 0)")


def cached(source, cache_dir: str | Path):
    """``source`` with its maps cached under ``cache_dir`` (``CachedSemantics`` or ``CachedDepth``)."""
    from easyocc.labels.sources.cache import CachedDepth, CachedSemantics

    return CachedSemantics(source, cache_dir) if isinstance(source, SemanticSource) else CachedDepth(source, cache_dir)


def semantic_source_from_args(args: argparse.Namespace, dataroot: str | Path) -> SemanticSource | None:
    """The semantic source ``--semantics`` names (cached with --cache-dir); None when no source is named."""
    from easyocc.labels.sources.spec import SourceSpec

    return None if args.semantics is None else SourceSpec.from_args(args).semantic_source(dataroot)


def depth_source_from_args(args: argparse.Namespace, dataroot: str | Path) -> DepthSource | None:
    """The depth source ``--depth`` names (cached with --cache-dir); None when no source is named."""
    from easyocc.labels.sources.spec import SourceSpec

    return None if args.depth is None else SourceSpec.from_args(args).depth_source(dataroot)


def sources_from_args(args: argparse.Namespace, dataroot: str | Path) -> tuple[SemanticSource, DepthSource]:
    """The (semantic, depth) sources the parsed arguments name, cached when --cache-dir is given."""
    return semantic_source_from_args(args, dataroot), depth_source_from_args(args, dataroot)
