"""Training: one loop for EasyOcc (the pseudo loss against 3D labels) and the rendering model (its 2D losses
against the images, their neighbouring sweeps and 2D maps, plus the pseudo loss when it has a weight), either with
the ray queries (``loss.ray_queries``, from the 2D maps) when they have a weight, in one process (CPU or GPU) or many
under torchrun (DDP). What trains is the config's (``training.objective``).

A run folder holds ``config.yaml`` (the resolved config), ``class_weights.json`` (the pseudo loss's CE weights from
the 3D labels, and with a rendering model under ``semantic_2d`` those of the 2D semantic term),
``checkpoints/last.pt`` (model, optimiser, scheduler, loss scaler, RNG states and position; rewritten atomically at
every epoch end and every ``checkpoint_every`` iterations), ``model.pt`` (weights + config, at the end),
``train_log.jsonl`` (one line per epoch: the mean of every loss term, seconds, median seconds per iteration, peak
memory) and ``tb/`` (TensorBoard). The data order is a
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
from easyocc.data.occ_dataset import InputLoader, OccDataset, RenderTargets, split_keyframes
from easyocc.errors import EasyOccError, InputError
from easyocc.fileio import atomic_write, require_folder_or_absent, save_json, sweep_temporaries, undo_on_failure
from easyocc.losses import class_counts, class_weights_from_counts
from easyocc.losses.rendering import OCCNERF_CLASS_FREQUENCIES
from easyocc.models.easyocc import EasyOccModel
from easyocc.models.rendering import build_occupancy_model
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
from easyocc.training.objective import build_objective, train_step

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "class_weights.json"
LAST_CHECKPOINT = "checkpoints/last.pt"
MODEL_FILE = "model.pt"
LOG_FILE = "train_log.jsonl"
#: The key of the 2D semantic term's record in class_weights.json.
SEMANTIC_2D = "semantic_2d"
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


class _MapCounts(Dataset):
    """Per-keyframe class counts of the 2D semantic maps of its cameras at the render size (what the loss sees)."""

    def __init__(self, dataset: OccDataset, indices: list[int]):
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> np.ndarray:
        return class_counts(self.dataset.semantics_2d(self.indices[i]))


def _summed_counts(counts: Dataset, config: TrainConfig, context: DistContext, show_progress: bool, what: str,
                   unit: str) -> np.ndarray:
    """(18,) int64 class counts summed over ``counts``' items (each process counts a share) and the processes."""
    loader = InputLoader(counts, batch_size=None, num_workers=min(config.data.num_workers, len(counts)))
    total = torch.zeros(len(CLASS_NAMES), dtype=torch.float64)
    bar = tqdm(loader, desc=what, unit=unit, disable=not (show_progress and context.is_main))
    for item in bar:
        total += torch.as_tensor(item, dtype=torch.float64)
    return all_reduce_sum(total.to(context.device), context).cpu().numpy().astype(np.int64)


def compute_class_weights(dataset: OccDataset, config: TrainConfig, context: DistContext, show_progress: bool) -> dict:
    """Class counts over all training labels (each process counts a share; the counts are summed) -> weights."""
    files = [dataset.label_file(i) for i in range(context.rank, len(dataset), context.world_size)]
    counts = _summed_counts(_LabelCounts(files, config.loss.region), config, context, show_progress,
                            "class statistics", "label")
    if counts.sum() == 0:
        raise EasyOccError(f"the training labels have no labelled voxel in the loss region '{config.loss.region}'")
    return {
        "method": config.loss.class_weighting,
        "region": config.loss.region,
        "classes": list(CLASS_NAMES),
        "counts": counts.tolist(),
        "weights": class_weights_from_counts(counts, config.loss.class_weighting).tolist(),
    }


def compute_semantic_2d_weights(dataset: OccDataset, config: TrainConfig, context: DistContext,
                                show_progress: bool) -> dict:
    """The 2D semantic term's CE weights (``render_loss.class_weighting``): 1 / sqrt(frequency) of the classes in
    the training 2D maps at the render size (255 not counted; sky counts as free), or of OccNeRF's fixed counts."""
    method = config.render_loss.class_weighting
    record = {"method": method, "classes": list(CLASS_NAMES)}
    if method == "none":
        return {**record, "weights": [1.0] * len(CLASS_NAMES)}
    if method == "occnerf":
        counts = OCCNERF_CLASS_FREQUENCIES
    else:
        indices = list(range(context.rank, len(dataset), context.world_size))
        counts = _summed_counts(_MapCounts(dataset, indices), config, context, show_progress,
                                "2D class statistics", "keyframe")
        if counts.sum() == 0:
            raise EasyOccError(f"the 2D semantic source '{config.sources.semantics}' labels no pixel of the training "
                               "images (all 255)")
    return {**record, "counts": np.asarray(counts).tolist(), "weights": class_weights_from_counts(counts).tolist()}


def _load_class_weights(path: Path, records: tuple[str | None, ...]) -> dict:
    """class_weights.json, checked to hold the weights of ``records`` (None: the pseudo loss's, at the top)."""
    try:
        record = json.loads(path.read_text())
        for name in records:
            weights = (record if name is None else record[name])["weights"]
            if len(weights) != len(CLASS_NAMES):
                raise InputError(path, f"expected {len(CLASS_NAMES)} weights, found {len(weights)}")
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(path, f"unreadable class weights ({type(exc).__name__}: {exc})") from None
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


def _summed(sums: torch.Tensor, keys: tuple[str, ...], count: int, context: DistContext) -> tuple[dict, int]:
    """Loss sums (a float64 tensor in ``keys`` order) and their count, summed over the processes."""
    totals = all_reduce_sum(torch.cat([sums, sums.new_tensor([count])]), context).tolist()
    return dict(zip(keys, totals[:-1])), int(totals[-1])


def _write_log_line(path: Path, record: dict) -> None:
    lines = path.read_text().splitlines() if path.is_file() else []
    with atomic_write(path, "w") as handle:
        handle.write("\n".join([*lines, json.dumps(record)]) + "\n")


def train(
    config: TrainConfig,
    data_root: str | os.PathLike,
    labels_dir: str | os.PathLike | None,
    run_dir: str | os.PathLike,
    resume: bool = False,
    show_progress: bool = True,
) -> Path:
    """Train, writing the run folder; returns the path of ``model.pt``. Under torchrun every process calls this.

    ``labels_dir`` (3D labels, ``<scene>/<sample_token>/labels.npz``) is needed when the config's pseudo loss has a
    weight, and is not read otherwise.
    A new run that fails (bad input, an interruption) before it wrote its first checkpoint leaves nothing behind:
    what it had written (config.yaml, class_weights.json, tb/, ...) is removed, as are the folders made for it.
    """
    run_dir = Path(run_dir)
    if config.uses_pseudo_loss and labels_dir is None:
        raise EasyOccError(f"loss.pseudo_weight is {config.loss.pseudo_weight}: the pseudo loss needs 3D labels "
                           "(--labels); set loss.pseudo_weight=0 to train a rendering model or ray queries "
                           "(loss.ray_queries.weight > 0) without them")
    _prepare_run_dir(run_dir, resume)
    context = init_distributed(config.device)
    if context.is_main:
        sweep_temporaries(run_dir)  # half checkpoints of a killed run
    nothing_to_undo = lambda: resume or not context.is_main or (run_dir / LAST_CHECKPOINT).exists()  # noqa: E731
    try:
        labels = Path(labels_dir) if config.uses_pseudo_loss else None
        with undo_on_failure(run_dir, RUN_ENTRIES, keep=nothing_to_undo):
            return _Run(config, Path(data_root), labels, run_dir, resume, show_progress, context).train()
    finally:
        shutdown_distributed(context)


def render_targets(config: TrainConfig, data_root: Path) -> RenderTargets | None:
    """What the dataset loads besides the images and 3D labels (None: nothing): for the rendering losses the config
    enables, source images for the photometric term and 2D maps of ``config.sources`` at the render size; for the
    ray queries, the depth and semantic maps of ``config.sources`` (at the render size with a ``render`` section, else
    at the network's input size). A source that cannot be built is a one-line error naming the term that needs it."""
    rendering = config.render is not None and config.uses_rendering_loss
    if not (rendering or config.uses_ray_queries):
        return None
    size = config.render.size if rendering else config.data.input_size
    return RenderTargets(
        size=tuple(size),
        sources=rendering and config.render_loss.photometric_weight > 0,
        semantics=_source(config, "semantics", data_root) if config.reads_2d_semantics else None,
        depth=_source(config, "depth", data_root) if config.reads_2d_depth else None,
    )


def _source(config: TrainConfig, kind: str, data_root: Path):
    """``config.sources``' semantic or depth source; its build error names what needs it."""
    try:
        return config.sources.semantic_source(data_root) if kind == "semantics" else \
            config.sources.depth_source(data_root)
    except EasyOccError as exc:
        users = [*(["loss.ray_queries"] if config.uses_ray_queries else []),
                 *(["render_loss"] if config.render is not None and config.uses_rendering_loss else [])]
        need = f"{' and '.join(users)} need{'s' if len(users) == 1 else ''} {kind} maps from sources.{kind} " \
               f"('{getattr(config.sources, kind)}')"
        if isinstance(exc, InputError):
            raise InputError(exc.path, f"{need}: {exc.problem}") from None
        raise EasyOccError(f"{need}: {exc}") from None


class _Run:
    """One process's share of a training run: the data, the model and its optimisation state, the run folder."""

    def __init__(self, config: TrainConfig, data_root: Path, labels_dir: Path | None, run_dir: Path, resume: bool,
                 show_progress: bool, context: DistContext):
        self.config, self.run_dir, self.context = config, run_dir, context
        self.show_progress = show_progress and context.is_main
        device = self.device = context.device
        seed_everything(config.seed)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        keyframes = split_keyframes(data_root, config.data.version, config.data.split)
        self.dataset = OccDataset(keyframes, config.data, labels_dir, render=render_targets(config, data_root))
        if len(self.dataset) == 0:
            raise EasyOccError(f"no training keyframes in split '{config.data.split}' of {data_root}")
        if self.dataset.render is not None and self.dataset.render.sources and self.dataset.count_sources()[0] == 0:
            raise InputError(data_root, "the photometric loss needs camera sweeps, and no keyframe camera of split "
                             f"'{config.data.split}' has a neighbouring image (SimScenes: easyocc synth --sweeps "
                             "neighbours); or set render_loss.photometric_weight=0")

        self.class_weights = self._class_weights(resume, show_progress)
        pseudo_weights = semantic_weights = None
        if config.uses_pseudo_loss:
            pseudo_weights = np.asarray(self.class_weights["weights"], dtype=np.float32)
        if SEMANTIC_2D in self.class_weights:
            semantic_weights = np.asarray(self.class_weights[SEMANTIC_2D]["weights"], dtype=np.float32)
        self.objective = build_objective(config, pseudo_weights, semantic_weights).to(device)
        self.loss_keys = self.objective.keys

        self.model = build_occupancy_model(config.model, config.render, load_weights=not resume).to(device)
        self.optimizer = make_optimizer(self.model, config.optim)
        self.sampler = EpochSampler(len(self.dataset), context.world_size, context.rank, config.seed)
        self.iterations_per_epoch = math.ceil(self.sampler.per_replica / config.optim.batch_size)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, learning_rate_factor(config.optim, self.iterations_per_epoch))
        use_amp = config.optim.amp and device.type == "cuda"
        amp_dtype = torch.bfloat16 if config.optim.amp_dtype == "bfloat16" else torch.float16
        self.amp = torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=use_amp)
        self.scaler = torch.amp.GradScaler(device.type, enabled=use_amp and amp_dtype == torch.float16)
        self.position = {"epoch": 0, "batch": 0, "iteration": 0, "sums": dict.fromkeys(self.loss_keys, 0.0),
                         "count": 0}
        if resume:
            # On the CPU: RNG states must stay CPU tensors; load_state_dict moves the rest to the device.
            self._restore(load_checkpoint(run_dir / LAST_CHECKPOINT, map_location="cpu"))
        self.net = DistributedDataParallel(self.model, device_ids=[device.index] if device.type == "cuda" else None) \
            if context.distributed else self.model
        self.writer = None
        if context.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=self.position["iteration"] if resume else None)

    def _class_weights(self, resume: bool, show_progress: bool) -> dict:
        """class_weights.json: read back when resuming, else counted (the pseudo loss's from the 3D labels, the 2D
        semantic term's from the 2D maps) and written with the config."""
        config, context = self.config, self.context
        weights_path = self.run_dir / WEIGHTS_FILE
        semantic = config.render is not None and config.render_loss.semantic_weight > 0
        records = (*((None,) if config.uses_pseudo_loss else ()), *((SEMANTIC_2D,) if semantic else ()))
        if resume and weights_path.is_file():
            record = _load_class_weights(weights_path, records)
        else:
            record = compute_class_weights(self.dataset, config, context, show_progress) \
                if config.uses_pseudo_loss else {}
            if semantic:
                record[SEMANTIC_2D] = compute_semantic_2d_weights(self.dataset, config, context, show_progress)
        if context.is_main:
            save_config(self.run_dir / CONFIG_FILE, config)
            save_json(weights_path, record)
        return record

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
        # The loader's own generator (seeded per epoch in _run_epoch): starting an epoch draws its workers' seed
        # from it, not from torch's global generator, whose stream the training steps' random draws (the rendering
        # model's sample jitter) then own alone, so that a resumed run draws what an uninterrupted one does.
        loader = InputLoader(self.dataset, batch_size=self.config.optim.batch_size, sampler=self.sampler,
                             num_workers=self.config.data.num_workers, pin_memory=self.device.type == "cuda",
                             generator=torch.Generator())
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
        """One optimisation step; returns the detached losses in ``loss_keys`` order on the device (no
        synchronisation)."""
        losses = train_step(self.net, self.objective, _to_device(batch, self.device), self.amp)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses["loss"]).backward()
        if self.config.optim.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return torch.stack([losses[k].detach() for k in self.loss_keys]).double()

    def _run_epoch(self, loader: InputLoader, epoch: int, iteration: int) -> int:
        config, position = self.config, self.position
        start = position["batch"] if epoch == position["epoch"] else 0
        # A run resumed mid-epoch: the partial sums were saved summed over the processes; rank 0 carries them.
        carried = bool(start) and self.context.is_main
        sums = torch.tensor([position["sums"][k] if carried else 0.0 for k in self.loss_keys], dtype=torch.float64,
                            device=self.device)
        count = position["count"] if carried else 0
        self.sampler.set_epoch(epoch, start * config.optim.batch_size)
        loader.generator.manual_seed(config.seed + epoch)
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
                total, total_count = _summed(sums, self.loss_keys, count, self.context)
                self._save({"epoch": epoch, "batch": batch_index + 1, "iteration": iteration, "sums": total,
                            "count": total_count}, epoch_end=False)
        bar.close()
        total, total_count = _summed(sums, self.loss_keys, count, self.context)
        means = {k: total[k] / total_count for k in self.loss_keys}
        if not math.isfinite(means["loss"]):
            raise EasyOccError(f"the mean loss of epoch {epoch + 1} is {means['loss']}: training diverged")
        if self.context.is_main:
            record = {"epoch": epoch + 1, "iteration": iteration, **means,
                      "seconds": round(time.perf_counter() - started, 2), **clock.summary()}
            _write_log_line(self.run_dir / LOG_FILE, record)
            for k in self.loss_keys:
                self.writer.add_scalar(f"epoch/{k}", means[k], epoch + 1)
        self._save({"epoch": epoch + 1, "batch": 0, "iteration": iteration, "sums": dict.fromkeys(self.loss_keys, 0.0),
                    "count": 0}, epoch_end=True)
        return iteration

    def _log(self, values: torch.Tensor, iteration: int, iterations_per_second: float, bar) -> None:
        losses = dict(zip(self.loss_keys, values.tolist()))
        if not math.isfinite(losses["loss"]):
            raise EasyOccError(f"the loss is {losses['loss']} at iteration {iteration}: training diverged")
        lr = self.optimizer.param_groups[-1]["lr"]
        bar.set_postfix(loss=f"{losses['loss']:.4f}", lr=f"{lr:.2e}")
        if self.writer is not None:
            for name, value in losses.items():
                self.writer.add_scalar(f"train/{name}", value, iteration)
            for group in self.optimizer.param_groups:
                self.writer.add_scalar(f"lr/{group['name']}", group["lr"], iteration)
            self.writer.add_scalar("speed/iterations_per_second", iterations_per_second, iteration)
