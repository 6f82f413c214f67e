"""``easyocc labels``: Easy3D pseudo-labels for every keyframe of a nuScenes-format dataroot.

Writes ``<out>/<scene_name>/<sample_token>/labels.npz`` (Occ3D keys and dtypes) and ``<out>/manifest.json`` (the
settings). Resumable: finished keyframes are skipped; a rerun with other settings into the same folder is refused.
Work is split by scene: ``--workers`` processes on one machine, ``--shard i/n`` over machines.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

from easyocc.errors import EasyOccError, InputError
from easyocc.labels.config import LabelConfig
from easyocc.occ3d import CLASS_IDS, CLASS_NAMES, FREE

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "easyocc-labels/1"


# --- settings ----------------------------------------------------------------------------------------------------

def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of :class:`LabelConfig` (defaults from the dataclass; ``--config`` YAML underneath)."""
    d = LabelConfig()
    g = parser.add_argument_group("3D stage (Easy3D-Labels)")
    g.add_argument("--config", type=Path, default=None,
                   help="YAML file of label settings, or a built-in name (labels); flags override it")
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
    classes = data.get("dynamic_classes")
    if isinstance(classes, str) or (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        try:  # 'car,bus' or [car, bus]: class names
            data["dynamic_classes"] = parse_class_names(classes if isinstance(classes, str) else ",".join(classes))
        except EasyOccError as exc:
            raise InputError(path, f"dynamic_classes: {exc}") from None
    try:
        checked = config_from_dict(LabelConfig, data)  # the typed loader: 'frames: 2.5' or 'carve: maybe' fail
    except (ConfigError, EasyOccError) as exc:
        raise InputError(path, str(exc)) from None
    return {name: getattr(checked, name) for name in data}


def config_from_args(args: argparse.Namespace) -> LabelConfig:
    values = load_config_file(args.config) if getattr(args, "config", None) else {}
    for f in fields(LabelConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            values[f.name] = parse_class_names(value) if f.name == "dynamic_classes" else value
    try:
        return LabelConfig(**values)
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


def shard_scenes(scenes: list, index: int, count: int) -> list:
    """Scenes of shard ``index`` of ``count``: every count-th scene in name order (shards partition the scenes)."""
    return sorted(scenes, key=lambda s: s.name)[index::count]


# --- manifest ----------------------------------------------------------------------------------------------------

def manifest_for(config: LabelConfig, semantics_fingerprint: str, depth_fingerprint: str, version: str,
                 ego_masks: Path | None) -> dict:
    return {
        "format": MANIFEST_FORMAT,
        "version": version,
        "semantics": semantics_fingerprint,
        "depth": depth_fingerprint,
        "ego_masks": None if ego_masks is None else str(Path(ego_masks).resolve()),
        "config": config.manifest(),
    }


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} {a!r} -> {b!r}")
    return out


def check_or_write_manifest(out: Path, manifest: dict) -> None:
    """Write ``out/manifest.json``, or refuse when one written with other settings is there."""
    import json

    from easyocc.fileio import save_json

    path = out / MANIFEST
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(path, f"unreadable manifest ({exc}); remove it only if the labels beside it are "
                                   "yours to discard") from None
        diff = _differences(old, manifest)
        if diff:
            shown = "; ".join(diff[:3]) + (f"; and {len(diff) - 3} more" if len(diff) > 3 else "")
            raise InputError(path, f"labels here were made with other settings ({shown}); use another --out")
        return
    if out.exists() and any(out.iterdir()):
        raise InputError(out, "not empty and has no manifest.json: not an easyocc labels folder")
    save_json(path, manifest)


# --- running -----------------------------------------------------------------------------------------------------

@dataclass
class Job:
    """What a worker needs to label scenes (picklable)."""

    args: argparse.Namespace
    config: LabelConfig
    out: Path
    device: str


def resolve_device(name: str | None) -> str:
    """The 3D stage's device: "cpu" or a checked torch CUDA device (see ``easyocc.devices``)."""
    from easyocc.devices import resolve_device as torch_device

    return str(torch_device(name or "auto"))


def build_labeler(job: Job):
    """The SceneLabeler for a job: sources from the arguments, ego masks, the 3D stage on ``job.device``."""
    from easyocc.data.nuscenes_index import CAMERA_NAMES
    from easyocc.labels.lift import load_ego_masks
    from easyocc.labels.pipeline import CameraObserver, SceneLabeler
    from easyocc.labels.sources import sources_from_args

    semantics, depth = sources_from_args(job.args, job.args.data)
    masks = load_ego_masks(job.args.ego_masks, CAMERA_NAMES) if job.args.ego_masks else None
    observer = CameraObserver(semantics, depth, job.config, masks, device=job.device)
    return SceneLabeler(observer, job.config), semantics, depth


_WORKER: dict = {}


def _init_worker(job: Job, queue, threads: int, parent_pid: int) -> None:
    import numba

    from easyocc.processes import die_with_parent

    die_with_parent(parent_pid)
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    _WORKER["labeler"] = build_labeler(job)[0]
    _WORKER["job"], _WORKER["queue"] = job, queue


def _label_scene_in_worker(scene) -> int:
    from easyocc.labels.pipeline import label_scene

    queue = _WORKER["queue"]
    return label_scene(_WORKER["labeler"], scene, _WORKER["job"].out, on_keyframe=lambda kf: queue.put(1))


def run_scenes(job: Job, scenes: list, workers: int, progress) -> int:
    """Label ``scenes``: in this process, or in ``workers`` processes (a scene per task). Returns keyframes written."""
    from easyocc.labels.pipeline import label_scene

    if workers <= 1 or len(scenes) <= 1:
        labeler = build_labeler(job)[0]
        return sum(label_scene(labeler, s, job.out, on_keyframe=lambda kf: progress.update(1)) for s in scenes)

    import multiprocessing as mp
    import queue as queue_module
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from easyocc.fileio import sweep_temporaries
    from easyocc.processes import stop_pool

    ctx = mp.get_context("spawn")  # numba's thread pools do not survive fork
    done_queue = ctx.Queue()
    threads = max(1, (os.cpu_count() or 1) // workers)
    written = 0
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(job, done_queue, threads, os.getpid())) as pool:
        try:
            # Longest scenes first, so that no long scene starts last.
            pending = {pool.submit(_label_scene_in_worker, s) for s in sorted(scenes, key=lambda s: -len(s.keyframes))}
            while pending:
                try:
                    progress.update(done_queue.get(timeout=0.2))
                except queue_module.Empty:
                    pass
                finished, pending = wait(pending, timeout=0, return_when=FIRST_EXCEPTION)
                for future in finished:
                    written += future.result()  # a worker's error is raised here
        except BrokenProcessPool:
            raise EasyOccError("a labelling worker process died (killed, or out of memory?); the keyframes written "
                               "so far are kept, a rerun resumes") from None
        except BaseException:
            stop_pool(pool)  # the other workers stop now, mid-scene (their files are written atomically)
            for folder in (job.out, getattr(job.args, "cache_dir", None)):
                if folder is not None:
                    sweep_temporaries(folder)  # the half-written files of the workers just stopped
            raise
        while True:  # the last keyframes' messages
            try:
                progress.update(done_queue.get_nowait())
            except queue_module.Empty:
                break
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from easyocc.labels.sources import add_source_arguments

    parser.add_argument("--data", type=Path, required=True, help="nuScenes-format dataroot (real or SimScenes)")
    parser.add_argument("--version", default="auto", help="nuScenes table version (default auto: the dataroot's only "
                        "v1.0-* folder, v1.0-trainval among several)")
    parser.add_argument("--out", type=Path, required=True, help="output folder: <out>/<scene>/<token>/labels.npz")
    parser.add_argument("--split", default="train", help="train, val or all (default train)")
    parser.add_argument("--scenes", default=None, help="comma-separated scene names (then --split is not used)")
    parser.add_argument("--ego-masks", type=Path, default=None,
                        help="folder of <CAMERA>_mask.png ego-vehicle masks (dark = car body, dropped)")
    parser.add_argument("--workers", type=int, default=1, help="processes on this machine, a scene per task")
    parser.add_argument("--shard", default=None, metavar="i/n", help="label only shard i of n (scenes split by name)")
    add_source_arguments(parser)
    add_config_arguments(parser)


def select_scenes(args: argparse.Namespace):
    """The scenes to label: ``--scenes`` when given (whatever the split), else the scenes of ``--split``."""
    from easyocc.data.nuscenes_index import DatasetIndex, split_scene_names

    if args.scenes:
        names = [n.strip() for n in args.scenes.split(",") if n.strip()]
        return DatasetIndex(args.data, args.version, scene_names=names).scenes  # unknown names: a one-line error
    index = DatasetIndex(args.data, args.version)
    if args.split == "all":
        return index.scenes
    wanted = set(split_scene_names(args.data, args.version, args.split))
    return [s for s in index.scenes if s.name in wanted]


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from easyocc.data.nuscenes_index import resolve_version
    from easyocc.fileio import require_folder_or_absent, sweep_temporaries
    from easyocc.occ3d import label_path

    # Everything is checked before the manifest is written.
    config = config_from_args(args)
    shard = parse_shard(args.shard)
    if args.workers < 1:
        raise EasyOccError(f"--workers must be >= 1, got {args.workers}")
    if not args.data.is_dir():
        raise InputError(args.data, "dataroot not found")
    require_folder_or_absent(args.out)
    if args.cache_dir is not None:
        require_folder_or_absent(args.cache_dir, "2D cache folder")
    args.version = resolve_version(args.data, args.version)
    scenes = shard_scenes(select_scenes(args), *shard)
    job = Job(args=args, config=config, out=args.out, device=resolve_device(getattr(args, "device", "auto")))
    _, semantics, depth = build_labeler(job)  # fails early on bad sources or masks
    for folder in (args.out, args.cache_dir):
        if folder is not None:
            sweep_temporaries(folder)  # what killed runs left; live writers' files are kept
    check_or_write_manifest(args.out, manifest_for(config, semantics.fingerprint(), depth.fingerprint(),
                                                   args.version, args.ego_masks))
    todo = sum(1 for s in scenes for kf in s.keyframes if not label_path(args.out, s.name, kf.token).is_file())
    total = sum(len(s.keyframes) for s in scenes)
    for s in scenes:
        if len(s.keyframes) == 1:
            print(f"easyocc labels: note: scene {s.name} has a single keyframe; its labels use that frame alone",
                  file=sys.stderr)
    start = time.perf_counter()
    with tqdm(total=todo, unit="keyframe", desc="labels", dynamic_ncols=True) as progress:
        written = run_scenes(job, [s for s in scenes if any(not label_path(args.out, s.name, kf.token).is_file()
                                                             for kf in s.keyframes)], args.workers, progress)
    elapsed = time.perf_counter() - start
    rate = written / elapsed if elapsed > 0 else 0.0
    print(f"wrote {written} keyframes ({total - todo} already there) of {len(scenes)} scenes in {elapsed:.1f} s "
          f"({rate:.2f} keyframes/s) -> {args.out}")
    return 0
