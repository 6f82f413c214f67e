"""Write a SimScenes dataset: a genuine nuScenes-format dataroot with exact Occ3D ground truth beside it.

``generate_dataset(out_dir, SynthConfig(...))`` writes, under ``out_dir``:

- ``v1.0-mini/*.json``: the nuScenes tables (nuscenes-devkit loads them);
- ``samples/CAM_*/*.jpg`` and ``samples/LIDAR_TOP/*.pcd.bin`` (x, y, z, intensity, ring; LiDAR frame);
- ``sweeps/CAM_*/*.jpg``: camera sweeps, the images the 12 Hz cameras take between keyframes (``SynthConfig.sweeps``:
  all five per interval, only the one before and after each keyframe image, or none); images only;
- ``maps/<token>.png``: a semantic-prior map (driveable surface and sidewalks, 0.1 m per pixel) per scene;
- ``sim/samples/...``: exact depth (``*_depth.npy``) and semantics (``*_semantic.png``) of every image, and the
  Occ3D class of every LiDAR point (``*_semantic.npy``), see :mod:`easyocc.data.synthetic.layout`;
- ``gts/<scene_name>/<sample_token>/labels.npz``: Occ3D semantics, mask_lidar, mask_camera;
- ``splits.json`` (train / val scene names) and ``simscenes.json`` (what generated it).

The same config gives byte-identical files: every random choice flows from the seed, tokens are hashes of the
seed and of what they name, timestamps are computed, and JSON, JPEG, PNG and npz encoding are deterministic.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from easyocc import __version__
from easyocc.data.nuscenes_index import CAMERA_NAMES, LIDAR_NAME, SPLITS_FILE
from easyocc.data.synthetic import layout
from easyocc.data.synthetic.cast import CastScene, build_scene, count_unoccluded
from easyocc.data.synthetic.render import CameraRender, LidarScan, camera_rays, render_camera, scan_lidar
from easyocc.data.synthetic.sensors import SENSORS, LidarPattern
from easyocc.data.synthetic.tables import (
    ATTRIBUTE_TOKENS,
    ATTRIBUTES,
    CATEGORIES,
    CATEGORY_TOKENS,
    VISIBILITY,
    link_prev_next,
    make_token,
    pose_record,
    visibility_token,
)
from easyocc.data.synthetic.voxelize import camera_mask, lidar_mask, voxelize
from easyocc.data.synthetic.world import World, WorldStyle, build_world
from easyocc.errors import InputError
from easyocc.fileio import atomic_write, save_json, sweep_temporaries
from easyocc.geometry import invert_transform, yaw_rotation
from easyocc.occ3d import CLASS_IDS, label_path, write_labels

#: Written last-but-not-least: marks a directory as a SimScenes dataset that ``generate_dataset`` may overwrite.
MANIFEST = "simscenes.json"
#: What a SimScenes dataset consists of; regenerating removes exactly these.
OWNED_ENTRIES = ("v1.0-mini", "samples", "sweeps", "maps", layout.SIM_DIR, "gts", SPLITS_FILE, MANIFEST)
KEYFRAME_INTERVAL_US = 500_000
#: nuScenes cameras run at 12 Hz: six images per keyframe interval, the keyframe's and five sweeps.
CAMERA_FRAMES_PER_KEYFRAME = 6
#: ``SynthConfig.sweeps``: every sweep, the sweeps next to each keyframe image (frame ids -1, +1), or none.
SWEEP_MODES = ("all", "neighbours", "none")
#: Annotations cover agents within this distance of the ego (the GT grid reaches 57 m, the LiDAR 70 m).
ANNOTATION_RANGE = 80.0
MAP_RESOLUTION = 0.1
STAGES = ("world", "lidar", "rendering", "gt", "masks", "annotations", "sweeps", "writing")


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. ``image_size`` is (width, height); keyframes are 0.5 s apart (2 Hz, as in nuScenes)."""

    scenes: int = 4
    keyframes: int = 20
    image_size: tuple[int, int] = (800, 450)
    seed: int = 0
    #: mask_lidar accumulates the LiDAR scans of the keyframes within this many keyframes of the current one.
    lidar_mask_window: int = 2
    #: mask_camera casts the rays of every s-th pixel (rows and columns), s = max(1, width // mask_ray_columns):
    #: every pixel up to 400 px wide (rays about 0.2 degrees apart), the same density above.
    mask_ray_columns: int = 400
    #: Annotation visibility compares visible and unoccluded pixel counts on every s-th pixel,
    #: s = max(1, width // visibility_columns) (nuScenes' visibility bins are 20-40 % wide).
    visibility_columns: int = 100
    jpeg_quality: int = 92
    #: Camera sweeps to write (``SWEEP_MODES``): "neighbours" writes the image just before and just after every
    #: keyframe image (what photometric self-supervision warps into), "all" the five between two keyframes.
    sweeps: str = "neighbours"
    lidar: LidarPattern = LidarPattern()
    style: WorldStyle = WorldStyle()
    version: str = "v1.0-mini"

    def __post_init__(self):
        if self.scenes < 1 or self.keyframes < 1:
            raise ValueError(f"need at least one scene and one keyframe, got {self.scenes} x {self.keyframes}")
        w, h = self.image_size
        if w < 16 or h < 16:
            raise ValueError(f"image size {w}x{h} is too small (at least 16x16)")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.sweeps not in SWEEP_MODES:
            raise ValueError(f"sweeps must be one of {', '.join(SWEEP_MODES)}, got {self.sweeps!r}")

    @property
    def mask_stride(self) -> int:
        return max(1, self.image_size[0] // self.mask_ray_columns)

    @property
    def visibility_stride(self) -> int:
        return max(1, self.image_size[0] // self.visibility_columns)


@dataclass
class GenerationReport:
    """What :func:`generate_dataset` wrote and where its time went (seconds per stage)."""

    out_dir: Path
    scene_names: list[str]
    keyframes: int = 0
    images: int = 0
    sweeps: int = 0
    annotations: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: {s: 0.0 for s in STAGES})


class _Timer:
    def __init__(self, seconds: dict[str, float]):
        self.seconds = seconds

    @contextlib.contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


def sweep_steps(mode: str, n: int, keyframes: int) -> tuple[int, ...]:
    """The camera images k (1 .. 5) after keyframe n's, before keyframe n + 1's, that ``mode`` writes as sweeps.

    Sweeps lie between the scene's first and last keyframe images, as in nuScenes, where a scene's sample_data
    chain starts and ends with keyframes: the first keyframe has no image before it, the last none after it.
    """
    if mode not in SWEEP_MODES:
        raise ValueError(f"unknown sweep mode {mode!r}")
    last = CAMERA_FRAMES_PER_KEYFRAME - 1
    if mode == "none" or n + 1 >= keyframes:
        return ()
    return tuple(range(1, last + 1)) if mode == "all" else (1, last)


def scene_world(config: SynthConfig, scene_index: int) -> World:
    """The world of scene ``scene_index`` (0-based) of the dataset ``config`` generates; its times are seconds from
    the scene's first keyframe (the first sample's timestamp)."""
    duration = (config.keyframes - 1) * KEYFRAME_INTERVAL_US * 1e-6
    return build_world(config.seed, scene_index, duration, config.style)


def render_rig_camera(world: World, channel: str, t: float, width: int, height: int
                      ) -> tuple[CameraRender, CastScene, np.ndarray]:
    """Camera ``channel`` of the rig at scene time ``t`` (s), agents where they are then and the ego's pose then:
    (render, scene, local_T_cam), what the dataset's image of that time shows. Exact maps of any image (sweeps
    have none on disk) are this, recomputed."""
    mount = SENSORS[channel]
    scene = build_scene(world.solids_at(t))
    local_T_cam = world.local_T_ego(t) @ mount.ego_T_sensor
    render = render_camera(scene, local_T_cam, mount.intrinsics(width, height), width, height, world.sun,
                           world.roads)
    return render, scene, local_T_cam


def split_scenes(names: list[str]) -> dict[str, list[str]]:
    """The last ~25 % of scenes are val (at least one each when there are two or more)."""
    n_val = 0 if len(names) < 2 else min(len(names) - 1, max(1, int(round(0.25 * len(names)))))
    return {"train": names[: len(names) - n_val], "val": names[len(names) - n_val:]}


def is_finished_dataset(out_dir: str | Path, config: SynthConfig) -> bool:
    """Whether ``out_dir`` already holds a complete SimScenes dataset generated with ``config``."""
    try:
        manifest = json.loads((Path(out_dir) / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    found = manifest.get("config")
    if isinstance(found, dict):
        found.setdefault("sweeps", "none")  # written before SynthConfig.sweeps existed: keyframe images only
    return manifest.get("complete") is True and found == json.loads(json.dumps(asdict(config)))


def prepare_output(out_dir: Path) -> None:
    """Refuse a non-empty directory that is not a SimScenes dataset; clear the old dataset's own entries."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / MANIFEST).is_file():
            raise InputError(out_dir, f"is not empty and not a SimScenes dataset (no {MANIFEST}); "
                                      "choose a new or empty directory")
        for name in OWNED_ENTRIES:
            path = out_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        sweep_temporaries(out_dir, recursive=False)  # e.g. a killed run's half-written manifest
    out_dir.mkdir(parents=True, exist_ok=True)


def generate_dataset(out_dir, config: SynthConfig = SynthConfig(), progress: bool = True) -> GenerationReport:
    """Generate a SimScenes dataset under ``out_dir`` (see the module docstring for what is written)."""
    out_dir = Path(out_dir)
    prepare_output(out_dir)
    names = [f"scene-{i + 1:04d}" for i in range(config.scenes)]
    report = GenerationReport(out_dir, names)
    timer = _Timer(report.seconds)
    manifest = {"format": "SimScenes", "format_version": 1, "generator": f"easyocc {__version__} synth",
                "config": asdict(config), "scenes": names, "complete": False}
    save_json(out_dir / MANIFEST, manifest)
    tables = _Tables(config)
    from tqdm import tqdm

    with tqdm(total=config.scenes * config.keyframes, desc="synth", unit="keyframe", disable=not progress) as bar:
        for scene_index, name in enumerate(names):
            _SceneWriter(out_dir, config, scene_index, name, tables, timer, report).run(bar)
    with timer("writing"):
        tables.write(out_dir / config.version)
        save_json(out_dir / SPLITS_FILE, split_scenes(names))
        manifest["complete"] = True
        save_json(out_dir / MANIFEST, manifest)
    return report


class _Tables:
    """The nuScenes tables being filled, scene by scene."""

    def __init__(self, config: SynthConfig):
        self.config = config
        self.rows: dict[str, list[dict]] = {name: [] for name in (
            "scene", "sample", "sample_data", "ego_pose", "calibrated_sensor", "log", "map", "instance",
            "sample_annotation")}

    def write(self, table_dir: Path) -> None:
        fixed = {
            "category": list(CATEGORIES),
            "attribute": list(ATTRIBUTES),
            "visibility": list(VISIBILITY),
            "sensor": [{"token": s.sensor_token, "channel": s.channel, "modality": s.modality}
                       for s in SENSORS.values()],
        }
        for name, rows in {**fixed, **self.rows}.items():
            with atomic_write(table_dir / f"{name}.json", "w") as handle:
                json.dump(rows, handle, indent=1)
                handle.write("\n")


class _SceneWriter:
    """Generates and writes one scene: world, LiDAR scans, camera images, ground truth, tables."""

    def __init__(self, out_dir: Path, config: SynthConfig, scene_index: int, name: str, tables: _Tables,
                 timer: _Timer, report: GenerationReport):
        self.out, self.config, self.index, self.name = out_dir, config, scene_index, name
        self.tables, self.timer, self.report = tables, timer, report
        self.seed = config.seed
        self.width, self.height = config.image_size
        # Timestamps (microseconds): a different hour per scene and a different day per seed.
        self.t0_us = 1_533_000_000_000_000 + (config.seed % 10_000) * 86_400_000_000 + scene_index * 3_600_000_000
        self.logfile = f"simscenes-seed{config.seed}-{name}"

    def token(self, *parts) -> str:
        return make_token("simscenes", self.seed, self.name, *parts)

    def keyframe_us(self, n: int) -> int:
        return self.t0_us + n * KEYFRAME_INTERVAL_US

    def camera_us(self, channel: str, n: int, k: int = 0) -> int:
        """Timestamp of camera image k of keyframe n (0: the keyframe's image, 1 .. 5: the sweeps after it): each
        camera fires ``offset_us`` from the LiDAR at keyframes and runs at 12 Hz in between."""
        step_us = KEYFRAME_INTERVAL_US / CAMERA_FRAMES_PER_KEYFRAME
        return self.keyframe_us(n) + SENSORS[channel].offset_us + int(round(k * step_us))

    def seconds(self, timestamp_us: int) -> float:
        """Scene time in seconds of a timestamp (0 at the first keyframe)."""
        return (timestamp_us - self.t0_us) * 1e-6

    def run(self, bar) -> None:
        cfg = self.config
        with self.timer("world"):
            self.world = scene_world(cfg, self.index)
        self._scene_records()
        self._per_sensor: dict[str, list[dict]] = {c: [] for c in (*CAMERA_NAMES, LIDAR_NAME)}
        with self.timer("lidar"):
            scans = [self._lidar(n) for n in range(cfg.keyframes)]
        sample_tokens = [self.token("sample", n) for n in range(cfg.keyframes)]
        annotations: list[dict] = []
        for n in range(cfg.keyframes):
            self._keyframe(n, sample_tokens, scans, annotations)
            with self.timer("sweeps"):
                self._sweeps(n)
            bar.update(1)
        self._finish_tables(sample_tokens, annotations)

    # ------------------------------------------------------------------------------------------- records
    def _scene_records(self) -> None:
        rows = self.tables.rows
        self.log_token = self.token("log")
        date = datetime.datetime.fromtimestamp(self.t0_us // 1_000_000, datetime.timezone.utc)
        rows["log"].append({"token": self.log_token, "logfile": self.logfile, "vehicle": "simscenes-ego",
                            "date_captured": date.strftime("%Y-%m-%d"), "location": "simscenes-city"})
        self.calibrated = {}
        for channel, mount in SENSORS.items():
            token = self.token("calibrated_sensor", channel)
            intrinsic = mount.intrinsics(self.width, self.height).tolist() if mount.modality == "camera" else []
            rows["calibrated_sensor"].append({"token": token, "sensor_token": mount.sensor_token,
                                              "translation": list(mount.translation),
                                              "rotation": list(mount.rotation), "camera_intrinsic": intrinsic})
            self.calibrated[channel] = token
        map_token = self.token("map")
        filename = f"maps/{map_token}.png"
        with self.timer("writing"):
            self._write_map(self.out / filename)
        rows["map"].append({"token": map_token, "log_tokens": [self.log_token], "category": "semantic_prior",
                            "filename": filename})

    def _write_map(self, path: Path) -> None:
        from PIL import Image

        world = self.world
        g = world.global_T_local

        def to_map(points_xy: np.ndarray) -> np.ndarray:
            return points_xy @ g[:2, :2].T + g[:2, 3]

        b = world.ground.bounds
        corners = to_map(np.array([[b[0], b[1]], [b[2], b[3]]]))
        cols, rows = (int(np.ceil(v / MAP_RESOLUTION)) + 1 for v in corners.max(axis=0))
        image = world.ground.raster({CLASS_IDS["driveable_surface"], CLASS_IDS["sidewalk"]}, MAP_RESOLUTION,
                                    (cols, rows), to_map)
        with atomic_write(path) as handle:
            Image.fromarray(image, mode="L").save(handle, format="PNG")

    def _sample_data_record(self, channel: str, n: int, timestamp: int, filename: str, fmt: str,
                            sweep: int = 0) -> dict:
        """The sample_data row (and its ego_pose row, the ego at ``timestamp``) of keyframe n's reading, or of
        its camera sweep ``sweep`` (1 .. 5 images later)."""
        key_frame = sweep == 0
        token = self.token("sample_data", channel, n, *(() if key_frame else ("sweep", sweep)))
        translation, rotation = pose_record(self.world.global_T_ego(self.seconds(timestamp)))
        self.tables.rows["ego_pose"].append({"token": token, "timestamp": timestamp, "rotation": rotation,
                                             "translation": translation})
        is_camera = channel != LIDAR_NAME
        # A sweep belongs to the next keyframe's sample: nuscenes-devkit's get_boxes interpolates a sweep's boxes
        # between its sample and the one before.
        sample = n if key_frame else n + 1
        return {"token": token, "sample_token": self.token("sample", sample), "ego_pose_token": token,
                "calibrated_sensor_token": self.calibrated[channel], "timestamp": timestamp, "fileformat": fmt,
                "is_key_frame": key_frame, "height": self.height if is_camera else 0,
                "width": self.width if is_camera else 0, "filename": filename, "prev": "", "next": ""}

    # --------------------------------------------------------------------------------------------- LiDAR
    def _lidar(self, n: int) -> tuple[LidarScan, np.ndarray]:
        """Scan of keyframe n (all agents at the LiDAR time) and its LiDAR -> local world transform."""
        t = self.seconds(self.keyframe_us(n))
        scene = build_scene(self.world.solids_at(t))
        local_T_lidar = self.world.local_T_ego(t) @ SENSORS[LIDAR_NAME].ego_T_sensor
        return scan_lidar(scene, local_T_lidar, self.config.lidar), local_T_lidar

    # ------------------------------------------------------------------------------------------ keyframe
    def _keyframe(self, n: int, sample_tokens: list[str], scans, annotations: list[dict]) -> None:
        world, timer = self.world, self.timer
        t = self.seconds(self.keyframe_us(n))
        ref_T_local = invert_transform(world.local_T_ego(t))
        renders = self._cameras(n)
        scan = scans[n][0]
        filename = f"samples/{LIDAR_NAME}/{self.logfile}__{LIDAR_NAME}__{self.keyframe_us(n)}.pcd.bin"
        with timer("writing"):
            self._write_scan(filename, scan)
        self._per_sensor[LIDAR_NAME].append(
            self._sample_data_record(LIDAR_NAME, n, self.keyframe_us(n), filename, "pcd"))
        with timer("gt"):
            semantics = voxelize(world.solids_at(t).transformed(ref_T_local[:2, :2], ref_T_local[:2, 3]))
        with timer("masks"):
            mask_camera = self._camera_mask(semantics, renders, ref_T_local)
            mask_lidar = self._lidar_mask(n, scans, ref_T_local)
        with timer("writing"):
            write_labels(label_path(self.out / "gts", self.name, sample_tokens[n]), semantics, mask_lidar, mask_camera)
        with timer("annotations"):
            annotations.extend(self._annotations(n, t, scan, renders))
        self.report.keyframes += 1
        self.report.images += len(CAMERA_NAMES)

    def _render(self, channel: str, cam_us: int) -> tuple[CameraRender, CastScene, np.ndarray]:
        return render_rig_camera(self.world, channel, self.seconds(cam_us), self.width, self.height)

    def _cameras(self, n: int) -> dict[str, tuple[CameraRender, CastScene, np.ndarray]]:
        """Render and write the six images of keyframe n, each at its own time; (render, scene, local_T_cam)."""
        renders = {}
        for channel in CAMERA_NAMES:
            cam_us = self.camera_us(channel, n)
            with self.timer("rendering"):
                renders[channel] = self._render(channel, cam_us)
            filename = f"samples/{channel}/{self.logfile}__{channel}__{cam_us}.jpg"
            with self.timer("writing"):
                self._write_image(filename, renders[channel][0])
            self._per_sensor[channel].append(self._sample_data_record(channel, n, cam_us, filename, "jpg"))
        return renders

    def _sweeps(self, n: int) -> None:
        """Render and write the camera sweeps between keyframe n's images and keyframe n + 1's. Images only: exact
        maps would cost ~16x a sweep's JPEG on disk, and ``render_rig_camera`` recomputes them when needed."""
        for k in sweep_steps(self.config.sweeps, n, self.config.keyframes):
            for channel in CAMERA_NAMES:
                cam_us = self.camera_us(channel, n, k)
                render = self._render(channel, cam_us)[0]
                filename = f"sweeps/{channel}/{self.logfile}__{channel}__{cam_us}.jpg"
                self._write_jpeg(filename, render)
                self._per_sensor[channel].append(
                    self._sample_data_record(channel, n, cam_us, filename, "jpg", sweep=k))
                self.report.sweeps += 1

    def _lidar_mask(self, n: int, scans, ref_T_local: np.ndarray) -> np.ndarray:
        """mask_lidar of keyframe n from the scans of the keyframes within ``lidar_mask_window`` of it."""
        cfg = self.config
        origins, points = [], []
        for m in range(max(0, n - cfg.lidar_mask_window), min(cfg.keyframes, n + cfg.lidar_mask_window + 1)):
            scan, local_T_lidar = scans[m]
            ref_T_lidar = ref_T_local @ local_T_lidar
            origins.append(ref_T_lidar[:3, 3])
            points.append(scan.points[:, :3].astype(np.float64) @ ref_T_lidar[:3, :3].T + ref_T_lidar[:3, 3])
        return lidar_mask(origins, points)

    def _write_jpeg(self, filename: str, render: CameraRender) -> None:
        from PIL import Image

        with atomic_write(self.out / filename) as handle:
            Image.fromarray(render.rgb).save(handle, format="JPEG", quality=self.config.jpeg_quality)

    def _write_image(self, filename: str, render: CameraRender) -> None:
        """The keyframe image and its exact depth and semantics (``layout``)."""
        from PIL import Image

        self._write_jpeg(filename, render)
        with atomic_write(layout.sim_depth_path(self.out, filename)) as handle:
            np.save(handle, render.depth)
        with atomic_write(layout.sim_semantic_path(self.out, filename)) as handle:
            Image.fromarray(render.semantic, mode="L").save(handle, format="PNG")

    def _write_scan(self, filename: str, scan: LidarScan) -> None:
        with atomic_write(self.out / filename) as handle:
            handle.write(np.ascontiguousarray(scan.points, dtype=np.float32).tobytes())
        with atomic_write(layout.sim_lidar_semantic_path(self.out, filename)) as handle:
            np.save(handle, scan.semantic)

    def _camera_mask(self, semantics, renders, ref_T_local) -> np.ndarray:
        stride = self.config.mask_stride
        origins, directions = [], []
        for channel, (_, _, local_T_cam) in renders.items():
            ref_T_cam = ref_T_local @ local_T_cam
            K = SENSORS[channel].intrinsics(self.width, self.height)
            origins.append(ref_T_cam[:3, 3])
            directions.append(camera_rays(K, self.width, self.height, stride, unit=True) @ ref_T_cam[:3, :3].T)
        return camera_mask(semantics, origins, directions)

    # --------------------------------------------------------------------------------------- annotations
    def _annotations(self, n: int, t: float, scan: LidarScan, renders) -> list[dict]:
        world = self.world
        ego_xy = world.local_T_ego(t)[:2, 3]
        poses = world.agent_poses(t)
        near = np.flatnonzero(np.linalg.norm(poses[:, :2] - ego_xy, axis=1) <= ANNOTATION_RANGE)
        ranges = world.agent_part_range
        owner_of_solid = np.full(ranges[-1, 1] if len(ranges) else 0, -1, dtype=np.int64)
        for a, (lo, hi) in enumerate(ranges):
            owner_of_solid[lo:hi] = a
        lidar_owner = owner_of_solid[scan.solid[scan.solid < len(owner_of_solid)]]
        lidar_counts = np.bincount(lidar_owner[lidar_owner >= 0], minlength=len(world.agents))
        visible, total = self._visibility(near, owner_of_solid, renders)
        records = []
        for a in near:
            agent = world.agents[a]
            x, y, yaw = poses[a]
            w, l, h = agent.size
            centre = world.global_T_local @ np.array([x, y, agent.z + h / 2, 1.0])
            rotation = world.global_T_local[:3, :3] @ yaw_rotation(yaw)
            translation, quaternion = pose_record(np.block([[rotation, centre[:3, None]], [np.zeros((1, 3)), 1.0]]))
            fraction = visible[a] / total[a] if total[a] > 0 else 0.0
            records.append({
                "token": self.token("sample_annotation", a, n),
                "sample_token": self.token("sample", n),
                "instance_token": self.token("instance", a),
                "visibility_token": visibility_token(min(fraction, 1.0)),
                "attribute_tokens": [ATTRIBUTE_TOKENS[agent.attribute]] if agent.attribute else [],
                "translation": translation,
                "size": [float(w), float(l), float(h)],
                "rotation": quaternion,
                "prev": "",
                "next": "",
                "num_lidar_pts": int(lidar_counts[a]),
                "num_radar_pts": 0,
                "_agent": int(a),
            })
        return records

    def _visibility(self, agents: np.ndarray, owner_of_solid: np.ndarray, renders) -> tuple[np.ndarray, np.ndarray]:
        """Per agent: pixels where the cameras see it, and pixels it would cover with nothing in front, summed over
        the six cameras at every s-th pixel (s = ``visibility_stride``)."""
        world = self.world
        count = len(world.agents)
        visible = np.zeros(count)
        total = np.zeros(count)
        stride = self.config.visibility_stride
        for channel, (render, scene, local_T_cam) in renders.items():
            seen = render.solid[::stride, ::stride]
            seen = seen[(seen >= 0) & (seen < len(owner_of_solid))]
            owners = owner_of_solid[seen]
            visible += np.bincount(owners[owners >= 0], minlength=count)[:count]
            K = SENSORS[channel].intrinsics(self.width, self.height)
            boxes = self._pixel_boxes(scene, local_T_cam, K)[agents]
            in_view = boxes[:, 2] >= boxes[:, 0]
            ranges = world.agent_part_range[agents[in_view]]
            total[agents[in_view]] += count_unoccluded(scene, local_T_cam, K, boxes[in_view], ranges[:, 0],
                                                       ranges[:, 1], stride)
        return visible, total

    def _pixel_boxes(self, scene: CastScene, local_T_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
        """(A, 4) int pixel rectangles [u0, v0, u1, v1] (inclusive, clipped to the image) holding each agent's
        parts as the camera sees them; empty (u1 < u0) when the agent is behind the camera or out of the image."""
        ranges = self.world.agent_part_range
        agent_count = len(ranges)
        out = np.tile(np.array([0, 0, -1, -1], dtype=np.int64), (agent_count, 1))
        if agent_count == 0:
            return out
        first = int(ranges[0, 0])
        solids = scene.solids.select(slice(first, None))
        verts = solids.verts
        # Every vertex of every part, at the bottom and at the top of the part: (P, 2V, 3).
        z = np.concatenate([np.repeat(solids.zlo[:, None], verts.shape[1], 1),
                            np.repeat(solids.zhi[:, None], verts.shape[1], 1)], axis=1)
        pts = np.concatenate([np.concatenate([verts, verts], axis=1), z[..., None]], axis=-1)
        cam_T_local = invert_transform(local_T_cam)
        cam = pts @ cam_T_local[:3, :3].T + cam_T_local[:3, 3]
        depth = cam[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = cam[..., :2] / depth[..., None] @ K[:2, :2].T + K[:2, 2]
        starts = ranges[:, 0] - first
        behind = np.minimum.reduceat((depth > 0.05).all(axis=1), starts) == 0
        ahead_any = np.maximum.reduceat((depth > 0.05).any(axis=1), starts) == 1
        lo = np.minimum.reduceat(np.where(depth[..., None] > 0.05, uv, np.inf).min(axis=1), starts)
        hi = np.maximum.reduceat(np.where(depth[..., None] > 0.05, uv, -np.inf).max(axis=1), starts)
        full = behind & ahead_any  # Straddles the camera plane: take the whole image.
        boxes = np.concatenate([np.floor(lo), np.ceil(hi)], axis=1)
        boxes[full] = [0, 0, self.width - 1, self.height - 1]
        boxes[~ahead_any] = [0, 0, -1, -1]
        boxes = np.nan_to_num(boxes, posinf=1e9, neginf=-1e9)
        out[:, 0] = np.clip(boxes[:, 0], 0, self.width - 1)
        out[:, 1] = np.clip(boxes[:, 1], 0, self.height - 1)
        out[:, 2] = np.clip(boxes[:, 2], -1, self.width - 1)
        out[:, 3] = np.clip(boxes[:, 3], -1, self.height - 1)
        empty = (boxes[:, 2] < 0) | (boxes[:, 3] < 0) | (boxes[:, 0] > self.width - 1) | (boxes[:, 1] > self.height - 1)
        out[empty | ~ahead_any] = [0, 0, -1, -1]
        return out

    # ------------------------------------------------------------------------------------------- tables
    def _finish_tables(self, sample_tokens: list[str], annotations: list[dict]) -> None:
        rows, cfg = self.tables.rows, self.config
        samples = [{"token": tok, "timestamp": self.keyframe_us(n), "scene_token": self.token("scene")}
                   for n, tok in enumerate(sample_tokens)]
        link_prev_next(samples)
        rows["sample"].extend(samples)
        for channel, recs in self._per_sensor.items():
            link_prev_next(recs)
            rows["sample_data"].extend(recs)
        rows["scene"].append({"token": self.token("scene"), "log_token": self.log_token, "nbr_samples": len(samples),
                              "first_sample_token": sample_tokens[0], "last_sample_token": sample_tokens[-1],
                              "name": self.name,
                              "description": f"SimScenes seed {cfg.seed}: procedural city drive, {len(samples)} "
                                             f"keyframes"})
        by_agent: dict[int, list[dict]] = {}
        for ann in annotations:
            by_agent.setdefault(ann.pop("_agent"), []).append(ann)
        for a in sorted(by_agent):
            anns = by_agent[a]
            link_prev_next(anns)
            agent = self.world.agents[a]
            rows["instance"].append({"token": self.token("instance", a), "category_token":
                                     CATEGORY_TOKENS[agent.category], "nbr_annotations": len(anns),
                                     "first_annotation_token": anns[0]["token"],
                                     "last_annotation_token": anns[-1]["token"]})
        rows["sample_annotation"].extend(annotations)
        self.report.annotations += len(annotations)
