"""End to end on a generated SimScenes dataset: exact oracle maps in, pseudo-labels out, scored against the exact
Occ3D ground truth through files only."""

import json

from easyocc import cli


def test_exact_oracle_labels_agree_with_ground_truth_and_improve_with_frames(tiny_simscenes, tmp_path, capsys):
    out = tmp_path / "labels"
    assert cli.main(["labels", "--data", str(tiny_simscenes), "--version", "v1.0-mini", "--out", str(out),
                     "--split", "all", "--frames", "3"]) == 0
    report = tmp_path / "quality.json"
    assert cli.main(["label-quality", "--labels", str(out), "--gt", str(tiny_simscenes / "gts"),
                     "--json", str(report)]) == 0
    scores = json.loads(report.read_text())
    assert scores["camera"]["num_samples"] == 8
    assert scores["camera"]["mIoU"] > 55 and scores["camera"]["IoU"] > 60

    sweep = tmp_path / "sweep"
    assert cli.main(["label-quality", "--sweep", "--data", str(tiny_simscenes), "--version", "v1.0-mini",
                     "--gt", str(tiny_simscenes / "gts"), "--sweep-frames", "0,3", "--sweep-min-points", "2",
                     "--noise-presets", "none", "--out", str(sweep)]) == 0
    rows = {r["frames"]: r for r in json.loads((sweep / "label_sweep.json").read_text())["rows"]}
    assert rows[3]["mIoU_camera"] > rows[0]["mIoU_camera"]
    # The sweep's in-memory labels are the command's labels: the same scores at the same settings.
    assert abs(rows[3]["mIoU_camera"] - scores["camera"]["mIoU"]) < 0.01
    capsys.readouterr()
