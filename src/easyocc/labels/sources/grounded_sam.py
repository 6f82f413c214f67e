"""Grounded-SAM semantics: GroundingDINO boxes from text prompts, SAM masks in those boxes, fused per pixel.

Both models run through ``transformers`` (``GroundingDinoForObjectDetection`` and ``SamModel`` with their
processors), loaded from local folders with ``local_files_only=True``: nothing is downloaded at run time.

Per image: one GroundingDINO pass per prompt group (several groups batched in one forward), each box kept if
its best phrase-token probability exceeds ``box_threshold`` and given the class of the phrase whose tokens score
highest on average (if that mean exceeds ``text_threshold``); one SAM image embedding, then all boxes through the
mask decoder in batches; per pixel the class of the best-scoring mask that covers it, 17 for sky, 255 where no
mask does. Phrases are matched by their token spans in the caption, computed while building it, rather than by
decoding tokens back to strings as ``post_process_grounded_object_detection`` does (whose merged strings such as
"sedan highway" match no phrase, and whose ``box_threshold`` argument became ``threshold`` in transformers 4.51;
5.23 has ``threshold`` and ``text_threshold``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from easyocc.data.nuscenes_index import CameraFrame
from easyocc.devices import resolve_device
from easyocc.errors import InputError
from easyocc.labels.sources.base import SemanticSource, check_semantics
from easyocc.labels.sources.maps import one_line, read_camera_rgb
from easyocc.labels.sources.runtime import LazyModels, load_pretrained, weights_identity
from easyocc.occ3d import CLASS_IDS, IGNORE

#: OccNeRF's prompts (REFERENCE.md section 2), as data.
DEFAULT_PROMPTS = Path(__file__).resolve().parents[2] / "assets" / "grounded_sam_prompts.yaml"


# --- prompts ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptGroup:
    """One GroundingDINO pass: phrases and the Occ3D class of each."""

    phrases: tuple[str, ...]
    class_ids: tuple[int, ...]

    @property
    def caption(self) -> str:
        return " . ".join(self.phrases) + " ."


@dataclass(frozen=True)
class PromptTable:
    groups: tuple[PromptGroup, ...]

    def digest(self) -> str:
        data = [[list(g.phrases), list(g.class_ids)] for g in self.groups]
        return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16]


def load_prompts(path: str | Path | None = None) -> PromptTable:
    """The prompt table of a YAML/JSON file (default: OccNeRF's), ``groups: [{phrase: occ3d class name}, ...]``."""
    path = Path(DEFAULT_PROMPTS if path is None else path)
    if not path.is_file():
        raise InputError(path, "prompt file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not valid YAML/JSON ({one_line(exc)})") from None
    groups = data.get("groups") if isinstance(data, dict) else None
    if not isinstance(groups, list) or not groups:
        raise InputError(path, "expected a non-empty list 'groups' of {phrase: class name} mappings")
    table = []
    for number, group in enumerate(groups, start=1):
        if not isinstance(group, dict) or not group:
            raise InputError(path, f"group {number} is not a non-empty {{phrase: class name}} mapping")
        for phrase, name in group.items():
            if not isinstance(phrase, str) or not phrase.strip():
                raise InputError(path, f"group {number}: phrase {phrase!r} is not a non-empty string")
            if name not in CLASS_IDS:
                raise InputError(path, f"group {number}: '{phrase}' maps to unknown class {name!r} "
                                       f"(known: {', '.join(CLASS_IDS)})")
        table.append(PromptGroup(tuple(p.strip().lower() for p in group), tuple(CLASS_IDS[n] for n in group.values())))
    return PromptTable(tuple(table))


def encode_caption(tokenizer, phrases: tuple[str, ...]) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of ``[CLS] p1 . p2 . ... [SEP]`` and the [start, end) token span of each phrase."""
    dot = tokenizer.convert_tokens_to_ids(".")
    ids, spans = [tokenizer.cls_token_id], []
    for phrase in phrases:
        tokens = tokenizer(phrase, add_special_tokens=False)["input_ids"]
        if not tokens:
            raise ValueError(f"phrase {phrase!r} has no tokens")
        spans.append((len(ids), len(ids) + len(tokens)))
        ids += [*tokens, dot]
    ids.append(tokenizer.sep_token_id)
    return ids, spans


# --- boxes and masks -------------------------------------------------------------------------------------------


def select_boxes(token_probs, boxes, spans, class_ids, box_threshold: float, text_threshold: float,
                 width: int, height: int):
    """The boxes of one GroundingDINO pass worth keeping, with their class.

    token_probs: (Q, L) sigmoid of the logits over caption tokens; boxes: (Q, 4) normalised (cx, cy, w, h);
    spans: P token ranges of the phrases; class_ids: P Occ3D ids. Returns (boxes_xyxy (N, 4) pixels, scores (N,)
    = best phrase-token probability, classes (N,) int64), all torch on token_probs' device.
    """
    import torch

    length, device = token_probs.shape[1], token_probs.device
    membership = torch.zeros(length, len(spans), device=device)
    for index, (start, end) in enumerate(spans):
        membership[start:end, index] = 1.0 / (end - start)
    phrase_scores = token_probs @ membership  # (Q, P): mean probability over each phrase's tokens
    box_scores = token_probs[:, membership.sum(1) > 0].max(dim=1).values
    best_scores, best_phrase = phrase_scores.max(dim=1)
    keep = (box_scores > box_threshold) & (best_scores > text_threshold)
    cx, cy, w, h = boxes[keep].unbind(-1)
    scale = torch.tensor([width, height, width, height], dtype=boxes.dtype, device=device)
    xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1) * scale
    xyxy = torch.minimum(xyxy.clamp(min=0), scale - 1)
    classes = torch.as_tensor(class_ids, dtype=torch.int64, device=device)[best_phrase[keep]]
    return xyxy, box_scores[keep], classes


class MaskFusion:
    """Per pixel, the class of the best-scoring mask that covers it; IGNORE where none does. Masks may come in
    any number of batches; a tie keeps the mask added first."""

    def __init__(self, height: int, width: int, device=None):
        import torch

        self.best = torch.full((height, width), -float("inf"), device=device)
        self.classes = torch.full((height, width), IGNORE, dtype=torch.uint8, device=device)

    def add(self, masks, scores, class_ids) -> None:
        """masks: (N, H, W) bool; scores: (N,) float; class_ids: (N,) Occ3D ids (torch or numpy)."""
        import torch

        masks = torch.as_tensor(masks, device=self.best.device).bool()
        if len(masks) == 0:
            return
        # Work inside each mask's bounding box: SAM masks are small next to the image.
        rows, cols = _extents(masks.any(dim=2)), _extents(masks.any(dim=1))
        scores = torch.as_tensor(scores, dtype=torch.float32).tolist()
        class_ids = torch.as_tensor(class_ids).tolist()
        for mask, score, class_id, (top, bottom), (left, right) in zip(masks, scores, class_ids, rows, cols):
            if bottom <= top:
                continue  # an empty mask
            window = (slice(top, bottom), slice(left, right))
            best, classes = self.best[window], self.classes[window]  # views: filled in place
            better = mask[window] & (best < score)
            best.masked_fill_(better, score)
            classes.masked_fill_(better, class_id)

    def labels(self) -> np.ndarray:
        """(H, W) uint8 Occ3D ids, IGNORE where no mask covered the pixel."""
        return self.classes.cpu().numpy()


def _extents(any_along) -> list[tuple[int, int]]:
    """any_along: (N, L) bool -> per row the [first, last + 1) range of True entries, (0, 0) when none."""
    import torch

    length = any_along.shape[1]
    first = any_along.int().argmax(dim=1)
    last = length - any_along.flip(1).int().argmax(dim=1)
    empty = ~any_along.any(dim=1)
    return torch.stack([first.masked_fill(empty, 0), last.masked_fill(empty, 0)], dim=1).tolist()


def fuse_masks(masks, scores, class_ids) -> np.ndarray:
    """masks: (N, H, W) bool, scores: (N,), class_ids: (N,) -> (H, W) uint8 (see :class:`MaskFusion`)."""
    height, width = np.shape(masks)[1:]
    fusion = MaskFusion(height, width)
    fusion.add(masks, scores, class_ids)
    return fusion.labels()


# --- the source ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroundedSamConfig:
    """Local model folders (``save_pretrained`` layout, e.g. IDEA-Research/grounding-dino-base and
    facebook/sam-vit-huge), prompts and thresholds. OccNeRF used 0.20 for both thresholds."""

    grounding_dino_dir: Path
    sam_dir: Path
    prompts: Path | None = None
    box_threshold: float = 0.2
    text_threshold: float = 0.2
    device: str = "auto"
    #: Prompt groups per GroundingDINO forward (the image is repeated once per group in the batch).
    prompt_batch: int = 8
    #: Boxes per SAM mask-decoder call.
    sam_batch: int = 32


@dataclass
class _Models:
    device: Any
    processor: Any
    detector: Any
    sam_processor: Any
    sam: Any
    captions: list  # per prompt group: (token ids, phrase spans)


class GroundedSamSemantics(LazyModels, SemanticSource):
    """Semantics from Grounded-SAM; models are loaded on first use."""

    name = "grounded-sam"

    def __init__(self, config: GroundedSamConfig):
        folders = ((config.grounding_dino_dir, "GroundingDINO model folder"), (config.sam_dir, "SAM model folder"))
        for path, what in folders:
            if not Path(path).is_dir():
                raise InputError(path, f"{what} not found")
        for name in ("box_threshold", "text_threshold"):
            if not 0.0 <= getattr(config, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(config, name)}")
        for name in ("prompt_batch", "sam_batch"):
            if getattr(config, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
        resolve_device(config.device)  # a bad --device fails now, not after the first images
        self.config = config
        self.prompts = load_prompts(config.prompts)
        self._fingerprint: str | None = None

    def _load(self) -> _Models:
        from transformers import AutoProcessor, GroundingDinoForObjectDetection, SamModel, SamProcessor

        cfg = self.config
        device = resolve_device(cfg.device)
        processor = load_pretrained(AutoProcessor, Path(cfg.grounding_dino_dir), "GroundingDINO processor")
        detector = load_pretrained(GroundingDinoForObjectDetection, Path(cfg.grounding_dino_dir), "GroundingDINO model")
        sam_processor = load_pretrained(SamProcessor, Path(cfg.sam_dir), "SAM processor")
        sam = load_pretrained(SamModel, Path(cfg.sam_dir), "SAM model")
        captions = []
        for group in self.prompts.groups:
            ids, spans = encode_caption(processor.tokenizer, group.phrases)
            if len(ids) > detector.config.max_text_len:
                where = cfg.prompts or DEFAULT_PROMPTS
                raise InputError(where, f"caption '{group.caption}' has {len(ids)} tokens, the model takes "
                                        f"{detector.config.max_text_len}")
            captions.append((ids, spans))
        return _Models(device, processor, detector.to(device).eval(), sam_processor, sam.to(device).eval(), captions)

    def detect(self, rgb: np.ndarray):
        """rgb: (H, W, 3) uint8 -> (boxes_xyxy (N, 4) pixels, scores (N,), classes (N,)) over all prompt groups."""
        import torch

        m, cfg = self.models(), self.config
        height, width = rgb.shape[:2]
        image = m.processor.image_processor(images=rgb, return_tensors="pt")
        pad_id = m.processor.tokenizer.pad_token_id or 0
        found = []
        for first in range(0, len(m.captions), cfg.prompt_batch):
            batch = m.captions[first : first + cfg.prompt_batch]
            length = max(len(ids) for ids, _ in batch)
            input_ids = torch.tensor([ids + [pad_id] * (length - len(ids)) for ids, _ in batch], device=m.device)
            attention = torch.tensor([[1] * len(ids) + [0] * (length - len(ids)) for ids, _ in batch], device=m.device)
            repeat = (len(batch), 1, 1, 1)
            outputs = m.detector(
                pixel_values=image["pixel_values"].to(m.device).repeat(repeat),
                pixel_mask=image["pixel_mask"].to(m.device).repeat(len(batch), 1, 1),
                input_ids=input_ids, attention_mask=attention, token_type_ids=torch.zeros_like(input_ids),
            )
            probs = outputs.logits.sigmoid()
            for offset, (_, spans) in enumerate(batch):
                group = self.prompts.groups[first + offset]
                found.append(select_boxes(probs[offset], outputs.pred_boxes[offset], spans, group.class_ids,
                                          cfg.box_threshold, cfg.text_threshold, width, height))
        return tuple(torch.cat(parts) for parts in zip(*found))

    def segment(self, rgb: np.ndarray, boxes, scores, classes) -> np.ndarray:
        """SAM masks of ``boxes`` (N, 4) xyxy pixels fused into (H, W) uint8 Occ3D ids."""
        m, cfg = self.models(), self.config
        fusion = MaskFusion(*rgb.shape[:2], device=m.device)
        if len(boxes) == 0:
            return fusion.labels()
        inputs = m.sam_processor(images=rgb, input_boxes=[boxes.cpu().tolist()], return_tensors="pt")
        embedding = m.sam.get_image_embeddings(inputs["pixel_values"].to(m.device))
        for first in range(0, len(boxes), cfg.sam_batch):
            chunk = slice(first, first + cfg.sam_batch)
            outputs = m.sam(image_embeddings=embedding, input_boxes=inputs["input_boxes"][:, chunk].to(m.device),
                            multimask_output=False)
            masks = m.sam_processor.image_processor.post_process_masks(
                outputs.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"])[0]
            fusion.add(masks[:, 0], scores[chunk], classes[chunk])
        return fusion.labels()

    def semantics(self, camera: CameraFrame) -> np.ndarray:
        import torch

        rgb = read_camera_rgb(camera)
        with torch.no_grad():
            labels = self.segment(rgb, *self.detect(rgb))
        return check_semantics(labels, camera, self.name)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            cfg = self.config
            self._fingerprint = (
                f"grounded-sam:v1:dino={weights_identity(cfg.grounding_dino_dir)}:sam={weights_identity(cfg.sam_dir)}"
                f":prompts={self.prompts.digest()}:box={cfg.box_threshold:g}:text={cfg.text_threshold:g}"
            )
        return self._fingerprint
