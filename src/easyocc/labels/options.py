"""The command-line options of the labels stage, shared by ``easyocc labels`` and ``easyocc label-quality``: the
:class:`LabelConfig` flags over a ``--config`` YAML file, class names, ``--shard i/n``.
"""

from __future__ import annotations

import argparse
from dataclasses import fields, replace
from pathlib import Path

from easyocc.errors import EasyOccError, InputError
from easyocc.labels.config import LabelConfig
from easyocc.occ3d import CLASS_IDS, CLASS_NAMES, FREE

#: LabelConfig fields that hold classes: given as names ('car,bus') on the command line and in YAML.
CLASS_LIST_FIELDS = ("dynamic_classes", "rare_classes")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of :class:`LabelConfig` (defaults from the dataclass; ``--config`` YAML underneath)."""
    d = LabelConfig()
    g = parser.add_argument_group("3D stage (Easy3D-Labels)")
    g.add_argument("--config", type=Path, default=None,
                   help="YAML file of label settings, or a built-in name (labels); --set and the flags override it")
    g.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override label settings by field name, values as YAML, e.g. --set frames=5 carve=false "
                        "dynamic_classes=[4,7]; the flags below override these")
    g.add_argument("--frames", type=int, default=None, help=f"previous keyframes added to each one (default {d.frames})")
    g.add_argument("--min-points", type=int, default=None,
                   help=f"points a voxel needs to be occupied (default {d.min_points})")
    g.add_argument("--dynamic-classes", default=None, metavar="NAMES",
                   help="comma-separated classes taken from the current keyframe only (default: the moving classes "
                        "bicycle,bus,car,construction_vehicle,motorcycle,pedestrian,trailer,truck; 'none' for none)")
    g.add_argument("--pixel-stride", type=int, default=None, help=f"lift every n-th pixel (default {d.pixel_stride})")
    g.add_argument("--max-range", type=float, default=None, help="drop points farther than this (metres; default none)")
    g.add_argument("--ray-stride", type=int, default=None,
                   help="one free-space ray per n x n pixels (default 0 = automatic: rays < 1 voxel apart)")
    g.add_argument("--cell-divisions", type=int, default=None,
                   help=f"fine cells per voxel edge for each frame's cloud, power of two; 0 keeps every point "
                        f"(default {d.cell_divisions})")
    g.add_argument("--carve", dest="carve", action="store_true", default=None,
                   help="drop past frames' points in voxels the current cameras see through (default on)")
    g.add_argument("--no-carve", dest="carve", action="store_false",
                   help="plain aggregation of past frames, as the paper describes")
    g.add_argument("--carve-margin", type=float, default=None,
                   help=f"metres the current depth must lie beyond a voxel's centre to see through it "
                        f"(default {d.carve_margin})")
    g.add_argument("--outlier-neighbors", type=int, default=None,
                   help="statistical outlier removal with this many neighbours (default 0 = off)")
    g.add_argument("--outlier-std", type=float, default=None, dest="outlier_std_ratio",
                   help=f"outlier threshold: mean + this many std of the neighbour distance (default {d.outlier_std_ratio})")
    ideas = parser.add_argument_group("2026 label ideas (ShelfOcc)")
    ideas.add_argument("--future-frames", type=int, default=None,
                       help=f"following keyframes added too, static classes only (default {d.future_frames})")
    ideas.add_argument("--pass-through", dest="pass_through", action="store_true", default=None,
                       help="drop the points of voxels that the window's free-space rays mostly pass through "
                            f"(default {'on' if d.pass_through else 'off'})")
    ideas.add_argument("--no-pass-through", dest="pass_through", action="store_false", help="no pass-through filter")
    ideas.add_argument("--pass-through-ratio", type=float, default=None,
                       help=f"share of crossings, crossings / (crossings + points), above which a voxel's points "
                            f"go (default {d.pass_through_ratio})")
    ideas.add_argument("--rare-priority", dest="rare_priority", action="store_true", default=None,
                       help="a rare class wins a voxel holding --rare-min-points of its points "
                            f"(default {'on' if d.rare_priority else 'off'})")
    ideas.add_argument("--no-rare-priority", dest="rare_priority", action="store_false", help="the plain vote")
    ideas.add_argument("--rare-classes", default=None, metavar="NAMES",
                       help="comma-separated classes --rare-priority favours (default "
                            f"{','.join(CLASS_NAMES[c] for c in d.rare_classes)})")
    ideas.add_argument("--rare-min-points", type=int, default=None,
                       help=f"points a rare class needs in a voxel to win it (default {d.rare_min_points})")


def parse_class_names(text: str) -> tuple[int, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    ids = []
    for name in (n.strip() for n in text.split(",")):
        if name.isdigit() and int(name) < FREE:
            ids.append(int(name))
        elif name in CLASS_IDS and CLASS_IDS[name] != FREE:
            ids.append(CLASS_IDS[name])
        else:
            raise EasyOccError(f"unknown class '{name}' (known: {', '.join(CLASS_NAMES[:FREE])})")
    return tuple(ids)


def load_config_file(path: Path) -> dict:
    """The settings a label YAML file gives (a mapping of :class:`LabelConfig` fields, or a project config's
    ``labels:`` section), each checked against its field's type; errors name the file."""
    import yaml

    from easyocc.config import ConfigError, config_from_dict, resolve_config_path

    path = resolve_config_path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(path, f"invalid YAML ({str(exc).splitlines()[0]})") from None
    if isinstance(data, dict) and isinstance(data.get("labels"), dict):
        data = data["labels"]  # a project config with a 'labels:' section
    if not isinstance(data, dict) or not data:
        raise InputError(path, "expected a mapping of label settings (the file is empty)" if data is None
                         else "expected a mapping of label settings")
    for key in CLASS_LIST_FIELDS:
        classes = data.get(key)
        if isinstance(classes, str) or (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
            try:  # 'car,bus' or [car, bus]: class names
                data[key] = parse_class_names(classes if isinstance(classes, str) else ",".join(classes))
            except EasyOccError as exc:
                raise InputError(path, f"{key}: {exc}") from None
    try:
        checked = config_from_dict(LabelConfig, data)  # the typed loader: 'frames: 2.5' or 'carve: maybe' fail
    except (ConfigError, EasyOccError) as exc:
        raise InputError(path, str(exc)) from None
    return {name: getattr(checked, name) for name in data}


def config_from_args(args: argparse.Namespace) -> LabelConfig:
    """The settings of ``--config`` (a file), then ``--set key=value`` (typed like the training config's, through
    ``easyocc.config``), then the flags; one-line errors naming the file, ``--set`` or the settings."""
    from easyocc.config import ConfigError, apply_overrides

    values = load_config_file(args.config) if getattr(args, "config", None) else {}
    flags = {}
    for f in fields(LabelConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            flags[f.name] = parse_class_names(value) if f.name in CLASS_LIST_FIELDS else value
    overrides = getattr(args, "overrides", None) or []
    try:
        if not overrides:
            return LabelConfig(**{**values, **flags})
        try:
            config = apply_overrides(LabelConfig(**values), overrides)
        except ConfigError as exc:
            raise InputError("--set", str(exc)) from None
        return replace(config, **flags)
    except TypeError as exc:
        raise EasyOccError(f"invalid label settings: {exc}") from None


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n."""
    if text is None:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise EasyOccError(f"--shard must look like i/n (e.g. 0/4), got '{text}'") from None
    if not (n >= 1 and 0 <= i < n):
        raise EasyOccError(f"--shard {text}: need 0 <= i < n")
    return i, n


def scene_names(text: str | None) -> list[str] | None:
    """``--scenes a,b`` -> ["a", "b"]; None when not given."""
    return None if text is None else [n.strip() for n in text.split(",") if n.strip()]
