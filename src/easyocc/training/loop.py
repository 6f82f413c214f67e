"""Training the EasyOcc model on pseudo-labels: one process (CPU or GPU) or many under torchrun (DDP).

A run folder holds ``config.yaml`` (the resolved config), ``class_weights.json``, ``checkpoints/last.pt`` (model,
optimiser, scheduler, loss scaler, RNG states and position; rewritten atomically at every epoch end and every
``checkpoint_every`` iterations), ``model.pt`` (weights + config, at the end), ``train_log.jsonl`` (one line per
epoch: losses, seconds, median seconds per iteration, peak memory) and ``tb/`` (TensorBoard). The data order is a
function of the seed and the epoch only, so a run resumed from any checkpoint ends with the same weights as an
uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset
from tqdm import tqdm

from easyocc.config import config_to_dict, save_config
from easyocc.data.occ_dataset import InputLoader, OccDataset, split_keyframes
from easyocc.errors import EasyOccError, InputError
from easyocc.fileio import atomic_write, require_folder_or_absent, save_json, sweep_temporaries, undo_on_failure
from easyocc.losses import PseudoLoss, class_counts, class_weights_from_counts
from easyocc.models.easyocc import EasyOccModel, build_model
from easyocc.occ3d import CLASS_NAMES, read_labels
from easyocc.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, seed_everything, set_rng_state
from easyocc.training.config import OptimConfig, TrainConfig
from easyocc.training.cost import IterationClock
from easyocc.training.distributed import (
    DistContext,
    EpochSampler,
    all_reduce_sum,
    init_distributed,
    shutdown_distributed,
)

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "class_weights.json"
LAST_CHECKPOINT = "checkpoints/last.pt"
MODEL_FILE = "model.pt"
LOG_FILE = "train_log.jsonl"
LOSS_KEYS = ("loss", "ce", "lovasz")
#: What a run writes into its folder; a new run that fails before its first checkpoint removes what it made of these.
RUN_ENTRIES = (CONFIG_FILE, WEIGHTS_FILE, "checkpoints", MODEL_FILE, LOG_FILE, "tb")


def learning_rate_factor(optim: OptimConfig, iterations_per_epoch: int) -> Callable[[int], float]:
    """The multiplier of the base learning rates at an iteration, for ``LambdaLR``.

    A plain function on purpose: ``LambdaLR`` stores nothing of it in its state, so a resumed run follows the
    schedule of its (possibly extended) config rather than the one saved with the checkpoint.
    """

    def factor(iteration: int) -> float:
        warmup = min(1.0, (iteration + 1) / optim.warmup_iters) if optim.warmup_iters else 1.0
        if optim.schedule == "constant":
            return warmup
        if optim.schedule == "step":
            epoch = iteration // iterations_per_epoch
            return warmup * optim.gamma ** sum(epoch >= m for m in optim.milestones)
        total = optim.epochs * iterations_per_epoch
        return warmup * 0.5 * (1.0 + math.cos(math.pi * min(iteration, total) / total))

    return factor


class _LabelCounts(Dataset):
    """Per-keyframe class counts of the pseudo-labels, inside the loss region."""

    def __init__(self, files: list[Path], region: str):
        self.files, self.region = files, region

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> np.ndarray:
        labels = read_labels(self.files[i], keys=("semantics", "mask_camera"))
        return class_counts(labels.semantics, labels.mask_camera if self.region == "camera" else None)


def compute_class_weights(dataset: OccDataset, config: TrainConfig, context: DistContext, show_progress: bool) -> dict:
    """Class counts over all training labels (each process counts a share; the counts are summed) -> weights."""
    files = [dataset.label_file(i) for i in range(context.rank, len(dataset), context.world_size)]
    loader = InputLoader(_LabelCounts(files, config.loss.region), batch_size=None,
                         num_workers=min(config.data.num_workers, len(files)))
    counts = torch.zeros(len(CLASS_NAMES), dtype=torch.float64)
    bar = tqdm(loader, desc="class statistics", unit="label", disable=not (show_progress and context.is_main))
    for item in bar:
        counts += torch.as_tensor(item, dtype=torch.float64)
    counts = all_reduce_sum(counts.to(context.device), context).cpu().numpy().astype(np.int64)
    if counts.sum() == 0:
        raise EasyOccError(f"the training labels have no labelled voxel in the loss region '{config.loss.region}'")
    return {
        "method": config.loss.class_weighting,
        "region": config.loss.region,
        "classes": list(CLASS_NAMES),
        "counts": counts.tolist(),
        "weights": class_weights_from_counts(counts, config.loss.class_weighting).tolist(),
    }


def _load_class_weights(path: Path) -> dict:
    try:
        record = json.loads(path.read_text())
        weights = record["weights"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(path, f"unreadable class weights ({type(exc).__name__}: {exc})") from None
    if len(weights) != len(CLASS_NAMES):
        raise InputError(path, f"expected {len(CLASS_NAMES)} weights, found {len(weights)}")
    return record


def _prepare_run_dir(run_dir: Path, resume: bool) -> None:
    require_folder_or_absent(run_dir, "run folder")
    last = run_dir / LAST_CHECKPOINT
    if resume and not last.is_file():
        raise InputError(last, "no checkpoint to resume from")
    if not resume and (last.exists() or (run_dir / MODEL_FILE).exists()):
        raise InputError(run_dir, "already holds a training run; pass --resume to continue it, or pick another --out")


def make_optimizer(model: EasyOccModel, optim: OptimConfig) -> torch.optim.AdamW:
    """AdamW with the image encoder (ResNet + neck) at ``encoder_lr`` and the 3D part at ``lr``."""
    groups = [
        {"params": model.encoder_parameters(), "lr": optim.encoder_lr, "name": "encoder"},
        {"params": model.volume_parameters(), "lr": optim.lr, "name": "volume"},
    ]
    return torch.optim.AdamW(groups, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay)


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _summed(sums: torch.Tensor, count: int, context: DistContext) -> tuple[dict, int]:
    """Loss sums (a float64 tensor in LOSS_KEYS order) and their count, summed over the processes."""
    totals = all_reduce_sum(torch.cat([sums, sums.new_tensor([count])]), context).tolist()
    return dict(zip(LOSS_KEYS, totals[:-1])), int(totals[-1])


def _write_log_line(path: Path, record: dict) -> None:
    lines = path.read_text().splitlines() if path.is_file() else []
    with atomic_write(path, "w") as handle:
        handle.write("\n".join([*lines, json.dumps(record)]) + "\n")


def train_step(
    model: torch.nn.Module,
    criterion: PseudoLoss,
    batch: dict,
    amp: contextlib.AbstractContextManager,
) -> dict[str, torch.Tensor]:
    """Forward and loss of one batch (on the model's device); the caller runs backward and the optimiser."""
    with amp:
        logits = model(batch["images"], batch["intrinsics"], batch["ego_T_cam"])
    return criterion(logits, batch["semantics"], batch["mask_camera"])


def train(
    config: TrainConfig,
    data_root: str | os.PathLike,
    labels_dir: str | os.PathLike,
    run_dir: str | os.PathLike,
    resume: bool = False,
    show_progress: bool = True,
) -> Path:
    """Train, writing the run folder; returns the path of ``model.pt``. Under torchrun every process calls this.

    A new run that fails (bad input, an interruption) before it wrote its first checkpoint leaves nothing behind:
    what it had written (config.yaml, class_weights.json, tb/, ...) is removed, as are the folders made for it.
    """
    run_dir = Path(run_dir)
    _prepare_run_dir(run_dir, resume)
    context = init_distributed(config.device)
    if context.is_main:
        sweep_temporaries(run_dir)  # half checkpoints of a killed run
    nothing_to_undo = lambda: resume or not context.is_main or (run_dir / LAST_CHECKPOINT).exists()  # noqa: E731
    try:
        with undo_on_failure(run_dir, RUN_ENTRIES, keep=nothing_to_undo):
            return _Run(config, Path(data_root), Path(labels_dir), run_dir, resume, show_progress, context).train()
    finally:
        shutdown_distributed(context)


class _Run:
    """One process's share of a training run: the data, the model and its optimisation state, the run folder."""

    def __init__(self, config: TrainConfig, data_root: Path, labels_dir: Path, run_dir: Path, resume: bool,
                 show_progress: bool, context: DistContext):
        self.config, self.run_dir, self.context = config, run_dir, context
        self.show_progress = show_progress and context.is_main
        device = self.device = context.device
        seed_everything(config.seed)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        keyframes = split_keyframes(data_root, config.data.version, config.data.split)
        self.dataset = OccDataset(keyframes, config.data, labels_dir)
        if len(self.dataset) == 0:
            raise EasyOccError(f"no training keyframes in split '{config.data.split}' of {data_root}")

        weights_path = run_dir / WEIGHTS_FILE
        if resume and weights_path.is_file():
            self.class_weights = _load_class_weights(weights_path)
        else:
            self.class_weights = compute_class_weights(self.dataset, config, context, show_progress)
        if context.is_main:
            save_config(run_dir / CONFIG_FILE, config)
            save_json(weights_path, self.class_weights)
        weights = np.asarray(self.class_weights["weights"], dtype=np.float32)
        self.criterion = PseudoLoss(config.loss, weights).to(device)

        self.model = build_model(config.model, load_weights=not resume).to(device)
        self.optimizer = make_optimizer(self.model, config.optim)
        self.sampler = EpochSampler(len(self.dataset), context.world_size, context.rank, config.seed)
        self.iterations_per_epoch = math.ceil(self.sampler.per_replica / config.optim.batch_size)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, learning_rate_factor(config.optim, self.iterations_per_epoch))
        use_amp = config.optim.amp and device.type == "cuda"
        amp_dtype = torch.bfloat16 if config.optim.amp_dtype == "bfloat16" else torch.float16
        self.amp = torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=use_amp)
        self.scaler = torch.amp.GradScaler(device.type, enabled=use_amp and amp_dtype == torch.float16)
        self.position = {"epoch": 0, "batch": 0, "iteration": 0, "sums": dict.fromkeys(LOSS_KEYS, 0.0), "count": 0}
        if resume:
            # On the CPU: RNG states must stay CPU tensors; load_state_dict moves the rest to the device.
            self._restore(load_checkpoint(run_dir / LAST_CHECKPOINT, map_location="cpu"))
        self.net = DistributedDataParallel(self.model, device_ids=[device.index] if device.type == "cuda" else None) \
            if context.distributed else self.model
        self.writer = None
        if context.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=self.position["iteration"] if resume else None)

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        self.position = state["position"]

    def _save(self, position: dict, epoch_end: bool) -> None:
        """Rank 0 writes ``checkpoints/last.pt`` (and, when kept, ``epoch_NNN.pt``) atomically."""
        if not self.context.is_main:
            return
        state = {
            "config": config_to_dict(self.config),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "position": position,
        }
        save_checkpoint(self.run_dir / LAST_CHECKPOINT, state)
        if epoch_end and self.config.keep_epoch_checkpoints:
            named = self.run_dir / "checkpoints" / f"epoch_{position['epoch']:03d}.pt"
            named.unlink(missing_ok=True)
            os.link(self.run_dir / LAST_CHECKPOINT, named)

    def train(self) -> Path:
        loader = InputLoader(self.dataset, batch_size=self.config.optim.batch_size, sampler=self.sampler,
                             num_workers=self.config.data.num_workers, pin_memory=self.device.type == "cuda")
        iteration = self.position["iteration"]
        self.net.train()
        try:
            for epoch in range(self.position["epoch"], self.config.optim.epochs):
                iteration = self._run_epoch(loader, epoch, iteration)
        finally:
            if self.writer is not None:
                self.writer.close()
        model_path = self.run_dir / MODEL_FILE
        if self.context.is_main:
            save_checkpoint(model_path, {"config": config_to_dict(self.config), "model": self.model.state_dict(),
                                         "class_weights": self.class_weights, "iteration": iteration})
        return model_path

    def _step(self, batch: dict) -> torch.Tensor:
        """One optimisation step; returns the detached (loss, ce, lovasz) on the device (no synchronisation)."""
        losses = train_step(self.net, self.criterion, _to_device(batch, self.device), self.amp)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses["loss"]).backward()
        if self.config.optim.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return torch.stack([losses[k].detach() for k in LOSS_KEYS]).double()

    def _run_epoch(self, loader: InputLoader, epoch: int, iteration: int) -> int:
        config, position = self.config, self.position
        start = position["batch"] if epoch == position["epoch"] else 0
        # A run resumed mid-epoch: the partial sums were saved summed over the processes; rank 0 carries them.
        carried = bool(start) and self.context.is_main
        sums = torch.tensor([position["sums"][k] if carried else 0.0 for k in LOSS_KEYS], dtype=torch.float64,
                            device=self.device)
        count = position["count"] if carried else 0
        self.sampler.set_epoch(epoch, start * config.optim.batch_size)
        started = time.perf_counter()
        clock = IterationClock(self.device)
        bar = tqdm(loader, total=self.iterations_per_epoch, initial=start, unit="it", dynamic_ncols=True,
                   desc=f"epoch {epoch + 1}/{config.optim.epochs}", disable=not self.show_progress)
        for batch_index, batch in enumerate(bar, start=start):
            values = self._step(batch)
            clock.tick()
            sums += values
            count += 1
            iteration += 1
            if iteration % config.log_every == 0:  # reading the loss waits for the device: only now and then
                self._log(values, iteration, (batch_index + 1 - start) / max(time.perf_counter() - started, 1e-9), bar)
            if config.checkpoint_every and iteration % config.checkpoint_every == 0 \
                    and batch_index + 1 < self.iterations_per_epoch:
                total, total_count = _summed(sums, count, self.context)
                self._save({"epoch": epoch, "batch": batch_index + 1, "iteration": iteration, "sums": total,
                            "count": total_count}, epoch_end=False)
        bar.close()
        total, total_count = _summed(sums, count, self.context)
        means = {k: total[k] / total_count for k in LOSS_KEYS}
        if not math.isfinite(means["loss"]):
            raise EasyOccError(f"the mean loss of epoch {epoch + 1} is {means['loss']}: training diverged")
        if self.context.is_main:
            record = {"epoch": epoch + 1, "iteration": iteration, **means,
                      "seconds": round(time.perf_counter() - started, 2), **clock.summary()}
            _write_log_line(self.run_dir / LOG_FILE, record)
            for k in LOSS_KEYS:
                self.writer.add_scalar(f"epoch/{k}", means[k], epoch + 1)
        self._save({"epoch": epoch + 1, "batch": 0, "iteration": iteration, "sums": dict.fromkeys(LOSS_KEYS, 0.0),
                    "count": 0}, epoch_end=True)
        return iteration

    def _log(self, values: torch.Tensor, iteration: int, iterations_per_second: float, bar) -> None:
        loss, ce, lovasz = values.tolist()
        if not math.isfinite(loss):
            raise EasyOccError(f"the loss is {loss} at iteration {iteration}: training diverged")
        lr = self.optimizer.param_groups[-1]["lr"]
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
        if self.writer is not None:
            for name, value in zip(LOSS_KEYS, (loss, ce, lovasz)):
                self.writer.add_scalar(f"train/{name}", value, iteration)
            for group in self.optimizer.param_groups:
                self.writer.add_scalar(f"lr/{group['name']}", group["lr"], iteration)
            self.writer.add_scalar("speed/iterations_per_second", iterations_per_second, iteration)
