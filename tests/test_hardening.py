"""Bad input to every command, table by table: exit code 2, one line naming the file (or the table and row), no
traceback, and nothing created or changed outside the places a command may write (a listing of the whole
temporary tree, and of the shared dataset, before and after). Names read from a dataset's tables never leave their
folder (absolute names, '..' anywhere, empty names, NUL bytes)."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from easyocc import cli
from easyocc.config import config_to_dict, load_config
from easyocc.errors import InputError
from easyocc.fileio import map_path, path_inside, safe_name, sweep_temporaries, temporary_prefix
from easyocc.labels.sources.base import check_semantics
from easyocc.models.easyocc import build_model
from easyocc.occ3d import read_prediction
from easyocc.training.checkpoint import save_checkpoint
from easyocc.training.config import TrainConfig
from model_fixtures import TINY_OVERRIDES, torch_single_thread  # noqa: F401

VERSION = "v1.0-mini"
#: tqdm's progress lines (they share stderr with the error line).
PROGRESS = re.compile(r"\d+%\||\d+/\d+ \[|it/s\]|keyframe/s\]|label/s\]")
pytestmark = pytest.mark.usefixtures("torch_single_thread")
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")

# --- the sandbox ---------------------------------------------------------------------------------------------------


def listing(*roots: Path) -> dict[str, tuple]:
    """Every file (size, mtime) and folder under ``roots``, keyed by path: what a command may not change."""
    out = {}
    for root in roots:
        for directory, subdirs, files in os.walk(root):
            for name in subdirs:
                out[os.path.join(directory, name)] = ("dir",)
            for name in files:
                stat = os.lstat(os.path.join(directory, name))
                out[os.path.join(directory, name)] = (stat.st_size, stat.st_mtime_ns)
    return out


def load_tables(root: Path) -> dict[str, list]:
    return {p.stem: json.loads(p.read_text()) for p in (root / VERSION).glob("*.json")}


def save_tables(root: Path, tables: dict[str, list]) -> None:
    for name, rows in tables.items():
        (root / VERSION / f"{name}.json").write_text(json.dumps(rows))


def replaced(value, old: str, new: str):
    """``value`` (a JSON tree) with every string equal to ``old`` replaced by ``new`` (a token and its references)."""
    if isinstance(value, list):
        return [replaced(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: replaced(v, old, new) for k, v in value.items()}
    return new if value == old else value


@dataclass
class Sandbox:
    """A temporary tree for one case: ``data`` is a view of the shared tiny SimScenes (its own tables, the
    rest linked unless copied), ``work/deep`` holds the outputs, so an escaping '../..' lands inside the sandbox."""

    root: Path
    shared: Path
    checkpoint: Path
    train_config: Path
    data: Path = field(init=False)
    work: Path = field(init=False)

    def __post_init__(self):
        self.data = self.root / "data"
        self.work = self.root / "work" / "deep"
        self.work.mkdir(parents=True)
        (self.data / VERSION).mkdir(parents=True)
        for path in self.shared.iterdir():
            if path.is_file():
                shutil.copy2(path, self.data / path.name)
            elif path.name != VERSION:
                (self.data / path.name).symlink_to(path)
        shutil.copytree(self.shared / VERSION, self.data / VERSION, dirs_exist_ok=True)

    def own(self, name: str) -> Path:
        """Replace the link to the shared ``name`` folder by a copy this case may damage."""
        (self.data / name).unlink()
        shutil.copytree(self.shared / name, self.data / name)
        return self.data / name

    def edit_tables(self, edit: Callable[[dict], None]) -> None:
        tables = load_tables(self.data)
        edit(tables)
        save_tables(self.data, tables)

    def rename(self, table: str, row: int, field_name: str, new: str) -> None:
        """Give row ``row`` of ``table`` a new ``field_name`` (a token is replaced in every table that cites it)."""
        def edit(tables):
            old = tables[table][row][field_name]
            if field_name == "token":
                tables.update({name: replaced(rows, old, new) for name, rows in tables.items()})
            else:
                tables[table][row][field_name] = new
        self.edit_tables(edit)

    def keyframe_images(self, scene_name: str) -> list[Path]:
        tables = load_tables(self.data)
        scene = next(s for s in tables["scene"] if s["name"] == scene_name)
        samples = {s["token"] for s in tables["sample"] if s["scene_token"] == scene["token"]}
        return [self.data / sd["filename"] for sd in tables["sample_data"]
                if sd["sample_token"] in samples and sd["filename"].endswith(".jpg")]

    def first_sample_row(self, scene_name: str) -> int:
        tables = load_tables(self.data)
        first = next(s for s in tables["scene"] if s["name"] == scene_name)["first_sample_token"]
        return next(i for i, s in enumerate(tables["sample"]) if s["token"] == first)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, Path]:
    """(model.pt of an untrained tiny model, a tiny training config YAML): enough to run predict and train."""
    folder = tmp_path_factory.mktemp("tiny-run")
    config = load_config(TrainConfig, None, [*TINY_OVERRIDES, "optim.epochs=1", f"data.version={VERSION}",
                                             "data.image_size=[32,64]"])
    torch.manual_seed(0)
    save_checkpoint(folder / "model.pt", {"config": config_to_dict(config),
                                          "model": build_model(config.model, load_weights=False).state_dict()})
    import yaml

    (folder / "tiny.yaml").write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    return folder / "model.pt", folder / "tiny.yaml"


@pytest.fixture
def sandbox(tmp_path, tiny_simscenes, tiny_run) -> Sandbox:
    return Sandbox(tmp_path, tiny_simscenes, *tiny_run)


def error_line(err: str, command: str) -> str:
    """The one error line of stderr; everything else may only be progress bars."""
    assert "Traceback" not in err, err
    lines = [part for line in err.split("\n") for part in [line.split("\r")[-1].strip()] if part]
    errors = [line for line in lines if line.startswith(f"easyocc {command}: error: ")]
    others = [line for line in lines if line not in errors and not PROGRESS.search(line)
              and not line.startswith(f"easyocc {command}: note: ")]
    assert len(errors) == 1 and not others, err
    return errors[0]


# --- the table -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """``setup(sandbox)`` prepares the bad input and returns the command line; the error line must hold every
    string of ``expect(sandbox)``; only paths under the sandbox's ``allowed`` (relative to it) may change."""

    setup: Callable[[Sandbox], list[str]]
    expect: Callable[[Sandbox], tuple[str, ...]]
    allowed: tuple[str, ...] = ()
    marks: tuple = ()


def labels_cmd(s: Sandbox, *extra: str) -> list[str]:
    return ["labels", "--data", str(s.data), "--out", str(s.work / "out"), "--split", "all", "--frames", "1", *extra]


def train_cmd(s: Sandbox, *extra: str, labels: Path | None = None) -> list[str]:
    return ["train", "--config", str(s.train_config), "--data", str(s.data), "--labels", str(labels or s.data / "gts"),
            "--out", str(s.work / "run"), "--quiet", *extra]


def predict_cmd(s: Sandbox, *extra: str, checkpoint: Path | None = None) -> list[str]:
    return ["predict", "--checkpoint", str(checkpoint or s.checkpoint), "--data", str(s.data),
            "--out", str(s.work / "preds"), "--quiet", *extra]


def with_file(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def escaping_names(s: Sandbox) -> dict[str, str]:
    """Names that would leave their folder: absolute, '..' first / in the middle / last, empty, NUL."""
    return {"absolute": str(s.root / "abs-escape"), "parent": "../../escape", "middle": "x/../../../escape",
            "last": "x/..", "empty": "", "nul": "scene\x00name"}


def scene_name_case(kind: str) -> Case:
    return Case(lambda s: (s.rename("scene", 0, "name", escaping_names(s)[kind]), labels_cmd(s))[1],
                lambda s: ("scene.json", "row 0", "name"))


def token_case(kind: str) -> Case:
    def setup(s):
        s.rename("sample", s.first_sample_row("scene-0002"), "token", escaping_names(s)[kind])
        return predict_cmd(s, "--workers", "0")
    return Case(setup, lambda s: ("sample.json", f"row {s.first_sample_row('scene-0002')}", "token"))


def filename_case(kind: str) -> Case:
    def setup(s):
        names = escaping_names(s)
        tables = load_tables(s.data)
        row = next(i for i, sd in enumerate(tables["sample_data"]) if sd["filename"].endswith(".jpg"))
        s.rename("sample_data", row, "filename", names[kind] + ("" if kind in ("empty", "last") else ".jpg"))
        return labels_cmd(s, "--cache-dir", str(s.work / "cache"))
    return Case(setup, lambda s: ("sample_data.json", "row", "filename"))


def bad_semantic_map(value: int) -> Callable[[Sandbox], list[str]]:
    """An int32 ``.npy`` semantic map holding ``value`` for every image (the npy source)."""
    def setup(s):
        root = s.work / "semantics"
        for sd in load_tables(s.data)["sample_data"]:
            if sd["filename"].endswith(".jpg"):
                path = map_path(root, sd["filename"], ".npy")
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, np.full((90, 160), value, np.int32))
        return labels_cmd(s, "--semantics", "npy", "--semantics-dir", str(root))
    return setup


def truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def broken_label_file(damage: str):
    """A copy of the GT as training labels with one train label damaged: value 20 or truncated."""
    def setup(s):
        labels = s.work / "labels"
        shutil.copytree(s.shared / "gts", labels)
        target = sorted((labels / "scene-0001").glob("*/labels.npz"))[1]
        if damage == "value":
            arrays = dict(np.load(target))
            arrays["semantics"][0, 0, 0] = 20
            np.savez_compressed(target, **arrays)
        else:
            truncate(target)
        return train_cmd(s, "--set", "data.num_workers=2", labels=labels)
    return setup


def truncated_images(scene: str, command: Callable) -> Callable[[Sandbox], list[str]]:
    """Every image of ``scene`` truncated (the first batch fails, whatever the order)."""
    def setup(s):
        s.own("samples")
        for image in s.keyframe_images(scene):
            truncate(image)
        return command(s)
    return setup


def predict_over_earlier(s: Sandbox) -> list[str]:
    """An earlier prediction set in --out, then a truncated val image: the rerun must leave the set as it was."""
    assert cli.main(predict_cmd(s, "--workers", "0")) == 0
    s.own("samples")
    truncate(sorted(s.keyframe_images("scene-0002"))[2])
    return predict_cmd(s, "--workers", "2")


def empty_yaml(s: Sandbox) -> Path:
    return with_file(s.root / "empty.yaml", "")


CASES: dict[str, Case] = {
    # synth
    "synth: --out is a file": Case(lambda s: ["synth", "--out", str(with_file(s.work / "f"))],
                                   lambda s: (str(s.work / "f"), "not a directory")),
    "synth: --preview is a folder": Case(lambda s: ["synth", "--out", str(s.work / "sim"), "--preview",
                                                    str(s.work)], lambda s: (str(s.work), "is a folder")),
    "synth: --scenes 0": Case(lambda s: ["synth", "--out", str(s.work / "sim"), "--scenes", "0"],
                              lambda s: ("at least one scene",)),
    # labels: names from the tables (1), values of the maps (2), settings (4, 8), tables (10)
    **{f"labels: scene name {k}": scene_name_case(k) for k in ("absolute", "parent", "middle", "empty", "nul")},
    **{f"labels --cache-dir: image filename {k}": filename_case(k)
       for k in ("absolute", "parent", "middle", "last", "empty", "nul")},
    "labels: semantics 260 in an int32 map": Case(bad_semantic_map(260), lambda s: (".npy", "value 260"),
                                                  allowed=("work/deep/out",)),
    "labels: semantics -1 in an int32 map": Case(bad_semantic_map(-1), lambda s: (".npy", "value -1"),
                                                 allowed=("work/deep/out",)),
    "labels: YAML frames 2.5": Case(lambda s: labels_cmd(s, "--config", str(with_file(s.root / "l.yaml",
                                                                                         "frames: 2.5\n"))),
                                    lambda s: ("l.yaml", "frames", "integer")),
    "labels: YAML carve maybe": Case(lambda s: labels_cmd(s, "--config", str(with_file(s.root / "l.yaml",
                                                                                         "carve: maybe\n"))),
                                     lambda s: ("l.yaml", "carve", "true or false")),
    "labels: YAML dynamic class unknown": Case(
        lambda s: labels_cmd(s, "--config", str(with_file(s.root / "l.yaml", "dynamic_classes: [car, cars]\n"))),
        lambda s: ("l.yaml", "unknown class 'cars'")),
    "labels: YAML empty": Case(lambda s: labels_cmd(s, "--config", str(empty_yaml(s))),
                               lambda s: ("empty.yaml", "empty")),
    "labels: --device tpu": Case(lambda s: labels_cmd(s, "--device", "tpu"), lambda s: ("invalid device 'tpu'",)),
    "labels: --device cuda without a GPU": Case(lambda s: labels_cmd(s, "--device", "cuda"),
                                                lambda s: ("no CUDA device",), marks=(NO_GPU,)),
    "labels: --out is a file": Case(lambda s: labels_cmd(s)[:-4] + ["--out", str(with_file(s.work / "out"))],
                                    lambda s: (str(s.work / "out"), "not a folder")),
    "labels: --workers 0": Case(lambda s: labels_cmd(s, "--workers", "0"), lambda s: ("--workers",)),
    "labels: truncated scene.json": Case(lambda s: (truncate(s.data / VERSION / "scene.json"), labels_cmd(s))[1],
                                         lambda s: (str(s.data / VERSION / "scene.json"),)),
    "labels: no table version": Case(lambda s: labels_cmd(s, "--version", "v1.0-trainval"),
                                     lambda s: ("v1.0-trainval", "found: v1.0-mini")),
    # label-quality (10)
    "label-quality: --sweep ignores --labels": Case(
        lambda s: ["label-quality", "--sweep", "--labels", str(s.data / "gts"), "--gt", str(s.data / "gts"),
                   "--data", str(s.data), "--out", str(s.work / "sweep")], lambda s: ("--labels",)),
    "label-quality: --out without --sweep": Case(
        lambda s: ["label-quality", "--labels", str(s.data / "gts"), "--gt", str(s.data / "gts"), "--out",
                   str(s.work / "sweep")], lambda s: ("--out", "--sweep")),
    "label-quality: --json is a folder": Case(
        lambda s: ["label-quality", "--labels", str(s.data / "gts"), "--gt", str(s.data / "gts"), "--json",
                   str(s.work)], lambda s: (str(s.work), "is a folder")),
    # train: worker errors (3), devices and values (8), configs (10)
    "train: label value 20, read in a worker": Case(broken_label_file("value"),
                                                    lambda s: ("labels.npz", "value 20"), allowed=("work/deep/labels",)),
    "train: truncated label, read in a worker": Case(broken_label_file("truncated"),
                                                     lambda s: ("labels.npz", "not a readable npz"),
                                                     allowed=("work/deep/labels",)),
    "train: truncated JPEG, read in a worker": Case(
        truncated_images("scene-0001", lambda s: train_cmd(s, "--set", "data.num_workers=2")),
        lambda s: (".jpg", "cannot read the image")),
    "train: --device tpu": Case(lambda s: train_cmd(s, "--device", "tpu"), lambda s: ("invalid device 'tpu'",)),
    "train: --device cuda without a GPU": Case(lambda s: train_cmd(s, "--device", "cuda"),
                                               lambda s: ("no CUDA device",), marks=(NO_GPU,)),
    "train: data.num_workers=-1": Case(lambda s: train_cmd(s, "--set", "data.num_workers=-1"),
                                       lambda s: ("num_workers must be >= 0",)),
    "train: optim.lr=nan": Case(lambda s: train_cmd(s, "--set", "optim.lr=.nan"), lambda s: ("learning rates",)),
    "train: image size not a multiple of the stride": Case(lambda s: train_cmd(s, "--set", "data.image_size=[70,128]"),
                                                           lambda s: ("feature_stride",)),
    "train: empty config file": Case(lambda s: train_cmd(s)[:1] + ["--config", str(empty_yaml(s))] + train_cmd(s)[3:],
                                     lambda s: ("empty.yaml", "empty")),
    "train: --out is a file": Case(lambda s: train_cmd(s)[:-3] + ["--out", str(with_file(s.work / "run")), "--quiet"],
                                   lambda s: (str(s.work / "run"), "not a folder")),
    # predict: names (1), worker errors and half sets (3), devices and folders (8, 10)
    # (an empty sample token ends a scene's chain of samples: the devkit sees no keyframe, nothing to name)
    **{f"predict: sample token {k}": token_case(k) for k in ("absolute", "parent", "middle", "nul")},
    "predict: truncated JPEG over an earlier set": Case(predict_over_earlier, lambda s: (".jpg", "cannot read"),
                                                        allowed=("work/deep/preds",)),
    "predict: --device tpu": Case(lambda s: predict_cmd(s, "--device", "tpu"), lambda s: ("invalid device 'tpu'",)),
    "predict: --device cuda without a GPU": Case(lambda s: predict_cmd(s, "--device", "cuda"),
                                                 lambda s: ("no CUDA device",), marks=(NO_GPU,)),
    "predict: --out is a file": Case(lambda s: (with_file(s.work / "preds"), predict_cmd(s))[1],
                                     lambda s: (str(s.work / "preds"), "not a folder")),
    "predict: --out holds foreign files": Case(lambda s: (with_file(s.work / "preds" / "notes.txt"), predict_cmd(s))[1],
                                               lambda s: (str(s.work / "preds"), "not an easyocc predict folder",
                                                          "notes.txt")),
    "predict: a garbage checkpoint": Case(lambda s: predict_cmd(s, checkpoint=with_file(s.root / "g.pt", "garbage")),
                                          lambda s: ("g.pt", "not an easyocc checkpoint")),
    # eval
    "eval: --json is a folder": Case(lambda s: ["eval", "--pred", str(s.data / "gts"), "--gt", str(s.data / "gts"),
                                                "--json", str(s.work)], lambda s: (str(s.work), "is a folder")),
    "eval: a half-replaced prediction folder": Case(
        lambda s: (with_file(s.work / "p" / "predictions.json", json.dumps(
            {"format": "easyocc-predictions/1", "samples": [], "complete": False})),
            ["eval", "--pred", str(s.work / "p"), "--gt", str(s.data / "gts")])[1],
        lambda s: ("predictions.json", "rerun")),
    # demo: every setting checked before anything is written (5)
    "demo: --set optim.epochs=abc": Case(lambda s: ["demo", "--out", str(s.work / "demo"), "--set", "optim.epochs=abc"],
                                         lambda s: ("--set", "optim.epochs")),
    "demo: --config missing": Case(lambda s: ["demo", "--out", str(s.work / "demo"), "--config", "nope"],
                                   lambda s: ("nope", "config file not found")),
    "demo: --workers 0": Case(lambda s: ["demo", "--out", str(s.work / "demo"), "--workers", "0"],
                              lambda s: ("--workers",)),
    "demo: --out is a file": Case(lambda s: ["demo", "--out", str(with_file(s.work / "demo"))],
                                  lambda s: (str(s.work / "demo"), "not a folder")),
}


@pytest.mark.parametrize("name", [pytest.param(n, marks=CASES[n].marks, id=n) for n in CASES])
def test_bad_input_is_one_line_and_touches_nothing(name, sandbox, capsys):
    case = CASES[name]
    argv = case.setup(sandbox)
    capsys.readouterr()
    before = listing(sandbox.root, sandbox.shared)
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    line = error_line(err, argv[0])
    for text in case.expect(sandbox):
        assert text in line, line
    after = listing(sandbox.root, sandbox.shared)
    allowed = tuple(str(sandbox.root / a) for a in case.allowed)
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p) and not p.startswith(allowed))
    assert changed == [], changed


# --- the helpers behind the table ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, nested", [("/etc/x", False), ("/etc/x", True), ("..", False), ("../x", True),
                                          ("a/../../x", True), ("a/..", True), ("a//b", True), ("a/b", False),
                                          ("", False), ("", True), ("a\x00b", True), (".", False), (3, False)])
def test_unsafe_names_are_refused_naming_where_they_come_from(name, nested, tmp_path):
    with pytest.raises(InputError, match=r"^TABLE: row 7: name"):
        safe_name(name, "TABLE", "row 7: name", nested)
    with pytest.raises(InputError):
        path_inside(tmp_path, "ok", name, nested=nested)


def test_safe_names_stay_inside(tmp_path):
    assert path_inside(tmp_path, "scene-0001", "abc") == tmp_path / "scene-0001" / "abc"
    assert map_path(tmp_path, "samples/CAM_FRONT/x.y.jpg", ".npy") == tmp_path / "samples" / "CAM_FRONT" / "x.y.npy"
    with pytest.raises(InputError, match="image path"):
        map_path(tmp_path, "../samples/x.jpg", ".npy")


@pytest.mark.parametrize("dtype, value", [(np.int32, 260), (np.int32, -1), (np.int64, 2**40), (np.int16, 18)])
def test_semantics_are_checked_in_their_own_dtype(dtype, value, tmp_path):
    from sources_util import make_camera

    camera = make_camera(tmp_path, width=8, height=4)
    labels = np.zeros((4, 8), dtype)
    labels[1, 2] = value
    with pytest.raises(InputError, match=f"value {value}"):
        check_semantics(labels, camera, "npy", path="map.npy")
    labels[1, 2] = 255  # ignore stays allowed, and 17 (sky)
    labels[0, 0] = 17
    assert check_semantics(labels, camera, "npy").dtype == np.uint8


def test_rerun_sweeps_dead_writers_temporaries_only(tmp_path):
    dead = tmp_path / "scene" / "tok" / f".labels.npz.{2**22 + 12345}@{temporary_prefix('x').split('@')[1]}abcdefgh.tmp"
    dead.parent.mkdir(parents=True)
    dead.write_bytes(b"")
    mine = tmp_path / f"{temporary_prefix('last.pt')}abcdefgh.tmp"
    mine.write_bytes(b"live")
    old_style = tmp_path / ".last.pt.k2j4h5g6.tmp"
    old_style.write_bytes(b"x" * 16)
    users = tmp_path / ".notes.tmp"
    users.write_text("not ours")
    os.utime(old_style, (1, 1))
    os.utime(users, (1, 1))
    assert sweep_temporaries(tmp_path) == 2
    assert not dead.exists() and not old_style.exists() and mine.exists() and users.exists()


def test_cached_depth_is_recorded_in_the_manifest(tiny_simscenes, tmp_path):
    """Labels made with the float16 depth cache differ from labels made without it: another manifest, so a
    resumed folder never mixes them."""
    common = ["labels", "--data", str(tiny_simscenes), "--scenes", "scene-0001", "--frames", "0"]
    assert cli.main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert cli.main([*common, "--out", str(tmp_path / "plain"), "--cache-dir", str(tmp_path / "cache")]) == 2
    plain = json.loads((tmp_path / "plain" / "manifest.json").read_text())
    assert not plain["depth"].endswith("float16-cache")
    assert cli.main([*common, "--out", str(tmp_path / "cached"), "--cache-dir", str(tmp_path / "cache")]) == 0
    cached = json.loads((tmp_path / "cached" / "manifest.json").read_text())
    assert cached["depth"] == plain["depth"] + "+float16-cache" and cached["semantics"] == plain["semantics"]


def test_predict_replaces_its_own_set_and_eval_scores_the_predicted_split(sandbox, capsys):
    """A rerun into an earlier predict folder replaces the set and says so; eval, without --allow-missing, scores
    the keyframes predictions.json lists (the val split) and counts the others."""
    out = sandbox.work / "preds"
    assert cli.main(predict_cmd(sandbox, "--workers", "0", "--split", "train")) == 0
    train_tokens = json.loads((out / "predictions.json").read_text())["samples"]
    assert cli.main(predict_cmd(sandbox, "--workers", "0")) == 0
    captured = capsys.readouterr()
    assert "replaced the earlier run's predictions" in captured.err and "4 of other keyframes removed" in captured.err
    manifest = json.loads((out / "predictions.json").read_text())
    assert manifest["split"] == "val" and manifest["complete"] is True and len(manifest["samples"]) == 4
    assert sorted(p.name for p in out.iterdir()) == sorted([*(f"{t}.npz" for t in manifest["samples"]),
                                                           "predictions.json"])
    assert not set(train_tokens) & set(manifest["samples"])
    assert read_prediction(out / f"{manifest['samples'][0]}.npz").shape == (200, 200, 16)
    report = sandbox.root / "eval.json"
    assert cli.main(["eval", "--pred", str(out), "--gt", str(sandbox.data / "gts"), "--workers", "1",
                     "--json", str(report), "--no-progress"]) == 0
    scores = json.loads(report.read_text())
    assert scores["num_samples"] == 4 and scores["not_predicted"] == 4 and scores["missing_predictions"] == 0
