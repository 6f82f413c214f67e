"""Tiny randomly initialised foundation models of the real architectures, saved the way users' downloads are, so
that the sources' real loading and inference code runs in tests (no weights are downloaded, ever)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import torch

#: Words of the default prompt table, so the tiny tokenizer splits them like a real one does ("ash ##bin").
PROMPT_WORDS = ("pedestrian", "bus", "truck", "bicycle", "bicyclist", "motorcycle", "motorcyclist", "barrier",
                "barricade", "sedan", "highway", "terrain", "tree", "sidewalk", "building", "bridge", "pole",
                "billboard", "light", "ash", "##bin", "crane", "trailer", "cone", "sky", "car", "road")


def write_bert_vocab(path: Path) -> None:
    """A BERT-style vocab with the special tokens at BERT's ids ([CLS] 101, [SEP] 102, '.' 1012), which
    GroundingDINO's text masks rely on."""
    vocab = [f"[unused{i}]" for i in range(1100)]
    for index, token in ((0, "[PAD]"), (100, "[UNK]"), (101, "[CLS]"), (102, "[SEP]"), (103, "[MASK]"),
                         (1012, "."), (1029, "?")):
        vocab[index] = token
    for offset, word in enumerate(PROMPT_WORDS):
        vocab[2000 - 900 + offset - 100] = word  # ids 1000.. , clear of the specials
    path.write_text("\n".join(vocab) + "\n")


def save_grounding_dino(folder: Path, seed: int = 0) -> Path:
    from transformers import (BertConfig, BertTokenizer, GroundingDinoConfig, GroundingDinoForObjectDetection,
                              GroundingDinoProcessor, SwinConfig)
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil,
    )

    folder.mkdir(parents=True, exist_ok=True)
    write_bert_vocab(folder / "vocab.txt")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"))
    swin = SwinConfig(image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                      window_size=4, out_indices=[2, 3, 4])
    bert = BertConfig(vocab_size=1100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=64)
    config = GroundingDinoConfig(backbone_config=swin, text_config=bert, num_queries=12, encoder_layers=1,
                                 decoder_layers=2, encoder_ffn_dim=32, decoder_ffn_dim=32, d_model=32,
                                 encoder_attention_heads=2, decoder_attention_heads=2, max_text_len=64,
                                 encoder_n_points=1, decoder_n_points=1)
    torch.manual_seed(seed)
    GroundingDinoForObjectDetection(config).save_pretrained(folder)
    image_processor = GroundingDinoImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 112})
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def save_sam(folder: Path, seed: int = 0) -> Path:
    from transformers import (SamConfig, SamMaskDecoderConfig, SamModel, SamProcessor, SamPromptEncoderConfig,
                              SamVisionConfig)
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    vision = SamVisionConfig(hidden_size=16, output_channels=16, num_hidden_layers=2, num_attention_heads=2,
                             image_size=64, patch_size=8, window_size=4, global_attn_indexes=[1], mlp_dim=32,
                             num_pos_feats=8)
    prompt = SamPromptEncoderConfig(hidden_size=16, image_size=64, patch_size=8, mask_input_channels=4)
    decoder = SamMaskDecoderConfig(hidden_size=16, mlp_dim=32, num_hidden_layers=1, num_attention_heads=2,
                                   iou_head_hidden_dim=16)
    torch.manual_seed(seed)
    SamModel(SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)) \
        .save_pretrained(folder)
    image_processor = SamImageProcessorPil(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64},
                                           mask_size={"longest_edge": 16}, mask_pad_size={"height": 16, "width": 16})
    SamProcessor(image_processor=image_processor).save_pretrained(folder)
    return folder


def save_depth_anything(folder: Path, metric: bool = True, constant_sigmoid_input: float | None = None) -> Path:
    """A tiny Depth Anything (DINOv2 backbone, DPT head). With ``constant_sigmoid_input`` b, the head's last conv
    outputs b everywhere, so the metric model predicts max_depth * sigmoid(b) at every pixel."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    backbone = Dinov2Config(image_size=56, patch_size=14, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
                            intermediate_size=32, out_indices=[1, 2, 3, 4], reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=16, neck_hidden_sizes=[8, 8, 8, 8],
                                 fusion_hidden_size=8, head_hidden_size=8,
                                 depth_estimation_type="metric" if metric else "relative", max_depth=80)
    torch.manual_seed(0)
    model = DepthAnythingForDepthEstimation(config)
    if constant_sigmoid_input is not None:
        with torch.no_grad():
            model.head.conv3.weight.zero_()
            model.head.conv3.bias.fill_(constant_sigmoid_input)
    model.save_pretrained(folder)
    DPTImageProcessorPil(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14,
                         do_pad=False, resample=3, image_mean=[0.485, 0.456, 0.406],
                         image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)
    return folder


#: A local torch.hub repo whose entry point builds a model with Metric3D's inference interface. Its canonical
#: depth is gain * (base + slope * normalised red channel) inside the image and 0 over the padding (where the
#: normalised input is 0 in every channel), so un-padding and resizing errors show.
METRIC3D_HUBCONF = '''
dependencies = ["torch"]

import torch


class TinyMetric3D(torch.nn.Module):
    def __init__(self, base, slope):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.ones(1))
        self.base, self.slope = base, slope
        self.seen = []

    def inference(self, data):
        x = data["input"]
        self.seen.append(tuple(x.shape))
        inside = (x.abs().sum(dim=1, keepdim=True) > 1e-6).float()
        depth = self.gain * (self.base + self.slope * x[:, :1]) * inside
        return depth, torch.ones_like(depth), {"prediction_normal": torch.zeros_like(x)}


def metric3d_vit_tiny(pretrain=False, base=20.0, slope=0.0, **kwargs):
    assert not pretrain, "the tests never download"
    return TinyMetric3D(base, slope)


def metric3d_convnext_tiny(pretrain=False, **kwargs):
    return TinyMetric3D(20.0, 0.0)
'''


def save_metric3d_repo(folder: Path, gain: float = 1.0) -> tuple[Path, Path]:
    """(repo folder with hubconf.py, checkpoint .pth holding {'model_state_dict': {'gain': gain}})."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hubconf.py").write_text(textwrap.dedent(METRIC3D_HUBCONF))
    checkpoint = folder / "metric_depth_vit_tiny.pth"
    torch.save({"model_state_dict": {"gain": torch.tensor([gain])}}, checkpoint)
    return folder, checkpoint
