"""``easyocc compare``: experiment files are checked before anything runs; on a tiny world with two variants the
runner trains, predicts, scores and reports, reuses what is finished, and refuses other settings in its folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from easyocc import cli
from easyocc.config import load_config, resolve_config_path
from easyocc.errors import InputError
from easyocc.experiments.definition import BUILTIN_EXPERIMENT_DIR, load_experiment
from easyocc.training.config import TrainConfig
from model_fixtures import TINY_OVERRIDES

#: A tiny world and a tiny network: two variants that differ only in the CE class weights.
TINY_EXPERIMENT = {
    "description": "Two variants on a tiny world.",
    "world": {"scenes": 2, "keyframes": 3, "image_size": [160, 90], "seed": 0},
    "label_sets": {"past2": {"frames": 2}},
    "training": {"config": "demo", "epochs": 1, "overrides": TINY_OVERRIDES},
    "variants": {
        "sqrt": {"labels": "past2", "description": "1/sqrt(frequency)"},
        "inverse": {"labels": "past2", "overrides": ["loss.class_weighting=inverse_frequency"]},
    },
}


def write_experiment(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --- the definition ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    ({"world": {"scenes": 2, "keyframez": 3}}, "unknown key 'world.keyframez'"),
    ({"variants": {"a": {"labels": "past3"}}}, "variant 'a': unknown label set 'past3' (label sets: past2)"),
    ({"variants": {"a": {"labels": "past2", "config": "nope"}}},
     "variant 'a': training config 'nope': config file not found (built-in configs: demo, labels, occnerf"),
    ({"variants": {"a": {"labels": "past2", "overrides": ["loss.weight=1"]}}},
     "variant 'a': unknown key 'loss.weight' in override 'loss.weight=1'"),
    ({"variants": {"a b": {"labels": "past2"}}}, "variant name 'a b' is not a folder name"),
    ({"reference": "c"}, "reference: unknown variant 'c' (variants: sqrt, inverse)"),
    ({"variants": {}}, "an experiment needs at least one variant"),
    ({"label_sets": {"past2": {"frames": -1}}}, "label_sets.past2: invalid label settings: frames must be >= 0"),
    ({"world": {"scenes": 1}}, "world: scenes must be at least 2"),
    ({"world": {"sweeps": "some"}}, "world.sweeps: 'some' is not one of 'none', 'neighbours', 'all'"),
])
def test_bad_experiment_files_are_one_line_errors_naming_the_file(tmp_path, change, message):
    path = write_experiment(tmp_path / "bad.yaml", {**TINY_EXPERIMENT, **change})
    with pytest.raises(InputError) as info:
        load_experiment(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_cli_errors_write_nothing(tmp_path, capsys):
    path = write_experiment(tmp_path / "bad.yaml", {**TINY_EXPERIMENT, "variants": {"a": {"labels": "nope"}}})
    out = tmp_path / "out"
    assert cli.main(["compare", "--experiment", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"easyocc compare: error: {path}: variant 'a': unknown label set") and err.count("\n") == 1
    assert cli.main(["compare", "--experiment", "nope", "--out", str(out)]) == 2
    assert "experiment file not found (built-in experiments: class_weights, compare, label_ideas" in capsys.readouterr().err
    assert cli.main(["compare", "--experiment", str(write_experiment(tmp_path / "ok.yaml", TINY_EXPERIMENT)),
                     "--out", str(out), "--set", "training.epochs=0"]) == 2
    assert "training: epochs must be at least 1" in capsys.readouterr().err
    assert not out.exists()


def test_variants_resolve_with_overrides_in_order(tmp_path):
    own = tmp_path / "mine.yaml"  # a training config file beside the experiment, named relative to it
    own.write_text("seed: 5\n")
    data = {**TINY_EXPERIMENT, "variants": {**TINY_EXPERIMENT["variants"], "own": {"labels": "past2",
                                                                               "config": "mine.yaml"}}}
    experiment = load_experiment(write_experiment(tmp_path / "e.yaml", data),
                                 ["variants.sqrt.overrides=[optim.epochs=3]", "world.seed=4"])
    assert experiment.name == "e" and experiment.config.world.seed == 4
    assert experiment.config.world.synth_config().sweeps == "none"  # EasyOcc trains on keyframes alone
    assert load_experiment(experiment.path, ["world.sweeps=neighbours"]).config.world.synth_config().sweeps == \
           "neighbours"
    assert experiment.config.reference_variant == "sqrt" and experiment.config.masks_of("inverse") == ["camera", "none"]
    sqrt, inverse, own_config = (experiment.training[n] for n in ("sqrt", "inverse", "own"))
    assert sqrt.optim.epochs == 3 and inverse.optim.epochs == 1  # the variant's own overrides come last
    assert inverse.loss.class_weighting == "inverse_frequency" and sqrt.loss.class_weighting == "inverse_sqrt_frequency"
    assert sqrt.model.volume_channels == 4 and sqrt.data.version == "v1.0-mini" and sqrt.data.split == "train"
    assert own_config.seed == 5 and own_config.model.backbone == "resnet18"


def test_shipped_experiments_load_and_give_every_row_the_same_budget_and_seed(capsys):
    names = sorted(p.stem for p in BUILTIN_EXPERIMENT_DIR.glob("*.yaml"))
    assert {"compare", "class_weights", "loss_ratio", "lovasz", "lovasz_voxels", "region", "label_window", "label_ideas"} <= set(names)
    for name in names:
        experiment = load_experiment(name)
        budgets = {(c.optim.epochs, c.optim.batch_size, c.data.image_size) for c in experiment.training.values()}
        assert len(budgets) == 1, name
        if name != "seeds":
            assert {c.seed for c in experiment.training.values()} == {0}, name
        assert experiment.config.world.scenes == 6 and experiment.config.sources.noise == "realistic"
    rays = load_experiment("label_ideas").training
    assert [rays[v].loss.pseudo_weight for v in ("default", "rays", "default_rays")] == [1.0, 0.0, 1.0]
    assert [rays[v].loss.ray_queries.weight for v in ("default", "rays", "default_rays")] == [0.0, 1.0, 0.5]
    window = load_experiment("label_window").config
    assert [window.label_sets[window.variants[v].labels].frames for v in window.variants] == [0, 3, 13]
    assert load_experiment("region").training["all"].loss.region == "all"
    # The paper's table: the same encoder, lifting, volume, schedule and seed; (a) renders only, (b) adds the pseudo
    # loss, (c) is EasyOcc; the world has the sweeps the rendering model warps into.
    compare = load_experiment("compare")
    a, b, c = (compare.training[n] for n in ("occnerf", "occnerf_pseudo", "easyocc"))
    assert compare.config.world.sweeps == "neighbours" and compare.config.reference_variant == "easyocc"
    assert a.model == b.model == c.model and a.optim == b.optim == c.optim and a.data == b.data == c.data
    assert (a.render is not None, a.loss.pseudo_weight) == (True, 0.0)
    assert (b.render is not None, b.loss.pseudo_weight, b.loss == c.loss) == (True, 1.0, True)
    assert c.render is None and a.render == b.render and a.sources.oracle_noise == compare.config.sources.noise
    assert cli.main(["compare", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(line.split()[0] in names for line in listed.splitlines()) and len(listed.splitlines()) == len(names)


def test_export_names_the_files_after_the_experiment_and_renames_the_links(tmp_path):
    from easyocc.experiments.report import EXPORT_NAMES, export_report

    report = tmp_path / "report"
    report.mkdir()
    for name in EXPORT_NAMES:
        (report / name).write_bytes(b"\x89PNG-bytes" if name.endswith(".png") else b"a,b\n")
    (report / "report.md").write_text("![scores](scores.png)\n![per-class IoU](per_class_iou.png)\n"
                                      "Files: `results.json`, `results.csv`, `per_class.csv`.\n")
    written = export_report(report, tmp_path / "docs", "region")
    assert [p.name for p in written] == ["region.md", "region.csv", "region.json", "region.png",
                                         "region_per_class.csv", "region_per_class_iou.png"]
    assert (tmp_path / "docs" / "region.md").read_text() == (
        "![scores](region.png)\n![per-class IoU](region_per_class_iou.png)\n"
        "Files: `region.json`, `region.csv`, `region_per_class.csv`.\n")
    assert (tmp_path / "docs" / "region.png").read_bytes() == b"\x89PNG-bytes"
    (report / "scores.png").unlink()
    with pytest.raises(InputError, match=r"report: not a finished report \(no scores.png\)"):
        export_report(report, tmp_path / "other", "region")
    assert not (tmp_path / "other").exists()


def test_rendering_variants_need_sweeps_and_the_experiments_oracle_noise():
    from types import SimpleNamespace

    from easyocc.config import config_from_dict
    from easyocc.experiments.definition import ExperimentConfig, sources_mismatch

    def rendering(noise, semantics="oracle"):
        return SimpleNamespace(render=object(), sources=SimpleNamespace(semantics=semantics, depth="npy",
                                                                        oracle_noise=noise))

    config = config_from_dict(ExperimentConfig, {**TINY_EXPERIMENT, "world": {"sweeps": "neighbours"}})
    assert sources_mismatch(config, rendering("realistic")) is None
    assert sources_mismatch(config, SimpleNamespace(render=None)) is None  # EasyOcc: keyframes only
    assert sources_mismatch(config, rendering("mild")) == (
        "its 2D sources' oracle noise 'mild' is not the experiment's 'realistic' (sources.noise); set "
        "sources.oracle_noise=realistic")
    assert sources_mismatch(config, rendering("mild", semantics="grounded-sam")) is None
    config.world.sweeps = "none"
    assert "set world.sweeps to neighbours" in sources_mismatch(config, rendering("realistic"))
    # EasyOcc with ray queries reads the sources' maps too (no sweeps needed): their oracle noise must match.
    rays = load_config(TrainConfig, resolve_config_path("demo"), ["loss.ray_queries.weight=1"])
    assert "is not the experiment's 'realistic'" in sources_mismatch(config, rays)
    rays = load_config(TrainConfig, resolve_config_path("demo"),
                       ["loss.ray_queries.weight=1", "sources.oracle_noise=realistic"])
    assert sources_mismatch(config, rays) is None


def test_a_variant_marker_from_before_the_ray_queries_matches_todays_variant():
    from easyocc.experiments.runner import normalized_marker, training_settings

    today = training_settings(load_config(TrainConfig, resolve_config_path("demo")))
    old = json.loads(json.dumps(today))
    del old["loss"]["ray_queries"]  # written before loss.ray_queries existed
    labels = {"noise": "realistic", "frames": 13, "min_points": 2, "future_frames": 0, "pass_through": False}
    marker = {"format": "f", "variant": "a", "label_set": "default", "labels": labels, "training": old}
    assert normalized_marker(marker)["training"] == json.loads(json.dumps(today))
    assert today["loss"]["ray_queries"]["weight"] == 0


def test_a_label_set_marker_from_before_the_label_ideas_means_them_off():
    from easyocc.experiments.runner import normalized_marker
    from easyocc.labels.config import LabelConfig

    old = {k: v for k, v in LabelConfig(frames=13, min_points=2).manifest().items()
           if k not in ("future_frames", "pass_through", "pass_through_ratio", "rare_priority", "rare_classes",
                        "rare_min_points")}
    found = normalized_marker({"format": "f", "settings": {"noise": "realistic", **old}})["settings"]
    pinned = LabelConfig(frames=13, min_points=2, future_frames=0, pass_through=False).manifest()
    assert found == json.loads(json.dumps({"noise": "realistic", **pinned}))  # not today's defaults
    assert found["future_frames"] == 0 and LabelConfig().future_frames > 0


def test_summary_table_rows_hold_scores_and_cost():
    from easyocc.experiments.report import summary_table

    def scores(miou, iou):
        return {"camera": {"mIoU": miou, "IoU": iou, "rayiou": {"RayIoU": 9.25}}, "none": {"mIoU": 1.0, "IoU": 2.0}}

    results = {"a": {"kind": "variant", "description": "the default", "scores": scores(10.55, 25.0),
                     "cost": {"iteration_s_median": 1.934, "wall_s": 706.3}},
               "b": {"kind": "variant", "description": "", "status": "failed: diverged", "cost": None},
               "pseudo-labels (x)": {"kind": "reference", "scores": scores(24.6, 45.8)}}
    assert summary_table(results, ["camera", "none"]) == [
        "| | mIoU, camera mask | mIoU, full scene | IoU, camera mask | IoU, full scene | RayIoU | s / iteration "
        "| training wall (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        "| `a`: the default | 10.6 | 1.0 | 25.0 | 2.0 | 9.2 | 1.93 | 706 |",
        "| `b` | - | - | - | - | - |  |  |",
        "| *pseudo-labels (x)* | 24.6 | 1.0 | 45.8 | 2.0 | 9.2 |  |  |"]


def test_reused_stages_keep_the_seconds_of_the_run_that_made_them(tmp_path):
    from easyocc.experiments.runner import STAGE_SECONDS, ExperimentPaths, measured_seconds, training_cost

    paths = ExperimentPaths(tmp_path)
    first = measured_seconds(paths, {"SimScenes": (12.0, "generated"), "variant: a": (30.0, "trained"),
                                     "total": (42.5, "")})
    assert first == {"SimScenes": (12.0, "generated"), "variant: a": (30.0, "trained"),
                     "total": (42.0, "the stages' seconds above")}
    # A variant trained by an older runner (no record): its training's wall time from cost.json.
    (paths.run("b")).mkdir(parents=True)
    (paths.run("b") / "train_log.jsonl").write_text(json.dumps(
        {"epoch": 1, "iteration": 4, "seconds": 20.0, "loss": 1.0, "iteration_s_median": 5.0, "peak_memory_mb": 900.0})
        + "\n")
    (paths.variant("b") / "cost.json").write_text(json.dumps({"sessions": [
        {"resumed": False, "returncode": 0, "error": None, "wall_s": 25.0, "load_1min_mean": 2.0,
         "load_1min_max": 3.0}]}))
    # A variant whose first session was killed after its last epoch was logged: the resumed run logs it again and
    # its record says it resumed; its cost counts the epoch once and has no wall time, the stage its epochs' seconds.
    (paths.run("c")).mkdir(parents=True)
    epoch = {"epoch": 1, "iteration": 4, "seconds": 20.0, "loss": 1.0, "iteration_s_median": 5.0,
             "peak_memory_mb": 900.0}
    (paths.run("c") / "train_log.jsonl").write_text((json.dumps(epoch) + "\n") * 2)
    (paths.variant("c") / "cost.json").write_text(json.dumps({"sessions": [
        {"resumed": True, "returncode": 0, "error": None, "wall_s": 3.0, "load_1min_mean": 2.0,
         "load_1min_max": 3.0}]}))
    cost = training_cost(paths, "c")
    assert (cost["epochs"], cost["train_s"], cost["wall_s"]) == (1, 20.0, None)
    again = measured_seconds(paths, {"SimScenes": (0.1, "reused"), "variant: a": (0.2, "reused"),
                                     "variant: b": (0.3, "reused"), "variant: c": (0.4, "reused"),
                                     "references": (1.0, "scored")})
    assert again["variant: c"] == (20.0, "reused; the epochs' seconds (train_log; a killed session's wall time is "
                                         "not known)")
    assert again["SimScenes"] == (12.0, "reused; seconds of the run that made it")
    assert again["variant: a"][0] == 30.0 and again["variant: b"] == (25.0, "reused; the training's wall time "
                                                                           "(cost.json)")
    assert again["total"][0] == 12.0 + 30.0 + 25.0 + 20.0 + 1.0
    assert json.loads((tmp_path / STAGE_SECONDS).read_text()) == {"SimScenes": 12.0, "variant: a": 30.0,
                                                                  "references": 1.0}


def test_readme_compare_commands_parse_and_their_experiments_load():
    import shlex

    from test_readme_examples import readme_commands

    commands = sorted(c for c in readme_commands() if c.startswith("easyocc compare"))
    assert len(commands) >= 3
    for command in commands:
        args = cli.build_parser("compare").parse_args(shlex.split(command)[1:])
        if not args.list:
            experiment = load_experiment(args.experiment, args.overrides)
            assert experiment.config.variants, command


# --- the runner on a tiny world ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_experiment(tmp_path_factory):
    """(experiment file, output folder) after one run."""
    base = tmp_path_factory.mktemp("experiment")
    path = write_experiment(base / "tiny.yaml", TINY_EXPERIMENT)
    out = base / "out"
    assert cli.main(["compare", "--experiment", str(path), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    return path, out


@pytest.mark.slow
def test_report_holds_every_protocol_cost_and_file(tiny_experiment):
    _, out = tiny_experiment
    report = out / "report"
    results = json.loads((report / "results.json").read_text())
    predictors = results["predictors"]
    assert list(predictors) == ["sqrt", "inverse", "pseudo-labels (past2)"]
    assert results["reference_variant"] == "sqrt" and results["num_val_keyframes"] == 3
    for name in ("sqrt", "inverse"):
        p = predictors[name]
        assert p["status"] == "trained" and set(p["scores"]) == {"camera", "none"}
        assert p["scores"]["camera"]["rayiou"]["num_rays"] > 0 and "rayiou" not in p["scores"]["none"]
        cost = p["cost"]
        assert cost["epochs"] == 1 and cost["iterations"] == 3  # scene-0001's three keyframes, one epoch
        assert 0 < cost["iteration_s_median"] < cost["train_s"] <= cost["wall_s"]
        assert cost["peak_memory_mb"] > 200 and cost["memory_kind"] == "process max RSS"
    weights = json.loads((out / "variants" / "inverse" / "run" / "class_weights.json").read_text())
    assert weights["method"] == "inverse_frequency"
    assert predictors["pseudo-labels (past2)"]["scores"]["camera"]["mIoU"] > 5.0
    text = (report / "report.md").read_text()
    for needle in ("| sqrt |", "| inverse |", "| pseudo-labels (past2) |", "mIoU, camera mask", "mIoU, full scene",
                   "mIoU_15, camera mask", "IoU, full scene", "RayIoU@1 / @2 / @4", "Occ3D mIoU (camera mask",
                   "## Cost of training", "## Per-class IoU (full scene)", "1.00x", "2 past frames",
                   "## Summary (scores in %)", "| `sqrt`: 1/sqrt(frequency) | "):
        assert needle in text, needle
    rows = list(csv.DictReader((report / "results.csv").open()))
    assert [r["predictor"] for r in rows] == list(predictors)
    assert float(rows[0]["iteration_s_median / reference"]) == 1.0
    assert float(rows[1]["mIoU (camera mask)"]) == pytest.approx(predictors["inverse"]["scores"]["camera"]["mIoU"],
                                                                 abs=1e-4)
    per_class = list(csv.DictReader((report / "per_class.csv").open()))
    assert len(per_class) == 6 and {r["mask"] for r in per_class} == {"camera", "none"}
    for png in ("scores.png", "per_class_iou.png"):
        assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_report_numbers_equal_easyocc_eval_on_the_same_predictions(tiny_experiment, tmp_path, capsys):
    _, out = tiny_experiment
    data = out / "simscenes"
    predictors = json.loads((out / "report" / "results.json").read_text())["predictors"]
    for name, folder in (("inverse", out / "variants" / "inverse" / "predictions"),
                         ("pseudo-labels (past2)", out / "references" / "pseudo-labels-past2" / "predictions")):
        for mask in ("camera", "none"):
            report = tmp_path / f"{mask}.json"
            flags = ["--rayiou", "--data", str(data), "--version", "v1.0-mini"] if mask == "camera" else []
            assert cli.main(["eval", "--pred", str(folder), "--gt", str(data / "gts"), "--mask", mask,
                             "--allow-missing", "--workers", "1", "--json", str(report), *flags]) == 0
            separate, ours = json.loads(report.read_text()), predictors[name]["scores"][mask]
            for key in ("mIoU", "mIoU_15", "IoU", "per_class", "confusion_matrix", "num_samples"):
                assert ours[key] == separate[key], (name, mask, key)
            if mask == "camera":
                assert ours["rayiou"] == separate["rayiou"]
    capsys.readouterr()


@pytest.mark.slow
def test_rerun_reuses_finished_stages_trains_new_variants_and_reports_failed_ones(tiny_experiment, tmp_path,
                                                                                   capsys):
    path, out = tiny_experiment
    finished = [out / "variants" / n / "run" / "model.pt" for n in ("sqrt", "inverse")]
    stamps = [p.stat().st_mtime_ns for p in finished]
    scores = (out / "variants" / "sqrt" / "scores.json").stat().st_mtime_ns
    missing = tmp_path / "r18.pth"
    data = {**TINY_EXPERIMENT, "variants": {
        **TINY_EXPERIMENT["variants"],
        "broken": {"labels": "past2", "overrides": [f"model.pretrained={missing}"]},  # fails once training starts
        "none": {"labels": "past2", "overrides": ["loss.class_weighting=none"]}}}
    grown = write_experiment(path.parent / "grown.yaml", data)  # the same folder, two more variants
    assert cli.main(["compare", "--experiment", str(grown), "--out", str(out), "--workers", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"easyocc compare: error: variant(s) failed: broken (easyocc train: error: {missing}: pretrained " \
           "weights not found)" in err
    assert [p.stat().st_mtime_ns for p in finished] == stamps
    assert (out / "variants" / "sqrt" / "scores.json").stat().st_mtime_ns == scores
    results = json.loads((out / "report" / "results.json").read_text())["predictors"]
    assert [results[n]["status"] for n in ("sqrt", "inverse", "none")] == ["reused", "reused", "trained"]
    assert results["broken"]["status"].startswith("failed: easyocc train: error:") and "scores" not in results["broken"]
    assert "- variant `broken` failed: easyocc train: error:" in (out / "report" / "report.md").read_text()
    assert json.loads((out / "variants" / "none" / "run" / "class_weights.json").read_text())["weights"] == [1.0] * 18


@pytest.mark.slow
def test_other_settings_in_the_same_folder_are_refused_before_anything_runs(tiny_experiment, tmp_path, capsys):
    path, out = tiny_experiment
    marker = out / "variants" / "inverse" / "variant.json"
    before = marker.read_text()
    # A description is no setting of any stage: the same folder serves.
    first = json.loads((out / "report" / "results.json").read_text())["seconds"]
    docs = out.parent / "docs"
    assert cli.main(["compare", "--experiment", str(path), "--out", str(out), "--quiet", "--workers", "1",
                     "--set", "description=renamed", "--docs", str(docs)]) == 0
    capsys.readouterr()
    # Everything was reused: the report keeps the seconds of the run that made each stage, and is exported.
    again = json.loads((out / "report" / "results.json").read_text())["seconds"]
    assert {k: again[k] for k in ("SimScenes", "variant: sqrt", "variant: inverse")} == \
           {k: first[k] for k in ("SimScenes", "variant: sqrt", "variant: inverse")}
    assert sorted(p.name for p in docs.iterdir()) == ["tiny.csv", "tiny.json", "tiny.md", "tiny.png",
                                                      "tiny_per_class.csv", "tiny_per_class_iou.png"]
    assert "renamed" in (docs / "tiny.md").read_text() and "(tiny.png)" in (docs / "tiny.md").read_text()
    assert cli.main(["compare", "--experiment", str(path), "--out", str(out), "--quiet",
                     "--set", "variants.inverse.overrides=[loss.region=all]"]) == 2
    err = capsys.readouterr().err
    assert f"{marker}: an earlier variant with other settings is here (training.loss.class_weighting " \
           "'inverse_frequency' -> 'inverse_sqrt_frequency'; training.loss.region 'camera' -> 'all')" in err
    assert marker.read_text() == before
    assert cli.main(["compare", "--experiment", str(path), "--out", str(out), "--set", "world.seed=1"]) == 2
    assert "experiment.json: an earlier experiment with other settings is here (world.seed 0 -> 1)" in \
           capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("mine")
    assert cli.main(["compare", "--experiment", str(path), "--out", str(tmp_path)]) == 2
    assert "not empty and not an earlier experiment folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
