"""``easyocc demo`` end to end on a tiny world: every stage runs, the report holds every protocol, reruns reuse."""

import json

import pytest

from easyocc import cli

TINY = ["--scenes", "2", "--keyframes", "3", "--image-size", "160", "90", "--epochs", "1", "--workers", "1",
        "--set", "data.num_workers=0"]


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    assert cli.main(["demo", "--out", str(out), *TINY]) == 0
    return out


@pytest.mark.slow  # the demo end to end (its fixture)
def test_demo_writes_a_report_with_every_predictor_and_protocol(tiny_demo, capsys):
    report = tiny_demo / "report"
    scores = json.loads((report / "scores.json").read_text())["scores"]
    assert set(scores) == {"EasyOcc demo model", "pseudo-labels", "majority per height (train GT)",
                           "majority per height (train labels)", "all free"}
    for name, reports in scores.items():
        assert reports["camera"]["mask"] == "camera" and reports["none"]["mask"] == "none"
        assert reports["camera"]["num_samples"] == 3  # the val scene's keyframes, no more
        assert set(reports["camera"]["rayiou"]) >= {"RayIoU", "RayIoU@1", "RayIoU@2", "RayIoU@4"}
    assert scores["all free"]["camera"]["mIoU"] == 0.0
    assert scores["pseudo-labels"]["camera"]["mIoU"] > 5.0  # noisy labels still carry the scene
    text = (report / "report.md").read_text()
    assert "| EasyOcc demo model |" in text and "easyocc train --config demo" in text
    for png in ("per_class_iou.png", "bev.png"):
        assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((tiny_demo / "predictions").glob("*.npz"))) == 3
    viewer = (report / "viewer.html").read_text()  # one val keyframe in the 3D viewer, linked from the report
    assert "__VISER_EMBED_DATA__" in viewer and "keyframe 1 (0-2)" in viewer
    assert "[viewer.html](viewer.html)" in text and "easyocc view --data" in text


@pytest.mark.slow  # the demo end to end (its fixture)
def test_demo_rerun_reuses_the_finished_stages(tiny_demo, capsys):
    model, dataset = tiny_demo / "run" / "model.pt", tiny_demo / "simscenes" / "simscenes.json"
    before = model.stat().st_mtime_ns, dataset.stat().st_mtime_ns
    assert cli.main(["demo", "--out", str(tiny_demo), *TINY]) == 0
    assert (model.stat().st_mtime_ns, dataset.stat().st_mtime_ns) == before
    scores = json.loads((tiny_demo / "report" / "scores.json").read_text())
    assert scores["seconds"]["training"] < 5 and "report:" in capsys.readouterr().out


@pytest.mark.slow  # the demo end to end (its fixture)
def test_demo_refuses_other_settings_and_foreign_folders(tiny_demo, tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tiny_demo), *TINY, "--seed", "1"]) == 2
    assert "demo.json: an earlier demo with other settings" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("mine")
    assert cli.main(["demo", "--out", str(tmp_path), *TINY]) == 2
    assert "not empty and not an earlier demo folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("flags, message", [(["--scenes", "1"], "--scenes must be at least 2"),
                                            (["--epochs", "0"], "--epochs must be at least 1")])
def test_impossible_settings_fail_before_anything_is_written(tmp_path, capsys, flags, message):
    out = tmp_path / "out"
    assert cli.main(["demo", "--out", str(out), *flags]) == 2
    assert message in capsys.readouterr().err and not out.exists()
