"""Distributed training on the CPU (gloo): gradients are averaged over the processes (EasyOcc, and the rendering
model with its 2D losses and the pseudo loss), and `easyocc train` runs under torchrun with two processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from easyocc.config import config_from_dict
from easyocc.losses import LossConfig, PseudoLoss
from easyocc.losses.rendering import RenderingLoss, RenderLossConfig
from easyocc.models.easyocc import ModelConfig, build_model
from easyocc.models.rendering import RenderConfig, RenderingOccModel
from easyocc.occ3d import GRID_SHAPE, NUM_CLASSES
from easyocc.training.checkpoint import load_checkpoint
from easyocc.training.distributed import init_distributed, shutdown_distributed
from easyocc.training.objective import Objective, train_step
from model_fixtures import TINY_OVERRIDES, replicate_keyframe, torch_single_thread, write_pseudo_labels  # noqa: F401

pytestmark = pytest.mark.usefixtures("torch_single_thread")

REPO = Path(__file__).resolve().parents[1]
TINY_MODEL = {"backbone": "resnet18", "neck_channels": 8, "feature_channels": 4, "lift_downsample": 8,
              "volume_channels": 4, "volume_blocks": [1, 1]}
LOSS = {"class_weighting": "none"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batch(rank: int) -> dict:
    """A different random keyframe per rank: two cameras looking forward and backward; with what the rendering
    losses read (4 x 8 render intrinsics, two source images per camera 1 m behind and ahead, one of them missing,
    2D semantics)."""
    generator = torch.Generator().manual_seed(100 + rank)
    ego_T_cam = torch.zeros(1, 2, 4, 4)
    ego_T_cam[0, 0, :3, :3] = torch.tensor([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])
    ego_T_cam[0, 1, :3, :3] = torch.tensor([[0.0, 0, -1], [1, 0, 0], [0, -1, 0]])
    ego_T_cam[0, :, 2, 3], ego_T_cam[0, :, 3, 3] = 1.5, 1.0
    K = torch.tensor([[40.0, 0, 31.5], [0, 40, 15.5], [0, 0, 1]]).expand(1, 2, 3, 3).contiguous()
    render_K = K.clone()
    render_K[..., :2, :] /= 8
    source_T_cam = torch.eye(4).repeat(1, 2, 2, 1, 1)
    source_T_cam[..., 2, 3] = torch.tensor([1.0, -1.0])
    return {
        "images": torch.randint(0, 256, (1, 2, 3, 32, 64), generator=generator, dtype=torch.uint8),
        "intrinsics": K,
        "ego_T_cam": ego_T_cam,
        "semantics": torch.randint(0, NUM_CLASSES, (1, *GRID_SHAPE), generator=generator).to(torch.uint8),
        "mask_camera": torch.rand(1, *GRID_SHAPE, generator=generator) > 0.9,
        "render_intrinsics": render_K,
        "source_images": torch.randint(0, 256, (1, 2, 2, 3, 32, 64), generator=generator, dtype=torch.uint8),
        "source_intrinsics": K[:, :, None].expand(1, 2, 2, 3, 3),
        "source_T_cam": source_T_cam,
        "source_valid": torch.tensor([[[True, True], [False, True]]]),
        "semantics_2d": torch.randint(0, NUM_CLASSES, (1, 2, 4, 8), generator=generator).to(torch.uint8),
    }


#: EasyOcc, and the rendering model on a contracted grid with its 2D losses and the pseudo loss.
KINDS = ("easyocc", "rendering")


def _model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "easyocc":
        return build_model(config_from_dict(ModelConfig, TINY_MODEL))
    config = config_from_dict(ModelConfig, {**TINY_MODEL, "contraction": 0.66667})
    return RenderingOccModel(config, RenderConfig(size=(4, 8), init_occupancy=0.01, jitter=0.0))  # no random draws


def _gradients(model: torch.nn.Module, rank: int, kind: str) -> dict[str, torch.Tensor]:
    model.zero_grad()
    pseudo = PseudoLoss(config_from_dict(LossConfig, LOSS))
    objective = Objective(pseudo) if kind == "easyocc" else Objective(pseudo, 0.5, RenderingLoss(RenderLossConfig()))
    train_step(model, objective, _batch(rank), torch.autocast("cpu", enabled=False))["loss"].backward()
    module = model.module if isinstance(model, DistributedDataParallel) else model
    return {name: p.grad.clone() for name, p in module.named_parameters()}


def _ddp_worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    context = init_distributed("cpu")
    grads = {kind: _gradients(DistributedDataParallel(_model(kind)), context.rank, kind) for kind in KINDS}
    torch.save(grads, f"{out}.{rank}")
    shutdown_distributed(context)


@pytest.mark.slow  # two gloo processes
def test_ddp_gradients_are_the_average_over_processes(tmp_path):
    out = str(tmp_path / "grads")
    mp.start_processes(_ddp_worker, args=(2, _free_port(), out), nprocs=2, start_method="spawn")
    for kind in KINDS:
        single = _model(kind)
        per_rank = [_gradients(single, rank, kind) for rank in (0, 1)]
        for rank in (0, 1):
            ddp = torch.load(f"{out}.{rank}")[kind]
            assert ddp.keys() == per_rank[0].keys()
            for name, grad in ddp.items():
                expected = (per_rank[0][name] + per_rank[1][name]) / 2
                torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6, msg=f"{kind}: {name}")
        # Not vacuous: the two ranks' own gradients differ.
        assert not torch.allclose(per_rank[0]["voxel_cnn.head.weight"], per_rank[1]["voxel_cnn.head.weight"])


@pytest.mark.slow  # torchrun starts two training processes
def test_torchrun_two_processes_train(real_nuscenes_root, tmp_path):
    tokens = replicate_keyframe(real_nuscenes_root, tmp_path / "data", copies=3)
    write_pseudo_labels(tmp_path / "labels", "scene-0061", tokens)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(_free_port()), "-m", "easyocc", "train", "--data", str(tmp_path / "data"),
               "--labels", str(tmp_path / "labels"), "--out", str(tmp_path / "run"), "--quiet",
               "--set", *TINY_OVERRIDES, "optim.epochs=1", "checkpoint_every=1"]
    (tmp_path / "config.yaml").write_text("device: cpu\n")
    command[command.index("train") + 1 : command.index("train") + 1] = ["--config", str(tmp_path / "config.yaml")]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    # Three keyframes over two processes: two iterations per process per epoch (one index repeated as padding).
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["iteration"]) for r in log] == [(1, 2)]
    state = load_checkpoint(tmp_path / "run" / "model.pt")
    assert state["iteration"] == 2 and "voxel_cnn.head.weight" in state["model"]
    assert torch.isfinite(state["model"]["voxel_cnn.head.weight"]).all()
