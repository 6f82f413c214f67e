"""Labelling a dataset: the library face of the 3D stage (``easyocc labels`` is a thin layer over it).

A :class:`DatasetLabeler` holds a nuScenes-format dataroot, the two 2D sources, a :class:`LabelConfig`, optional
ego-vehicle masks and the device of the 3D stage. It picks scenes (:meth:`~DatasetLabeler.scenes`: a split, names,
a shard), yields labels in memory (:meth:`~DatasetLabeler.labels`) or writes them
(:meth:`~DatasetLabeler.write`): ``<out>/<scene>/<token>/labels.npz`` beside ``<out>/manifest.json`` (the settings),
resumable (finished keyframes are skipped; other settings into the same folder are refused), a scene per task over
``workers`` processes. Workers receive data (the sources, the config, the masks), never parsed options.

>>> from easyocc.labels import DatasetLabeler, LabelConfig                                 # doctest: +SKIP
>>> from easyocc.labels.sources.oracle import OracleDepth, OracleSemantics                 # doctest: +SKIP
>>> labeler = DatasetLabeler("data/simscenes", OracleSemantics("data/simscenes"), OracleDepth("data/simscenes"),
...                          LabelConfig(frames=4))                                        # doctest: +SKIP
>>> labeler.write("labels/", labeler.scenes("train"), workers=2).written                  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from easyocc.config import differences
from easyocc.errors import EasyOccError, InputError
from easyocc.labels.config import LabelConfig

if TYPE_CHECKING:
    import numpy as np

    from easyocc.data.nuscenes_index import Keyframe, Scene
    from easyocc.labels.backend import LabelBackend
    from easyocc.labels.pipeline import KeyframeLabels, SceneLabeler
    from easyocc.labels.sources.base import DepthSource, SemanticSource

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "easyocc-labels/1"


# --- scenes ------------------------------------------------------------------------------------------------------

def select_scenes(data_root: str | Path, version: str, split: str = "train",
                  names: Sequence[str] | None = None) -> list[Scene]:
    """The scenes to label: ``names`` when given (whatever the split; an unknown name is a one-line error), else
    the scenes of ``split`` (train, val or all)."""
    from easyocc.data.nuscenes_index import DatasetIndex, split_scene_names

    if names:
        return DatasetIndex(data_root, version, scene_names=list(names)).scenes
    index = DatasetIndex(data_root, version)
    if split == "all":
        return index.scenes
    wanted = set(split_scene_names(data_root, version, split))
    return [s for s in index.scenes if s.name in wanted]


def shard_scenes(scenes: list, index: int, count: int) -> list:
    """Scenes of shard ``index`` of ``count``: every count-th scene in name order (shards partition the scenes)."""
    if not (count >= 1 and 0 <= index < count):
        raise EasyOccError(f"shard {index}/{count}: need 0 <= i < n")
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


def check_or_write_manifest(out: Path, manifest: dict) -> None:
    """Write ``out/manifest.json``, or refuse when one written with other settings is there."""
    from easyocc.fileio import save_json

    path = out / MANIFEST
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(path, f"unreadable manifest ({exc}); remove it only if the labels beside it are "
                                   "yours to discard") from None
        if isinstance(old.get("config"), dict):  # keys added since the folder was labelled: their old behaviour
            old["config"] = {**LabelConfig.before_ideas(), **old["config"]}
        diff = differences(old, manifest)
        if diff:
            shown = "; ".join(diff[:3]) + (f"; and {len(diff) - 3} more" if len(diff) > 3 else "")
            raise InputError(path, f"labels here were made with other settings ({shown}); use another --out")
        return
    if out.exists() and any(out.iterdir()):
        raise InputError(out, "not empty and has no manifest.json: not an easyocc labels folder")
    save_json(path, manifest)


# --- the labeler -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LabelReport:
    """What :meth:`DatasetLabeler.write` did: keyframes written now and found finished, scenes, seconds."""

    out: Path
    written: int
    already: int
    scenes: int
    seconds: float


@dataclass(frozen=True)
class _Work:
    """What a process needs to label scenes (picklable: data, no parsed options)."""

    semantics: SemanticSource
    depth: DepthSource
    config: LabelConfig
    ego_masks: dict[str, np.ndarray] | None
    backend: LabelBackend

    def scene_labeler(self) -> SceneLabeler:
        from easyocc.labels.pipeline import CameraObserver, SceneLabeler

        observer = CameraObserver(self.semantics, self.depth, self.config, self.ego_masks, backend=self.backend)
        return SceneLabeler(observer, self.config)


class DatasetLabeler:
    """Easy3D pseudo-labels for the keyframes of a nuScenes-format dataroot (real nuScenes or SimScenes).

    data_root, version: the dataroot and its table version (``auto``: its only ``v1.0-*`` folder, v1.0-trainval
    among several); semantics, depth: the 2D sources (``easyocc.labels.sources``; wrap them in ``CachedSemantics``
    / ``CachedDepth`` to cache their maps); config: the 3D stage's settings; ego_masks: a folder of
    ``<CAMERA>_mask.png`` (dark = the car's body, dropped); device: where the 3D stage runs (auto, cpu, cuda,
    cuda:N); backend: its implementation, numba (CPU kernels), torch (on ``device``) or auto (torch on a GPU, numba
    on the CPU), both giving the same labels (``easyocc.devices``).

    Everything is checked here, before anything is written: a one-line error for a missing dataroot, an unknown
    version, an unreadable mask, a bad device.
    """

    def __init__(self, data_root: str | Path, semantics: SemanticSource, depth: DepthSource,
                 config: LabelConfig = LabelConfig(), version: str = "auto", ego_masks: str | Path | None = None,
                 device: str = "auto", backend: str = "auto"):
        from easyocc.data.nuscenes_index import CAMERA_NAMES, resolve_version
        from easyocc.devices import resolve_device
        from easyocc.labels.backend import label_backend
        from easyocc.labels.lift import load_ego_masks

        self.data_root = Path(data_root)
        if not self.data_root.is_dir():
            raise InputError(self.data_root, "dataroot not found")
        self.version = resolve_version(self.data_root, version)
        self.ego_masks = None if ego_masks is None else Path(ego_masks)
        masks = None if ego_masks is None else load_ego_masks(ego_masks, CAMERA_NAMES)
        self._work = _Work(semantics, depth, config, masks, label_backend(backend, resolve_device(device)))

    @property
    def config(self) -> LabelConfig:
        return self._work.config

    @property
    def backend(self) -> LabelBackend:
        """The 3D stage's implementation (``labels.backend``: numba, or torch on a device)."""
        return self._work.backend

    def scenes(self, split: str = "train", names: Sequence[str] | None = None,
               shard: tuple[int, int] = (0, 1)) -> list[Scene]:
        """The scenes of ``split`` (train, val, all), or those ``names`` lists; shard ``(i, n)`` keeps every n-th
        in name order, from the i-th (shards over machines partition the scenes)."""
        return shard_scenes(select_scenes(self.data_root, self.version, split, names), *shard)

    def manifest(self) -> dict:
        """What ``manifest.json`` records: the format, version, sources' fingerprints, ego masks and settings."""
        work = self._work
        return manifest_for(work.config, work.semantics.fingerprint(), work.depth.fingerprint(), self.version,
                            self.ego_masks)

    def labels(self, scenes: Sequence[Scene] | None = None) -> Iterator[tuple[Scene, Keyframe, KeyframeLabels]]:
        """(scene, keyframe, labels) of every keyframe of ``scenes`` (default: the train split), in memory, in this
        process; ``labels.write(path)`` writes one."""
        labeler = self._work.scene_labeler()
        for scene in self.scenes() if scenes is None else scenes:
            for keyframe, labels in labeler.labels(scene):
                yield scene, keyframe, labels

    def claim(self, out: str | Path) -> Path:
        """Make ``out`` this labeler's folder: new or empty (``manifest.json`` is written), or written before with
        the same settings (what killed runs left is removed); a one-line error otherwise, nothing written."""
        from easyocc.fileio import require_folder_or_absent, sweep_temporaries

        out = require_folder_or_absent(out)
        for folder in self._temporaries(out):
            sweep_temporaries(folder)  # what killed runs left; live writers' files are kept
        check_or_write_manifest(out, self.manifest())
        return out

    def write(self, out: str | Path, scenes: Sequence[Scene] | None = None, workers: int = 1,
              progress: bool = True) -> LabelReport:
        """Write the labels of ``scenes`` (default: the train split) under ``out`` (:meth:`claim`); finished
        keyframes are skipped (resume); ``workers`` processes label a scene each."""
        from tqdm import tqdm

        from easyocc.occ3d import label_path

        if workers < 1:
            raise EasyOccError(f"workers must be >= 1, got {workers}")
        scenes = self.scenes() if scenes is None else list(scenes)
        out = self.claim(out)
        todo = [s for s in scenes if any(not label_path(out, s.name, kf.token).is_file() for kf in s.keyframes)]
        missing = sum(1 for s in todo for kf in s.keyframes if not label_path(out, s.name, kf.token).is_file())
        start = time.perf_counter()
        with tqdm(total=missing, unit="keyframe", desc="labels", dynamic_ncols=True, disable=not progress) as bar:
            written = _label_scenes(self._work, todo, out, workers, bar, self._temporaries(out))
        total = sum(len(s.keyframes) for s in scenes)
        return LabelReport(out, written, total - missing, len(scenes), time.perf_counter() - start)

    def _temporaries(self, out: Path) -> list[Path]:
        """The folders its writers write into: ``out`` and the sources' caches."""
        return [out, *_cache_folders(self._work.semantics, self._work.depth)]


def _cache_folders(*sources) -> list[Path]:
    """The cache folders of sources wrapped in ``CachedSemantics`` / ``CachedDepth``."""
    from easyocc.labels.sources.cache import CachedDepth, CachedSemantics

    return [source.folder.root for source in sources if isinstance(source, (CachedSemantics, CachedDepth))]


# --- processes ---------------------------------------------------------------------------------------------------

_WORKER: dict = {}


def _init_worker(work: _Work, queue, threads: int, parent_pid: int) -> None:
    import numba

    from easyocc.processes import die_with_parent

    die_with_parent(parent_pid)
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    _WORKER["labeler"], _WORKER["queue"] = work.scene_labeler(), queue


def _label_scene_in_worker(scene, out: Path) -> int:
    from easyocc.labels.pipeline import label_scene

    queue = _WORKER["queue"]
    return label_scene(_WORKER["labeler"], scene, out, on_keyframe=lambda kf: queue.put(1))


def _label_scenes(work: _Work, scenes: list, out: Path, workers: int, progress, folders: list[Path]) -> int:
    """Label ``scenes`` into ``out``: in this process, or in ``workers`` processes (a scene per task); stopped
    workers' half-written files in ``folders`` are removed. Returns keyframes written."""
    from easyocc.labels.pipeline import label_scene

    if workers <= 1 or len(scenes) <= 1:
        labeler = work.scene_labeler()
        return sum(label_scene(labeler, s, out, on_keyframe=lambda kf: progress.update(1)) for s in scenes)

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
                             initargs=(work, done_queue, threads, os.getpid())) as pool:
        try:
            # Longest scenes first, so that no long scene starts last.
            pending = {pool.submit(_label_scene_in_worker, s, out)
                       for s in sorted(scenes, key=lambda s: -len(s.keyframes))}
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
            for folder in folders:
                sweep_temporaries(folder)  # the half-written files of the workers just stopped
            raise
        while True:  # the last keyframes' messages
            try:
                progress.update(done_queue.get_nowait())
            except queue_module.Empty:
                break
    return written
