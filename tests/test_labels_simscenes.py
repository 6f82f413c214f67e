"""End to end on a generated SimScenes dataset: exact oracle maps in, pseudo-labels out, scored against the exact
Occ3D ground truth through files only."""

import json

from easyocc import cli


def test_exact_oracle_labels_agree_with_ground_truth_and_improve_with_frames(tiny_simscenes, tmp_path, capsys):
    out = tmp_path / "labels"
    assert cli.main(["labels", "--data", str(tiny_simscenes), "--version", "v1.0-mini", "--out", str(out),
                     "--split", "all", "--frames", "3", "--future-frames", "0", "--no-pass-through"]) == 0  # as the sweep
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
    assert json.loads((sweep / "label_sweep.json").read_text())["settings"]["future_frames"] == 0
    assert cli.main(["label-quality", "--sweep", "--data", str(tiny_simscenes), "--gt", str(tiny_simscenes / "gts"),
                     "--pass-through", "--out", str(tmp_path / "refused")]) == 2
    assert "does not use --pass-through" in capsys.readouterr().err and not (tmp_path / "refused").exists()
    assert rows[3]["mIoU_camera"] > rows[0]["mIoU_camera"]
    # The sweep's in-memory labels are the command's labels: the same scores at the same settings.
    assert abs(rows[3]["mIoU_camera"] - scores["camera"]["mIoU"]) < 0.01
    capsys.readouterr()


def test_labelled_lidar_is_an_entry_point_too(tiny_simscenes):
    """SimScenes' labelled LiDAR scans through the same aggregation and voxelization, scored under the GT's LiDAR
    mask."""
    import numpy as np

    from easyocc.data.nuscenes_index import DatasetIndex
    from easyocc.data.synthetic.layout import sim_lidar_semantic_path
    from easyocc.evaluation import ConfusionMatrix
    from easyocc.labels.config import LabelConfig
    from easyocc.labels.pipeline import label_window, lidar_frame
    from easyocc.occ3d import read_labels

    scene = DatasetIndex(tiny_simscenes, "v1.0-mini").scenes[0]
    config = LabelConfig(frames=3, min_points=1)
    frames = []
    for kf in scene.keyframes:
        scan = np.fromfile(kf.lidar_path, dtype=np.float32).reshape(-1, 5)
        classes = np.load(sim_lidar_semantic_path(tiny_simscenes, kf.lidar_path.relative_to(tiny_simscenes).as_posix()))
        frames.append(lidar_frame(kf, scan, classes, config))
    single, window = ConfusionMatrix(), ConfusionMatrix()
    for t, kf in enumerate(scene.keyframes):
        gt = read_labels(tiny_simscenes / "gts" / scene.name / kf.token / "labels.npz")
        single.update(gt.semantics, label_window(frames[t : t + 1], config).semantics, gt.mask_lidar)
        labels = label_window(frames[max(0, t - 3) : t + 1], config)
        window.update(gt.semantics, labels.semantics, gt.mask_lidar)
        # Free space comes from the sensor's rays: voxels between the sensor and its returns.
        assert labels.mask_lidar.sum() > 5 * (labels.semantics != 17).sum()
    # GT mask_lidar holds the returns of 5 scans (+-2 keyframes): one scan finds part of them, a window more.
    assert window.compute().iou > single.compute().iou + 5 > 25, (window.compute().iou, single.compute().iou)
