"""Checkpoints written atomically, and the random number generator states a resumed run restores."""

from __future__ import annotations

import random
from os import PathLike
from pathlib import Path

import numpy as np
import torch

from easyocc.config import config_from_dict
from easyocc.errors import InputError
from easyocc.fileio import atomic_write
from easyocc.models.easyocc import EasyOccModel
from easyocc.models.rendering import build_occupancy_model
from easyocc.training.config import TrainConfig


def rng_state() -> dict:
    """The states of Python's, NumPy's and torch's generators (CPU and every CUDA device), as tensors and plain
    Python values only, so checkpoints load with ``torch.load(weights_only=True)``."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["position"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save_checkpoint(path: str | PathLike, state: dict) -> None:
    """``torch.save`` to a temporary file renamed onto ``path``: a crash never leaves a half checkpoint."""
    with atomic_write(path, "wb") as handle:
        torch.save(state, handle)


def load_checkpoint(path: str | PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by ``save_checkpoint`` (tensors and plain values only: ``weights_only``);
    it must hold ``config`` and ``model``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch.load raises many types for foreign or corrupt files
        # Not torch's message: it advises weights_only=False, i.e. running whatever code the file holds.
        damaged = isinstance(exc, EOFError) or "zip archive" in str(exc) or "PytorchStreamReader" in str(exc)
        raise InputError(path, "not an easyocc checkpoint (" + ("empty, truncated or damaged" if damaged else
                               "not a torch file of tensors and plain values") + f": {type(exc).__name__})") from None
    if not isinstance(state, dict) or "config" not in state or "model" not in state:
        raise InputError(path, "not an easyocc checkpoint (no 'config' and 'model' entries)")
    return state


def load_trained_model(path: str | PathLike, device: torch.device | str = "cpu") -> tuple[EasyOccModel, TrainConfig]:
    """A trained model (in eval mode) and its config from ``model.pt`` or a training checkpoint: EasyOcc or the
    rendering model, as its config says (``model.logits`` gives the Occ3D logits of either)."""
    state = load_checkpoint(path, map_location="cpu")
    try:
        config = config_from_dict(TrainConfig, state["config"])
    except ValueError as exc:
        raise InputError(path, f"its config does not fit this version of easyocc ({exc})") from None
    model = build_occupancy_model(config.model, config.render, load_weights=False)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise InputError(path, f"weights do not fit the model its config describes ({str(exc).splitlines()[0]})") from None
    return model.to(device).eval(), config
