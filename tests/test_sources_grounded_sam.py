"""Grounded-SAM: prompts, box selection, mask fusion, and the real transformers code path on tiny models."""

from __future__ import annotations

import argparse
import json
import pickle

import numpy as np
import pytest
import torch
from sources_models import save_grounding_dino, save_sam
from sources_util import make_camera

from easyocc.errors import EasyOccError, InputError
from easyocc.labels.sources.grounded_sam import (
    GroundedSamConfig,
    GroundedSamSemantics,
    MaskFusion,
    encode_caption,
    fuse_masks,
    load_prompts,
    select_boxes,
)
from easyocc.labels.sources.maps import read_rgb
from easyocc.labels.sources.registry import add_source_arguments, sources_from_args
from easyocc.occ3d import CLASS_IDS, FREE, IGNORE

CAR, ROAD = CLASS_IDS["car"], CLASS_IDS["driveable_surface"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("grounded-sam")
    return save_grounding_dino(root / "grounding-dino"), save_sam(root / "sam")


def test_default_prompts_are_occnerfs():
    table = load_prompts()
    assert len(table.groups) == 7
    assert table.groups[0].phrases == ("pedestrian",) and table.groups[0].class_ids == (CLASS_IDS["pedestrian"],)
    last = dict(zip(table.groups[-1].phrases, table.groups[-1].class_ids))
    assert last["sedan"] == CAR and last["highway"] == ROAD and last["sky"] == FREE and last["ashbin"] == 15
    assert table.groups[3].caption == "bicycle . bicyclist ."


def test_prompt_files_are_validated(tmp_path):
    good = tmp_path / "p.json"
    good.write_text(json.dumps({"groups": [{"Car": "car", "road": "driveable_surface"}]}))
    table = load_prompts(good)
    assert table.groups[0].phrases == ("car", "road") and table.groups[0].class_ids == (CAR, ROAD)
    assert table.digest() != load_prompts().digest()
    for text, problem in (("groups: []", "non-empty list 'groups'"),
                          ("groups: [{car: automobile}]", "group 1: 'car' maps to unknown class 'automobile'"),
                          ("groups: [[car]]", "group 1 is not a non-empty"),
                          ("groups: [{car: car}", "not valid YAML/JSON")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(InputError) as err:
            load_prompts(bad)
        assert str(err.value).startswith(f"{bad}: ") and problem in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputError, match="prompt file not found"):
        load_prompts(tmp_path / "none.yaml")


def test_select_boxes_picks_the_best_phrase_and_applies_both_thresholds():
    spans, classes = [(1, 2), (3, 5)], (CAR, FREE)  # [CLS] car . sky-a sky-b . [SEP]
    probs = torch.zeros(4, 8)
    probs[0, 1] = 0.9  # car
    probs[1, 3], probs[1, 4] = 0.6, 0.4  # sky, mean 0.5
    probs[2, 1] = 0.1  # below the box threshold
    probs[3, 3], probs[3, 4] = 0.35, 0.0  # box score 0.35 but phrase mean 0.175 < text threshold
    probs[:, 2] = 0.99  # the '.' token never makes a box
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.5, 0.1, 1.0, 0.2], [0.5, 0.5, 0.1, 0.1], [0.5, 0.5, 0.1, 0.1]])
    xyxy, scores, got_classes = select_boxes(probs, boxes, spans, classes, 0.2, 0.2, width=100, height=50)
    np.testing.assert_allclose(xyxy, [[40, 15, 60, 35], [0, 0, 99, 10]])
    np.testing.assert_allclose(scores, [0.9, 0.6])
    assert got_classes.tolist() == [CAR, FREE]


def test_mask_fusion_takes_the_best_scoring_mask_per_pixel():
    masks = np.zeros((3, 4, 6), bool)
    masks[0, :, :4] = True  # road, weak
    masks[1, 1:3, 2:5] = True  # car, strong, overlaps the road
    masks[2, 0, 0] = True  # same score as the road: the first one added keeps the pixel
    labels = fuse_masks(masks, [0.3, 0.8, 0.3], [ROAD, CAR, FREE])
    expected = np.full((4, 6), IGNORE, np.uint8)
    expected[:, :4] = ROAD
    expected[1:3, 2:5] = CAR
    np.testing.assert_array_equal(labels, expected)
    fusion = MaskFusion(4, 6)  # the same result when the masks come in batches, empty masks and batches included
    fusion.add(masks[:1], [0.3], [ROAD])
    fusion.add(np.zeros((0, 4, 6), bool), [], [])
    fusion.add(np.concatenate([np.zeros((1, 4, 6), bool), masks[1:]]), [0.9, 0.8, 0.3], [FREE, CAR, FREE])
    np.testing.assert_array_equal(fusion.labels(), expected)


def test_captions_are_tokenized_like_the_processor_does(models):
    source = GroundedSamSemantics(GroundedSamConfig(*models, device="cpu"))
    tokenizer = source.models().processor.tokenizer
    for group in source.prompts.groups:
        ids, spans = encode_caption(tokenizer, group.phrases)
        assert ids == tokenizer(group.caption)["input_ids"]
        words = ["".join(tokenizer.convert_ids_to_tokens(ids[a:b])).replace("##", "") for a, b in spans]
        assert words == list(group.phrases)


def test_tiny_models_run_through_the_real_code_path(models):
    camera = make_camera(models[0].parent / "data", width=96, height=54)
    source = GroundedSamSemantics(GroundedSamConfig(*models, box_threshold=0.0, text_threshold=0.0, device="cpu",
                                                    prompt_batch=3, sam_batch=5))
    labels = source.semantics(camera)
    assert labels.shape == (54, 96) and labels.dtype == np.uint8
    allowed = {c for g in source.prompts.groups for c in g.class_ids} | {IGNORE}
    assert set(np.unique(labels)) <= allowed and (labels != IGNORE).any()
    boxes, scores, classes = source.detect(read_rgb(camera.image_path))
    assert boxes.shape == (7 * 12, 4) and len(scores) == len(classes) == 7 * 12  # 7 groups x 12 queries
    np.testing.assert_array_equal(source.semantics(camera), labels)  # deterministic
    clone = pickle.loads(pickle.dumps(source))  # workers get the settings, not the loaded models
    assert clone._loaded is None and clone.fingerprint() == source.fingerprint()
    no_boxes = torch.zeros((0, 4)), torch.zeros(0), torch.zeros(0, dtype=torch.int64)
    assert (source.segment(read_rgb(camera.image_path), *no_boxes) == IGNORE).all()  # no box, no label
    stricter = GroundedSamSemantics(GroundedSamConfig(*models, box_threshold=0.5, device="cpu"))
    assert stricter.fingerprint() != source.fingerprint() and stricter._loaded is None


def test_bad_model_folders_and_images_give_one_line_errors(models, tmp_path):
    with pytest.raises(InputError, match="GroundingDINO model folder not found"):
        GroundedSamSemantics(GroundedSamConfig(tmp_path / "none", models[1]))
    empty = tmp_path / "empty"
    empty.mkdir()
    camera = make_camera(tmp_path, width=96, height=54)
    with pytest.raises(InputError) as err:
        GroundedSamSemantics(GroundedSamConfig(empty, models[1], device="cpu")).semantics(camera)
    assert str(err.value).startswith(f"{empty}: cannot load the GroundingDINO") and "\n" not in str(err.value)
    wrong_size = make_camera(tmp_path, "samples/CAM_BACK/x.jpg", width=96, height=54)
    wrong_size = type(wrong_size)(**{**wrong_size.__dict__, "width": 100})
    with pytest.raises(InputError, match=r"x\.jpg: image is 96x54, the dataset tables say 100x54"):
        GroundedSamSemantics(GroundedSamConfig(*models, device="cpu")).semantics(wrong_size)
    (camera.image_path).write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match=r"frame0\.jpg: cannot read the image"):
        GroundedSamSemantics(GroundedSamConfig(*models, device="cpu")).semantics(camera)


def test_registry_builds_grounded_sam(models, tmp_path):
    parser = argparse.ArgumentParser()
    add_source_arguments(parser)
    args = parser.parse_args(["--semantics", "grounded-sam", "--grounded-sam-dir", str(models[0]), "--sam-dir",
                              str(models[1]), "--box-threshold", "0.3", "--device", "cpu"])
    semantics, _ = sources_from_args(args, tmp_path)
    assert isinstance(semantics, GroundedSamSemantics) and semantics.config.box_threshold == 0.3
    with pytest.raises(EasyOccError, match="the grounded-sam source needs --sam-dir"):
        sources_from_args(parser.parse_args(["--semantics", "grounded-sam", "--grounded-sam-dir", "."]), tmp_path)
    with pytest.raises(EasyOccError, match=r"grounded-sam: box_threshold must be in \[0, 1\], got 2.0"):
        sources_from_args(parser.parse_args(["--semantics", "grounded-sam", "--grounded-sam-dir", str(models[0]),
                                             "--sam-dir", str(models[1]), "--box-threshold", "2"]), tmp_path)
