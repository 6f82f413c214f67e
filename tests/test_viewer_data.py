"""The viewer's inputs on a tiny SimScenes: layers, scene and keyframe choice, per-keyframe scores (the evaluator's),
camera images, and the live viewer's panel logic (no browser)."""

from __future__ import annotations

import shutil
import socket

import numpy as np
import pytest

from easyocc.errors import EasyOccError, InputError
from easyocc.evaluation.runner import evaluate_dirs
from easyocc.labels.sources.oracle import OracleDepth, OracleSemantics
from easyocc.occ3d import CLASS_IDS, FREE, IGNORE, read_labels, write_labels, write_prediction
from easyocc.viewer import layers as L
from easyocc.viewer.data import ViewerData, ViewerInputs, default_gt, keyframe_scores, scores_tables

CAR, TRUCK = CLASS_IDS["car"], CLASS_IDS["truck"]


@pytest.fixture(scope="module")
def viewer_inputs(tiny_simscenes, tmp_path_factory):
    """Predictions for the val scene's first two keyframes (the GT itself, and the GT with its cars as trucks),
    pseudo-labels for every keyframe (the GT with one slab ignored)."""
    root = tmp_path_factory.mktemp("viewer")
    data = ViewerData(ViewerInputs(tiny_simscenes, gt=default_gt(tiny_simscenes)))
    val = data.scene("scene-0002")
    for i, kf in enumerate(val.keyframes[:2]):
        gt = read_labels(tiny_simscenes / "gts" / kf.scene_name / kf.token / "labels.npz").semantics
        write_prediction(root / "pred" / f"{kf.token}.npz", gt if i == 0 else np.where(gt == CAR, TRUCK, gt))
    for scene in data.index.scenes:
        for kf in scene.keyframes:
            gt = read_labels(tiny_simscenes / "gts" / kf.scene_name / kf.token / "labels.npz")
            sem = gt.semantics.copy()
            sem[:, :, 3] = IGNORE
            write_labels(root / "labels" / kf.scene_name / kf.token / "labels.npz", sem, gt.mask_lidar, gt.mask_camera)
    return ViewerInputs(tiny_simscenes, labels=root / "labels", pred=root / "pred", gt=tiny_simscenes / "gts")


def test_layers_scene_and_keyframe_choice(viewer_inputs, tiny_simscenes):
    data = ViewerData(viewer_inputs)
    assert data.layers() == ["gt", "labels", "pred", "errors-pred", "errors-labels"]
    assert data.scene(None).name == "scene-0002"  # the first scene with a prediction
    assert ViewerData(ViewerInputs(tiny_simscenes, gt=tiny_simscenes / "gts")).layers() == ["gt"]
    scene = data.scene("scene-0002")
    assert data.keyframe(scene, None) == 0
    assert data.keyframe(scene, "2") == 2
    assert data.keyframe(scene, scene.keyframes[3].token) == 3
    with pytest.raises(EasyOccError, match="outside scene-0002"):
        data.keyframe(scene, 9)
    with pytest.raises(EasyOccError, match="no keyframe with sample token nope"):
        data.keyframe(scene, "nope")
    with pytest.raises(EasyOccError, match="no scene 'scene-9'"):
        data.scene("scene-9")
    with pytest.raises(InputError, match="prediction directory not found"):
        ViewerData(ViewerInputs(tiny_simscenes, pred=tiny_simscenes / "missing"))


def test_keyframe_volumes_and_scores_are_the_evaluators(viewer_inputs, tmp_path):
    data = ViewerData(viewer_inputs)
    scene = data.scene("scene-0002")
    perfect, cars_as_trucks, without = (data.volumes(kf) for kf in scene.keyframes[:3])
    assert perfect.scores["pred"].camera.miou == pytest.approx(100.0)
    assert perfect.scores["pred"].none.iou == pytest.approx(100.0)
    assert without.pred is None and without.layer("pred", "dim") is None and "pred" not in without.scores
    assert without.layer("errors-labels", "dim") is not None
    # The same numbers as `easyocc eval` on a folder with that one prediction.
    kf = scene.keyframes[1]
    (tmp_path / "one").mkdir()
    shutil.copy(viewer_inputs.pred / f"{kf.token}.npz", tmp_path / "one")
    report = evaluate_dirs(tmp_path / "one", viewer_inputs.gt, mask="camera", allow_missing=True, workers=1,
                           progress=False)
    assert cars_as_trucks.scores["pred"].camera.miou == pytest.approx(report.scores.miou)
    assert cars_as_trucks.scores["pred"].camera.per_class[CAR] == pytest.approx(0.0)
    # Pseudo-labels: their ignored slab counts as free (no prediction).
    gt = perfect.gt
    expected = keyframe_scores(gt, np.where(perfect.labels.semantics == IGNORE, FREE, perfect.labels.semantics))
    assert perfect.scores["labels"].none.iou == pytest.approx(expected.none.iou)
    assert perfect.scores["labels"].none.iou < 100.0
    # The error layer of the perfect prediction is all "correct".
    assert {g.name for g in perfect.layer("errors-pred", "all")} == {"correct"}
    summary, per_class = scores_tables(perfect.scores)
    assert summary[0] == ["", "mIoU", "IoU", "mIoU, full"]
    assert summary[1][0] == ["prediction", "100.0", "100.0", "100.0"]
    assert summary[1][1][0] == "pseudo-labels"
    assert per_class[0] == ["class", "prediction", "pseudo-labels"]
    assert next(row for row in per_class[1] if row[0] == "car")[1] == "100.0"


def test_camera_images_with_a_semantic_overlay(viewer_inputs, tiny_simscenes):
    data = ViewerData(viewer_inputs)
    kf = data.scene("scene-0002").keyframes[0]
    photos = data.camera_images(kf, "photo", width=80)
    assert len(photos) == 6 and all(p.shape == (45, 80, 3) and p.dtype == np.uint8 for p in photos.values())
    assert data.camera_images(kf, "none") == {}
    with pytest.raises(EasyOccError, match="need a 2D source"):
        data.camera_images(kf, "semantics")
    overlaid = ViewerData(viewer_inputs, semantic_source=OracleSemantics(tiny_simscenes))
    assert overlaid.image_modes() == ["none", "photo", "semantics"]
    tinted = overlaid.camera_images(kf, "semantics", width=80)
    changed = np.mean([np.any(tinted[c] != photos[c], axis=2).mean() for c in photos])
    assert 0.2 < changed < 1.0  # the sky keeps the photo, the rest is tinted
    with_depth = ViewerData(viewer_inputs, depth_source=OracleDepth(tiny_simscenes))
    assert with_depth.image_modes() == ["none", "photo", "depth"]
    coloured = with_depth.camera_images(kf, "depth", width=80)
    changed = np.mean([np.any(coloured[c] != photos[c], axis=2).mean() for c in photos])
    assert 0.2 < changed < 1.0  # the sky has no depth


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_live_viewer_panel_logic(viewer_inputs):
    from easyocc.viewer.app import LiveViewer, ViewOptions

    viewer = LiveViewer(ViewerData(viewer_inputs), ViewOptions(layer="errors-pred", keyframe=1), port=0)
    port = viewer.server.get_port()
    try:
        assert viewer.url == f"http://127.0.0.1:{port}" and _port_open(port)
        names = {g.name for g, _ in viewer._layer_nodes}
        assert "wrong class" in names and "correct" in names  # keyframe 1: cars predicted as trucks
        assert len(viewer._camera_nodes) == 6
        viewer._toggle_category("error", L.CORRECT, False)
        assert all(h.visible == (g.category != L.CORRECT) for g, h in viewer._layer_nodes)
        viewer._set(index=2)  # no prediction there: an empty layer and a note
        assert viewer._layer_nodes == [] and "No prediction" not in viewer._status.content
        assert "No errors: prediction vs GT for this keyframe." in viewer._status.content
        viewer._set(layer="gt", mask="hide")
        assert {g.observed for g, _ in viewer._layer_nodes} == {True}
        assert "keyframe 2 (0-3)" in viewer._status.content
    finally:
        viewer.stop()
    assert not _port_open(port)


def _recording(page: str) -> dict:
    """The scene recording viser embeds in an exported page: base64 of (inner size, zstd frame), whose inner
    payload starts with (msgpack length, msgpack)."""
    import base64

    import msgspec
    import zstandard

    blob = base64.b64decode(page.split('window.__VISER_EMBED_DATA__="', 1)[1].split('"', 1)[0])
    inner = zstandard.ZstdDecompressor().decompress(blob[8:], max_output_size=int.from_bytes(blob[:8], "little"))
    return msgspec.msgpack.decode(inner[8 : 8 + int.from_bytes(inner[:8], "little")])


def test_export_of_a_whole_scene_plays_its_keyframes(viewer_inputs):
    from easyocc.viewer.app import ViewOptions
    from easyocc.viewer.export import export_html

    data = ViewerData(viewer_inputs)
    page = export_html(data, ViewOptions(scene="scene-0002", layer="errors-pred", images="none"))
    recording = _recording(page)
    assert recording["durationSeconds"] == pytest.approx(4 * 0.5)  # four keyframes at 2 Hz
    names = {m["name"] for _, m in recording["messages"] if "name" in m}
    assert {"/gt/driveable_surface/kf00", "/gt/driveable_surface/kf03", "/errors-pred/wrong_class/kf01",
            "/cameras/CAM_FRONT/kf02", "/ego/car"} <= names
    assert not any(n.startswith("/pred/") and n.endswith(("kf02", "kf03")) for n in names)  # no prediction there
    # At 0.5 s keyframe 0 goes and keyframe 1 comes.
    shown = {m["name"]: m["visible"] for t, m in recording["messages"] if t == pytest.approx(0.5) and "visible" in m}
    assert shown["/gt/driveable_surface/kf00"] is False and shown["/gt/driveable_surface/kf01"] is True
    panel = page[page.index('id="easyocc-panel"'):]
    assert "keyframes 0-3, shown in turn at 2 Hz" in panel and panel.count("<summary>Scores, keyframe") == 4  # pseudo-labels everywhere


def test_view_command_errors_are_one_line(viewer_inputs, tmp_path, capsys, monkeypatch):
    from easyocc.cli import main

    base = ["view", "--data", str(viewer_inputs.data)]
    cases = [
        (["--pred", str(tmp_path / "none")], "prediction directory not found"),
        (["--layer", "errors-pred"], "layer 'errors-pred' needs other inputs (available: gt)"),
        (["--images", "semantics", "--export", str(tmp_path / "x.html")], "need a 2D source (--semantics NAME)"),
        (["--keyframe", "9", "--export", str(tmp_path / "x.html")], "keyframe 9 is outside"),
        (["--window", "10", "10", "--screenshot", str(tmp_path / "x.png")], "--window must be at least 64 64"),
        (["--semantics", "grounded-sam", "--export", str(tmp_path / "x.html")], "needs --grounded-sam-dir"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    monkeypatch.setenv("EASYOCC_CHROMIUM", str(tmp_path / "no-such-browser"))
    assert main(base + ["--screenshot", str(tmp_path / "x.png")]) == 2
    assert "no Chromium found" in capsys.readouterr().err
    assert not list(tmp_path.glob("x.*"))  # nothing written


@pytest.mark.slow
def test_view_command_serves_on_localhost_until_stopped(viewer_inputs):
    import signal
    import subprocess
    import sys
    import urllib.request

    command = [sys.executable, "-m", "easyocc", "view", "--data", str(viewer_inputs.data), "--pred",
               str(viewer_inputs.pred), "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert "scene-0002 (4 keyframes) at http://127.0.0.1:" in line, line + process.stderr.read()
        url = line.split(" at ")[1].split()[0]
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200 and b"<title>Viser</title>" in response.read()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0 and out.strip() == "easyocc view: stopped" and err == ""
    assert not _port_open(int(url.rsplit(":", 1)[1]))


def test_a_real_nuscenes_keyframe_with_real_occ3d_labels(real_nuscenes_root, tmp_path):
    """Real calibration and 1600x900 images; the real Occ3D volume of another keyframe stands in as its GT."""
    from conftest import REAL_OCC3D_LABELS, REAL_SAMPLE_TOKEN, require

    from easyocc.viewer.app import ViewOptions
    from easyocc.viewer.export import export_html
    from easyocc.viewer.layers import camera_frustum

    gt_dir = tmp_path / "gts"
    (gt_dir / "scene-0061" / REAL_SAMPLE_TOKEN).mkdir(parents=True)
    shutil.copy(require(REAL_OCC3D_LABELS), gt_dir / "scene-0061" / REAL_SAMPLE_TOKEN / "labels.npz")
    data = ViewerData(ViewerInputs(real_nuscenes_root, gt=gt_dir))
    kf = data.scene(None).keyframes[0]
    groups = data.volumes(kf).layer("gt", "dim")
    assert {"driveable_surface", "vegetation", "manmade"} <= {g.name for g in groups}
    images = data.camera_images(kf, "photo")
    assert all(image.shape == (270, 480, 3) for image in images.values())
    front = kf.cameras["CAM_FRONT"]
    frustum = camera_frustum(front.K, front.width, front.height, kf.ref_T_cam("CAM_FRONT"))
    # Mounted 1.70 m ahead of the rear axle, 1.51 m up; it fires before the LiDAR, so it sits a little behind
    # that in the LiDAR-time ego frame of the keyframe (the car drives forward).
    assert 1.2 < frustum.position[0] < 1.7 and abs(frustum.position[1]) < 0.1 and 1.3 < frustum.position[2] < 1.7
    assert np.degrees(frustum.fov) == pytest.approx(np.degrees(2 * np.arctan(450 / front.K[1, 1])))
    assert 35 < np.degrees(frustum.fov) < 45  # nuScenes front camera: ~39 degrees vertically
    page = export_html(data, ViewOptions(layer="gt"))
    assert "scene-0061" in page and "keyframe 0 (0-0)" in page
