"""Choosing 2D sources by name on the command line: ``add_source_arguments`` and ``sources_from_args``.

Source modules are imported only when their source is built, so adding the arguments stays cheap. For library
use, construct the source classes directly (``OracleSemantics(dataroot, noise)``, ``CachedDepth(source, dir)``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from easyocc.errors import EasyOccError, InputError
from easyocc.labels.sources.base import DepthSource, SemanticSource


@dataclass(frozen=True)
class SourceEntry:
    """A source name on the command line: what it is, and how to build it from the parsed arguments."""

    help: str
    build: Callable[[argparse.Namespace, Path], object]


# --- oracle ----------------------------------------------------------------------------------------------------

#: Oracle noise flags: argparse dest -> (part of NoiseConfig, field, help).
ORACLE_NOISE_FLAGS: dict[str, tuple[str, str, str]] = {
    "oracle_depth_bias": ("depth", "scale_bias", "systematic relative depth scale error (0.03 = 3%% too far)"),
    "oracle_depth_scale_std": ("depth", "scale_std", "std of a random per-image relative depth scale error"),
    "oracle_depth_noise": ("depth", "relative_std", "std of the spatially smooth relative depth error"),
    "oracle_depth_edge_px": ("depth", "edge_px", "depth smeared over this many pixels at discontinuities"),
    "oracle_boundary_px": ("semantics", "boundary_px", "class boundaries move by about this many pixels"),
    "oracle_confusion": ("semantics", "confusion_rate", "probability of a plausible wrong class per object"),
    "oracle_miss": ("semantics", "miss_rate", "probability that a small object is missed"),
}


def oracle_noise_from_args(args: argparse.Namespace):
    """The :class:`~.noise.NoiseConfig` of ``--oracle-noise PRESET`` with the single-value flags applied."""
    from easyocc.labels.sources.noise import NOISE_PRESETS

    preset = getattr(args, "oracle_noise", "none")
    if preset not in NOISE_PRESETS:
        raise EasyOccError(f"unknown --oracle-noise preset '{preset}' (known: {', '.join(NOISE_PRESETS)})")
    noise = NOISE_PRESETS[preset]
    try:
        for dest, (part, name, _) in ORACLE_NOISE_FLAGS.items():
            value = getattr(args, dest, None)
            if value is not None:
                noise = replace(noise, **{part: replace(getattr(noise, part), **{name: value})})
        seed = getattr(args, "oracle_seed", None)
        return noise if seed is None else replace(noise, seed=seed)
    except ValueError as exc:
        raise EasyOccError(f"oracle noise: {exc}") from None


def _oracle_semantics(args: argparse.Namespace, dataroot: Path) -> SemanticSource:
    from easyocc.labels.sources.oracle import OracleSemantics

    noise = oracle_noise_from_args(args)
    return OracleSemantics(dataroot, noise.semantics, noise.seed)


def _oracle_depth(args: argparse.Namespace, dataroot: Path) -> DepthSource:
    from easyocc.labels.sources.oracle import OracleDepth

    noise = oracle_noise_from_args(args)
    return OracleDepth(dataroot, noise.depth, noise.seed)


# --- foundation models -----------------------------------------------------------------------------------------


def _grounded_sam(args: argparse.Namespace, dataroot: Path) -> SemanticSource:
    from easyocc.labels.sources.grounded_sam import GroundedSamConfig, GroundedSamSemantics

    config = GroundedSamConfig(
        grounding_dino_dir=require_path(args.grounded_sam_dir, "--grounded-sam-dir",
                                        "GroundingDINO model folder", "grounded-sam"),
        sam_dir=require_path(args.sam_dir, "--sam-dir", "SAM model folder", "grounded-sam"),
        prompts=args.prompts, box_threshold=args.box_threshold, text_threshold=args.text_threshold,
        device=args.device, prompt_batch=args.prompt_batch, sam_batch=args.sam_batch,
    )
    try:
        return GroundedSamSemantics(config)
    except ValueError as exc:
        raise EasyOccError(f"grounded-sam: {exc}") from None


def _metric3d(args: argparse.Namespace, dataroot: Path) -> DepthSource:
    from easyocc.labels.sources.metric3d import Metric3DConfig, Metric3DDepth

    return Metric3DDepth(Metric3DConfig(
        repo_dir=require_path(args.metric3d_repo, "--metric3d-repo", "Metric3D repository clone", "metric3d"),
        checkpoint=require_path(args.metric3d_checkpoint, "--metric3d-checkpoint", "Metric3D checkpoint",
                                "metric3d"),
        model_name=args.metric3d_model, device=args.device, trust_checkpoint=args.metric3d_trust_checkpoint,
    ))


def _depth_anything(args: argparse.Namespace, dataroot: Path) -> DepthSource:
    from easyocc.labels.sources.depth_anything import DepthAnythingConfig, DepthAnythingDepth

    return DepthAnythingDepth(DepthAnythingConfig(
        require_path(args.depth_anything_dir, "--depth-anything-dir", "Depth Anything model folder",
                     "depth-anything"),
        device=args.device,
    ))


# --- maps on disk ---------------------------------------------------------------------------------------------


def _npy_semantics(args: argparse.Namespace, dataroot: Path) -> SemanticSource:
    from easyocc.labels.sources.precomputed import PrecomputedSemantics

    return PrecomputedSemantics(require_path(args.semantics_dir, "--semantics-dir", "precomputed semantic maps", "npy"))


def _npy_depth(args: argparse.Namespace, dataroot: Path) -> DepthSource:
    from easyocc.labels.sources.precomputed import PrecomputedDepth

    return PrecomputedDepth(require_path(args.depth_dir, "--depth-dir", "precomputed depth maps", "npy"))


def _occnerf_semantics(args: argparse.Namespace, dataroot: Path) -> SemanticSource:
    from easyocc.labels.sources.occnerf import OccNeRFSemantics

    return OccNeRFSemantics(require_path(args.occnerf_dir, "--occnerf-dir", "OccNeRF's nuscenes_semantic folder",
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
        raise EasyOccError(f"the {source} source needs {flag} ({what})")
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

    group = parser.add_argument_group("2D sources")
    group.add_argument("--semantics", default=default_semantics, metavar="NAME",
                       help=f"semantic source: {_names(SEMANTIC_SOURCES)} (default: {default_semantics or 'none'})")
    group.add_argument("--depth", default=default_depth, metavar="NAME",
                       help=f"depth source: {_names(DEPTH_SOURCES)} (default: {default_depth or 'none'})")
    group.add_argument("--device", default="auto",
                       help="torch device of the foundation models: auto (cuda when present), cpu, cuda, cuda:1, ...")
    group.add_argument("--cache-dir", type=Path, default=None,
                       help="cache 2D maps here, keyed by the source's settings, so reruns skip the models")

    gsam = parser.add_argument_group("grounded-sam (semantics)")
    gsam.add_argument("--grounded-sam-dir", type=Path, default=None,
                      help="GroundingDINO folder (save_pretrained layout), e.g. IDEA-Research/grounding-dino-base")
    gsam.add_argument("--sam-dir", type=Path, default=None, help="SAM folder, e.g. facebook/sam-vit-huge")
    gsam.add_argument("--prompts", type=Path, default=None,
                      help="YAML/JSON prompt table {groups: [{phrase: class}, ...]} (default: OccNeRF's prompts)")
    gsam.add_argument("--box-threshold", type=float, default=0.2, help="keep boxes scoring above this (0.2)")
    gsam.add_argument("--text-threshold", type=float, default=0.2,
                      help="keep a box only if its phrase's mean token score is above this (0.2)")
    gsam.add_argument("--prompt-batch", type=int, default=8, help="prompt groups per GroundingDINO forward (8)")
    gsam.add_argument("--sam-batch", type=int, default=32, help="boxes per SAM mask-decoder call (32)")

    m3d = parser.add_argument_group("metric3d (depth)")
    m3d.add_argument("--metric3d-repo", type=Path, default=None,
                     help="local clone of github.com/YvanYin/Metric3D (its hubconf.py is loaded)")
    m3d.add_argument("--metric3d-checkpoint", type=Path, default=None,
                     help="checkpoint file, e.g. metric_depth_vit_giant2_800k.pth")
    m3d.add_argument("--metric3d-model", default="metric3d_vit_giant2",
                     help="hubconf entry point matching the checkpoint (default metric3d_vit_giant2)")
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
    oracle.add_argument("--oracle-noise", default="none", choices=tuple(NOISE_PRESETS),
                        help="noise preset mimicking foundation-model errors (default: none = exact)")
    for dest, (_, _, help_text) in ORACLE_NOISE_FLAGS.items():
        oracle.add_argument("--" + dest.replace("_", "-"), dest=dest, type=float, default=None, metavar="X",
                            help=help_text + " (overrides the preset)")
    oracle.add_argument("--oracle-seed", type=int, default=None, help="global seed of the noise (default 0)")


def _build(table: dict[str, SourceEntry], kind: str, name: str, args: argparse.Namespace, dataroot: Path):
    if name not in table:
        raise EasyOccError(f"unknown {kind} source '{name}' (known: {_names(table)})")
    return table[name].build(args, dataroot)


def _source_from_args(table, kind: str, name: str | None, args: argparse.Namespace, dataroot: str | Path, cached):
    if name is None:
        return None
    source = _build(table, kind, name, args, Path(dataroot))
    cache_dir = getattr(args, "cache_dir", None)
    return source if cache_dir is None else cached(source, cache_dir)


def semantic_source_from_args(args: argparse.Namespace, dataroot: str | Path) -> SemanticSource | None:
    """The semantic source ``--semantics`` names (cached with --cache-dir); None when no source is named."""
    from easyocc.labels.sources.cache import CachedSemantics

    return _source_from_args(SEMANTIC_SOURCES, "semantic", args.semantics, args, dataroot, CachedSemantics)


def depth_source_from_args(args: argparse.Namespace, dataroot: str | Path) -> DepthSource | None:
    """The depth source ``--depth`` names (cached with --cache-dir); None when no source is named."""
    from easyocc.labels.sources.cache import CachedDepth

    return _source_from_args(DEPTH_SOURCES, "depth", args.depth, args, dataroot, CachedDepth)


def sources_from_args(args: argparse.Namespace, dataroot: str | Path) -> tuple[SemanticSource, DepthSource]:
    """The (semantic, depth) sources the parsed arguments name, cached when --cache-dir is given."""
    return semantic_source_from_args(args, dataroot), depth_source_from_args(args, dataroot)
