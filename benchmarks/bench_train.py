"""Time per training iteration and peak memory of the EasyOcc model, for configs/demo.yaml and configs/paper.yaml.

One iteration = forward (encoder, lifting, 3D CNN), pseudo loss (CE + Lovász on the camera region), backward,
AdamW step, on a synthetic keyframe of the config's input size (six cameras mounted like nuScenes', random images,
pseudo-labels with a camera mask of ~15 % of the grid, about what real masks hold). Each config runs in its own
process, so its peak memory (CPU: max RSS; GPU: torch's max allocated) is its own. On the GPU the config's AMP
setting applies.

Also measured, where it applies: the lifting against a reference implementation that samples all cameras in one
``grid_sample`` call (the obvious way, materialising (B, N, C, P)), same inputs, same outputs; and the loading of
one real nuScenes keyframe (six 1600x900 JPEGs) at the config's input size, when ../shared/realdata is there.

The rendering-supervised model (``RenderingOccModel``, OccNeRF-style) of the matching rendering config
(RENDERING_CONFIGS: demo -> occnerf-demo, paper -> occnerf): its model (the same encoder and 3D CNN; the paper's on
OccNeRF's contracted 300 x 300 x 24 grid), its ``render`` section and its ``render_loss`` terms (photometric against
two source frames per camera, smoothness, 2D semantics, entropy, distortion), one training step as the loop runs it
(``training.objective.train_step``); with ``--pseudo`` also the same plus the pseudo loss (occnerf-pseudo*); their
time and memory as ratios to EasyOcc's iteration above. And the photometric loss's SSIM (monodepth2's box filters,
written out) against kornia's Gaussian SSIM on the config's photometric shapes: time of forward + backward, and the
difference of the error maps.

With ``--ray-queries``, the EasyOcc model's training step also with QueryOcc's ray-query loss
(``loss.ray_queries``, the config's sampling: 1024 rays per camera, 4 free + 2 occupied queries each) alone
(``loss.pseudo_weight=0``) and beside the pseudo loss, on 2D depth and semantic maps at the input size of a synthetic
scene seen by the same cameras (a ground plane and a 2 m wall around the car 11 m away, sky above); their time and
memory as ratios to the pseudo loss's iteration above (``train_iteration``), each in its own process.

    python benchmarks/bench_train.py [--configs demo paper] [--device auto] [--iterations 5] [--paper-iterations 2]
                                     [--no-rendering] [--pseudo] [--ray-queries]

Prints JSON (medians).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def six_camera_rig(image_size: tuple[int, int]):
    """Intrinsics (6, 3, 3) for ``image_size`` (H, W) and ego_T_cam (6, 4, 4) of cameras around the car,
    mounted and aimed as nuScenes' (yaws 0, -55, 55, 180, 110, -110 degrees, 1.5 m high)."""
    import numpy as np

    from easyocc.geometry import scale_intrinsics

    height, width = image_size
    K_full = np.array([[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]])
    K = scale_intrinsics(K_full, width / 1600, height / 900)
    poses = []
    for yaw in np.deg2rad([0, -55, 55, 180, 110, -110]):
        forward = np.array([np.cos(yaw), np.sin(yaw), 0.0])
        right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
        T = np.eye(4)
        T[:3, :3] = np.stack([right, [0.0, 0.0, -1.0], forward], axis=1)
        T[:3, 3] = [1.0 * np.cos(yaw), 1.0 * np.sin(yaw), 1.5]
        poses.append(T)
    return np.stack([K] * 6), np.stack(poses)


def synthetic_batch(config, device):
    import numpy as np
    import torch

    from easyocc.occ3d import FREE, GRID_SHAPE, OCC3D_GRID

    generator = torch.Generator().manual_seed(0)
    height, width = config.data.input_size
    K, ego_T_cam = six_camera_rig((height, width))
    centers = OCC3D_GRID.centers()
    radius = np.hypot(centers[..., 0], centers[..., 1])
    semantics = np.full(GRID_SHAPE, FREE, dtype=np.uint8)
    semantics[:, :, 2] = 11
    semantics[(radius > 10) & (radius < 12) & (centers[..., 2] < 2)] = 15
    mask = (radius < 25) & (centers[..., 2] < 2.6)  # ~15 % of the grid
    return {
        "images": torch.randint(0, 256, (1, 6, 3, height, width), generator=generator, dtype=torch.uint8).to(device),
        "intrinsics": torch.from_numpy(K).float()[None].to(device),
        "ego_T_cam": torch.from_numpy(ego_T_cam).float()[None].to(device),
        "semantics": torch.from_numpy(semantics)[None].to(device),
        "mask_camera": torch.from_numpy(mask)[None].to(device),
    }


#: The ray-query variants measured beside the pseudo loss (``--ray-queries``): training overrides of each.
RAY_QUERY_VARIANTS = {
    "ray_queries_alone": ["loss.pseudo_weight=0", "loss.ray_queries.weight=1"],
    "pseudo_and_ray_queries": ["loss.ray_queries.weight=0.5"],
}
WALL_RADIUS, WALL_HEIGHT = 11.0, 2.0


def ray_query_maps(batch: dict) -> dict:
    """``depth_2d`` (1, 6, H, W) z-depth and ``semantics_2d`` (1, 6, H, W) at the input size of the batch's cameras,
    for a ground plane z = 0 (driveable surface) and a wall of radius 11 m, 2 m high (manmade), sky elsewhere:
    exact ray casts, so that the ray queries are as many and as valid as on a street."""
    import torch

    from easyocc.losses.ray_queries import pixel_rays
    from easyocc.occ3d import FREE

    intrinsics, ego_T_cam = batch["intrinsics"][0].cpu(), batch["ego_T_cam"][0].cpu()
    height, width = batch["images"].shape[-2:]
    v, u = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    cameras = intrinsics.shape[0]
    origins, directions, cosines = pixel_rays(intrinsics, ego_T_cam, u.reshape(1, -1).expand(cameras, -1),
                                              v.reshape(1, -1).expand(cameras, -1))
    t_ground = torch.where(directions[..., 2] < 0, -origins[..., 2] / directions[..., 2].clamp(max=-1e-9),
                           torch.full_like(cosines, torch.inf))
    # The far root of |o + t d|_xy = R (the cameras stand inside the wall).
    a = directions[..., :2].square().sum(-1)
    b = 2 * (origins[..., :2] * directions[..., :2]).sum(-1)
    c = origins[..., :2].square().sum(-1) - WALL_RADIUS**2
    t_wall = (-b + (b * b - 4 * a * c).clamp_min(0).sqrt()) / (2 * a).clamp_min(1e-12)
    wall_z = origins[..., 2] + t_wall * directions[..., 2]
    t_wall = torch.where((wall_z >= 0) & (wall_z <= WALL_HEIGHT), t_wall, torch.full_like(t_wall, torch.inf))
    t = torch.minimum(t_ground, t_wall)
    semantics = torch.where(t_wall < t_ground, 15, 11)
    semantics = torch.where(torch.isinf(t), FREE, semantics).to(torch.uint8)
    depth = torch.where(torch.isinf(t), torch.zeros_like(t), t * cosines).float()
    device = batch["images"].device
    return {"depth_2d": depth.view(1, cameras, height, width).to(device),
            "semantics_2d": semantics.view(1, cameras, height, width).to(device),
            "render_intrinsics": batch["intrinsics"]}


def current_memory_mb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


#: The rendering model's config measured beside each EasyOcc config (its "+ pseudo loss" twin: ``-pseudo`` added
#: after "occnerf").
RENDERING_CONFIGS = {"demo": "occnerf-demo", "paper": "occnerf"}


def pseudo_twin(name: str) -> str:
    """occnerf -> occnerf-pseudo, occnerf-demo -> occnerf-pseudo-demo."""
    return name.replace("occnerf", "occnerf-pseudo", 1)


def timed_steps(step, iterations: int) -> tuple[float, list[float]]:
    """One warm-up call of ``step`` (which returns its own seconds), then ``iterations`` timed ones."""
    warmup = step()
    return warmup, [step() for _ in range(iterations)]


class TrainingSetup:
    """What a child's training steps share: configs/<name>.yaml, the device (seeded; cudnn autotuning on CUDA), the
    config's mixed precision (CUDA only) with its loss scaler, and a device synchronisation for timing."""

    def __init__(self, name: str, device_name: str, overrides: list[str] = ()):
        import torch

        from easyocc.config import load_config
        from easyocc.training.config import TrainConfig
        from easyocc.devices import resolve_device

        self.config = load_config(TrainConfig, REPO / "configs" / f"{name}.yaml", list(overrides))
        self.device = device = resolve_device(device_name, local_rank=0)
        torch.manual_seed(0)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.use_amp = self.config.optim.amp and device.type == "cuda"
        self.dtype = torch.bfloat16 if self.config.optim.amp_dtype == "bfloat16" else torch.float16
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.use_amp and self.dtype == torch.float16)

    def autocast(self):
        import torch

        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.use_amp)

    def sync(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def optimise(self, loss, optimizer) -> None:
        """Backward (through the loss scaler) and the optimiser step, then a device synchronisation."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()
        self.sync()


def measure_config(name: str, device_name: str, iterations: int) -> dict:
    """Run in a child process: time ``iterations`` training steps of configs/<name>.yaml (with the training
    overrides of $BENCH_OVERRIDES, a JSON list) after one warm-up."""
    import numpy as np

    from easyocc.models.easyocc import build_model
    from easyocc.training.cost import memory_kind, peak_memory_mb
    from easyocc.training.loop import make_optimizer
    from easyocc.training.objective import build_objective, train_step

    overrides = json.loads(os.environ.get("BENCH_OVERRIDES", "[]"))
    setup = TrainingSetup(name, device_name, overrides)
    config, device, use_amp, dtype, sync = setup.config, setup.device, setup.use_amp, setup.dtype, setup.sync
    model = build_model(config.model, load_weights=False).to(device).train()
    optimizer = make_optimizer(model, config.optim)
    objective = build_objective(config, np.ones(18, dtype=np.float32), None).to(device)
    criterion = objective.pseudo
    batch = synthetic_batch(config, device)
    if config.uses_ray_queries:
        batch.update(ray_query_maps(batch))

    def step() -> float:
        sync()
        start = time.perf_counter()
        losses = train_step(model, objective, batch, setup.autocast())
        setup.optimise(losses["loss"], optimizer)
        return time.perf_counter() - start

    warmup, times = timed_steps(step, iterations)
    result = {
        "iteration_s_median": statistics.median(times),
        "iteration_s": [round(t, 4) for t in times],
        "warmup_s": round(warmup, 3),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "memory_kind": memory_kind(device),
        "input": f"6 x {config.data.input_size[0]}x{config.data.input_size[1]}",
        "backbone": config.model.backbone,
        "lift_grid": list(config.model.lift_grid.shape),
        "amp": f"{config.optim.amp_dtype}" if use_amp else "off",
        "parameters_million": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
    }
    if overrides:
        result["overrides"] = overrides
        result["losses"] = list(objective.keys)
    if criterion is not None:
        result["components_s"] = component_times(model, criterion, batch, config, device, use_amp, dtype, sync)
    return result


def component_times(model, criterion, batch, config, device, use_amp, dtype, sync) -> dict:
    """Forward-only times of the parts (one run each, after the warm-up above)."""
    import torch

    timings = {}
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=use_amp):
        sync()
        t = time.perf_counter()
        features = model.image_features(batch["images"])
        sync()
        timings["encoder_forward"] = time.perf_counter() - t
        t = time.perf_counter()
        volume = model.lifter(features, batch["intrinsics"], batch["ego_T_cam"], tuple(batch["images"].shape[-2:]))
        sync()
        timings["lifting_forward"] = time.perf_counter() - t
        t = time.perf_counter()
        logits = model.voxel_cnn(volume).float()
        if logits.shape[-3:] != batch["semantics"].shape[-3:]:
            logits = torch.nn.functional.interpolate(logits, size=batch["semantics"].shape[-3:], mode="trilinear")
        sync()
        timings["voxel_cnn_forward"] = time.perf_counter() - t
        t = time.perf_counter()
        criterion(logits, batch["semantics"], batch["mask_camera"])
        sync()
        timings["loss_forward"] = time.perf_counter() - t
    return {k: round(v, 4) for k, v in timings.items()}


def rendering_batch(config, device) -> dict:
    """The synthetic keyframe of ``synthetic_batch`` plus what the rendering losses read (the dataset's keys):
    render intrinsics for ``config.render.size``, two random source images per camera 0.8 m behind and ahead along
    its axis, random 2D semantics at the render size."""
    import numpy as np
    import torch

    from easyocc.geometry import scale_intrinsics

    batch = synthetic_batch(config, device)
    generator = torch.Generator().manual_seed(1)
    height, width = config.data.input_size
    render_h, render_w = config.render.size
    K = batch["intrinsics"][0].cpu().numpy()
    render_K = np.stack([scale_intrinsics(k, render_w / width, render_h / height) for k in K])
    source_T_cam = torch.eye(4).repeat(1, 6, 2, 1, 1)
    source_T_cam[..., 2, 3] = torch.tensor([0.8, -0.8])
    return {
        **batch,
        "render_intrinsics": torch.from_numpy(render_K).float()[None].to(device),
        "source_images": torch.randint(0, 256, (1, 6, 2, 3, height, width), generator=generator,
                                       dtype=torch.uint8).to(device),
        "source_T_cam": source_T_cam.to(device),
        "source_intrinsics": batch["intrinsics"][:, :, None].expand(-1, -1, 2, -1, -1).contiguous(),
        "source_valid": torch.ones(1, 6, 2, dtype=torch.bool, device=device),
        "semantics_2d": torch.randint(0, 18, (1, 6, render_h, render_w), generator=generator,
                                      dtype=torch.uint8).to(device),
    }


def measure_rendering(name: str, device_name: str, iterations: int) -> dict:
    """Run in a child process: training steps of the rendering model of configs/<name>.yaml (a rendering config),
    as the training loop runs them (``train_step`` with the config's objective), with the parts of the forward
    pass timed on the last step."""
    import numpy as np

    from easyocc.losses.rendering import OCCNERF_CLASS_FREQUENCIES
    from easyocc.losses import class_weights_from_counts
    from easyocc.models.rendering import RaySchedule, build_occupancy_model
    from easyocc.training.cost import memory_kind, peak_memory_mb
    from easyocc.training.loop import make_optimizer
    from easyocc.training.objective import build_objective, train_step

    setup = TrainingSetup(name, device_name)
    config, device, sync = setup.config, setup.device, setup.sync
    render = config.render
    model = build_occupancy_model(config.model, render, load_weights=False).to(device).train()
    optimizer = make_optimizer(model, config.optim)
    objective = build_objective(config, np.ones(18, dtype=np.float32),
                                class_weights_from_counts(OCCNERF_CLASS_FREQUENCIES)).to(device)
    batch = rendering_batch(config, device)
    timings: dict[str, float] = {}

    def step() -> float:
        sync()
        start = time.perf_counter()
        losses = train_step(model, objective, batch, setup.autocast())
        sync()
        timings["forward_and_losses"] = time.perf_counter() - start
        setup.optimise(losses["loss"], optimizer)
        return time.perf_counter() - start

    warmup, times = timed_steps(step, iterations)
    with setup.autocast():  # the parts of the forward pass, once more
        sync()
        start = time.perf_counter()
        volume = model.volume(batch["images"], batch["intrinsics"], batch["ego_T_cam"])
        sync()
        timings["volume_forward"] = time.perf_counter() - start
        model.render(volume.detach(), batch["render_intrinsics"], batch["ego_T_cam"])
        sync()
        timings["render_forward"] = time.perf_counter() - start - timings["volume_forward"]
    schedule = RaySchedule.for_grid(model.lifter.grid, render, float(batch["ego_T_cam"][..., :3, 3].norm(dim=-1).max()))
    return {
        "config": name,
        "iteration_s_median": statistics.median(times),
        "iteration_s": [round(t, 4) for t in times],
        "warmup_s": round(warmup, 3),
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "memory_kind": memory_kind(device),
        "losses": list(objective.keys),
        "lift_grid": list(model.lifter.grid.shape),
        "rays": 6 * render.size[0] * render.size[1],
        "render_size": list(render.size),
        "samples_per_ray": schedule.count,
        "semantic_samples_per_ray": -(-schedule.count // render.semantic_every),
        "chunk_rays": render.chunk_rays,
        "parts_s": {k: round(v, 4) for k, v in timings.items()},
    }


def measure_ssim(name: str, device_name: str, iterations: int) -> dict:
    """The photometric loss's SSIM error (monodepth2's 3 x 3 box) against kornia's (``metrics.ssim``, a 3-tap
    Gaussian), forward + backward on the config's photometric shapes (6 cameras x 2 source frames, input size)."""
    import torch
    from kornia.metrics import ssim

    from easyocc.config import load_config
    from easyocc.losses.rendering import ssim_error
    from easyocc.training.config import TrainConfig
    from easyocc.devices import resolve_device

    config = load_config(TrainConfig, REPO / "configs" / f"{name}.yaml")
    device = resolve_device(device_name, local_rank=0)
    height, width = config.data.input_size
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(12, 3, height, width, generator=generator).to(device)
    warped = (target + 0.1 * torch.randn(12, 3, height, width, generator=generator).to(device)).clamp(0, 1)
    warped.requires_grad_()

    def seconds(fn) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn().mean().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    kornia = lambda: ((1 - ssim(warped, target, 3, max_val=1.0, eps=0.0)) / 2).clamp(0, 1)  # noqa: E731
    ours = lambda: ssim_error(warped, target)  # noqa: E731
    seconds(kornia), seconds(ours)  # warm-up
    # Alternated, so that a change of load on a shared machine hits both alike.
    pairs = [(seconds(kornia), seconds(ours)) for _ in range(max(iterations, 5))]
    kornia_s, ours_s = (statistics.median(times) for times in zip(*pairs))
    with torch.no_grad():
        difference = kornia() - ours()
    return {"images": f"12 x 3 x {height}x{width}", "box_ssim_s": round(ours_s, 4), "kornia_ssim_s": round(kornia_s, 4),
            "time_ratio_kornia_over_box": round(kornia_s / ours_s, 3),
            "max_abs_difference": round(float(difference.abs().max()), 5),
            "mean_abs_difference": round(float(difference.abs().mean()), 6)}


def reference_lifting(lifter, features, intrinsics, ego_T_cam, image_size):
    """All cameras in one grid_sample call: (B * N, C, 1, P) samples at once, then the masked mean."""
    import torch
    import torch.nn.functional as F

    from easyocc.models.lifting import invert_rigid, project_to_image

    batch, cameras, channels = features.shape[:3]
    cam_T_ego = invert_rigid(ego_T_cam.float()).flatten(0, 1)
    grid, visible = project_to_image(lifter.centers, cam_T_ego, intrinsics.float().flatten(0, 1), image_size)
    sampled = F.grid_sample(features.float().flatten(0, 1), grid[:, None], align_corners=False,
                            padding_mode="border")[:, :, 0].unflatten(0, (batch, cameras))
    weight = visible.float().unflatten(0, (batch, cameras))
    total = (sampled * weight[:, :, None]).sum(1)
    seen = weight.sum(1)
    return total / seen.clamp(min=1)[:, None], seen


def measure_lifting(name: str, device_name: str, iterations: int) -> dict:
    """Lifting forward + backward: this implementation vs the all-cameras-at-once reference (child process each)."""
    import torch

    from easyocc.config import load_config
    from easyocc.models.lifting import VoxelLifter
    from easyocc.training.config import TrainConfig
    from easyocc.devices import resolve_device
    from easyocc.training.cost import peak_memory_mb

    config = load_config(TrainConfig, REPO / "configs" / f"{name}.yaml")
    device = resolve_device(device_name, local_rank=0)
    stride = config.model.feature_stride
    height, width = config.data.input_size
    K, ego_T_cam = six_camera_rig((height, width))
    lifter = VoxelLifter(config.model.lift_grid).to(device)
    features = torch.randn(1, 6, config.model.feature_channels, height // stride, width // stride, device=device,
                           requires_grad=True)
    K = torch.from_numpy(K).float()[None].to(device)
    ego_T_cam = torch.from_numpy(ego_T_cam).float()[None].to(device)

    def ours():
        volume = lifter(features, K, ego_T_cam, (height, width))
        volume[:, : features.shape[2]].sum().backward()
        return volume

    def reference():
        mean, _ = reference_lifting(lifter, features, K, ego_T_cam, (height, width))
        mean.sum().backward()
        return mean

    def timed(fn):
        fn()
        out = []
        for _ in range(iterations):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            out.append(time.perf_counter() - t)
        return statistics.median(out)

    which = os.environ["BENCH_LIFTING_WHICH"]
    baseline = current_memory_mb(device)
    if which == "check":
        a = lifter(features, K, ego_T_cam, (height, width))[:, : features.shape[2]].flatten(2)
        b, _ = reference_lifting(lifter, features, K, ego_T_cam, (height, width))
        return {"max_abs_difference": float((a - b).abs().max())}
    seconds = timed(ours if which == "ours" else reference)
    return {"seconds": round(seconds, 4), "extra_peak_memory_mb": round(peak_memory_mb(device) - baseline, 1)}


def measure_loading(name: str) -> dict | None:
    """Loading one real nuScenes keyframe (six 1600x900 JPEGs) at the config's input size, one process."""
    from easyocc.config import load_config
    from easyocc.data.occ_dataset import load_camera_image
    from easyocc.training.config import TrainConfig

    images = sorted((REPO.parent / "shared" / "realdata" / "nuscenes-scene0061-kf0" / "samples").glob("CAM_*/*.jpg"))
    if not images:
        images = sorted(Path("/work/shared/realdata/nuscenes-scene0061-kf0/samples").glob("CAM_*/*.jpg"))
    if len(images) != 6:
        return None
    import numpy as np

    config = load_config(TrainConfig, REPO / "configs" / f"{name}.yaml")
    K = np.array([[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]])
    times = []
    for _ in range(5):
        t = time.perf_counter()
        for path in images:
            load_camera_image(path, K, (1600, 900), config.data)
        times.append(time.perf_counter() - t)
    return {"keyframe_s_median": round(statistics.median(times), 4), "images": "6 real nuScenes 1600x900 JPEGs"}


def run_child(kind: str, name: str, device: str, iterations: int, extra_env: dict | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           **(extra_env or {})}
    command = [sys.executable, __file__, "--child", kind, name, device, str(iterations)]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def ray_query_entries(pseudo: dict, name: str, device: str, iterations: int) -> dict:
    """The training step with the ray queries (RAY_QUERY_VARIANTS), each in its own process, with its time and
    memory as ratios to ``pseudo`` (the pseudo loss's step, measured in the same run)."""
    out = {}
    for variant, overrides in RAY_QUERY_VARIANTS.items():
        result = run_child("train", name, device, iterations, {"BENCH_OVERRIDES": json.dumps(overrides)})
        if "iteration_s_median" in result and "iteration_s_median" in pseudo:
            result["time_ratio_over_pseudo"] = round(result["iteration_s_median"] / pseudo["iteration_s_median"], 3)
            result["memory_ratio_over_pseudo"] = round(result["peak_memory_mb"] / pseudo["peak_memory_mb"], 3)
        out[f"{variant}_train_iteration"] = result
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["demo", "paper"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations (demo config, and on a GPU)")
    parser.add_argument("--paper-iterations", type=int, default=2, help="timed iterations of the paper config on the CPU")
    parser.add_argument("--no-rendering", action="store_true", help="skip the rendering model and the SSIM check")
    parser.add_argument("--pseudo", action="store_true", help="also the rendering model with the pseudo loss")
    parser.add_argument("--ray-queries", action="store_true",
                        help="also EasyOcc with the ray-query loss alone and beside the pseudo loss")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, name, device, iterations = args.child
        sys.path.insert(0, str(REPO / "src"))
        measure = {"train": measure_config, "lifting": measure_lifting, "render": measure_rendering,
                   "ssim": measure_ssim}[kind]
        print(json.dumps(measure(name, device, int(iterations)) if kind != "loading" else measure_loading(name)))
        return

    sys.path.insert(0, str(REPO / "src"))
    import torch

    from easyocc.devices import resolve_device

    device = resolve_device(args.device, local_rank=0)
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "configs": {},
    }
    for name in args.configs:
        iterations = args.paper_iterations if (name == "paper" and device.type == "cpu") else args.iterations
        entry = {"train_iteration": run_child("train", name, args.device, iterations)}
        ours = run_child("lifting", name, args.device, iterations, {"BENCH_LIFTING_WHICH": "ours"})
        reference = run_child("lifting", name, args.device, iterations, {"BENCH_LIFTING_WHICH": "reference"})
        check = run_child("lifting", name, args.device, 1, {"BENCH_LIFTING_WHICH": "check"})
        lifting = {"ours": ours, "reference_all_cameras_at_once": reference, **check}
        if "seconds" in ours and "seconds" in reference:
            lifting["time_ratio_reference_over_ours"] = round(reference["seconds"] / ours["seconds"], 3)
            lifting["memory_ratio_reference_over_ours"] = round(
                reference["extra_peak_memory_mb"] / max(ours["extra_peak_memory_mb"], 1.0), 3)
        entry["lifting_forward_backward"] = lifting
        if args.ray_queries:
            entry.update(ray_query_entries(entry["train_iteration"], name, args.device, iterations))
        entry["data_loading"] = measure_loading(name)
        if not args.no_rendering:
            easyocc = entry["train_iteration"]
            variants = [RENDERING_CONFIGS[name]] + ([pseudo_twin(RENDERING_CONFIGS[name])] if args.pseudo else [])
            for variant in variants:
                rendering = run_child("render", variant, args.device, iterations)
                if "iteration_s_median" in rendering and "iteration_s_median" in easyocc:
                    rendering["time_ratio_over_easyocc"] = round(
                        rendering["iteration_s_median"] / easyocc["iteration_s_median"], 2)
                    rendering["memory_ratio_over_easyocc"] = round(
                        rendering["peak_memory_mb"] / easyocc["peak_memory_mb"], 2)
                entry[f"{variant}_train_iteration"] = rendering
            entry["photometric_ssim"] = run_child("ssim", name, args.device, iterations)
        report["configs"][name] = entry
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
