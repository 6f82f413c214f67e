import json

import numpy as np
import pytest

from easyocc import cli
from easyocc.data.synthetic.layout import sim_depth_path
from easyocc.labels import toyworld
from easyocc.labels.dataset import shard_scenes
from easyocc.occ3d import read_labels
from labels_dataroot import VERSION, toy_scenes, write_toy_dataroot


@pytest.fixture(scope="module")
def dataroot(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy-dataroot")
    scenes = toy_scenes(count=3, keyframes=3) + [toyworld.make_scene("toy-single", 1, 64, 36)]
    return write_toy_dataroot(root, toyworld.street(seed=2), scenes)


def labels(dataroot, out, *extra):
    return cli.main(["labels", "--data", str(dataroot), "--version", VERSION, "--out", str(out), "--split", "all",
                     "--frames", "2", *extra])


def written(out):
    return sorted(p.relative_to(out).as_posix() for p in out.glob("*/*/labels.npz"))


def test_labels_resume_and_manifest(dataroot, tmp_path, capsys):
    out = tmp_path / "labels"
    assert labels(dataroot, out) == 0
    files = written(out)
    assert len(files) == 10 and (out / "manifest.json").is_file()
    report = capsys.readouterr()
    assert "wrote 10 keyframes (0 already there)" in report.out and "toy-single has a single keyframe" in report.err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["frames"] == 2 and manifest["semantics"].startswith("oracle-semantics")
    first = read_labels(out / files[0])
    assert first.semantics.shape == (200, 200, 16) and (first.semantics != 17).sum() > 100

    # A rerun skips finished keyframes; a deleted one is written again, identical.
    (out / files[4]).unlink()
    assert labels(dataroot, out) == 0
    assert "wrote 1 keyframes (9 already there)" in capsys.readouterr().out
    again = read_labels(out / files[4])
    assert again.semantics.any()

    # Other settings into the same folder: refused in one line, nothing touched.
    assert labels(dataroot, out, "--min-points", "5") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "manifest.json" in err and "min_points 2 -> 5" in err

    # A folder labelled before the 2026 label ideas existed (its manifest lacks their keys) resumes with them off,
    # and is refused with one of them on.
    for key in ("future_frames", "pass_through", "pass_through_ratio", "rare_priority", "rare_classes",
                "rare_min_points"):
        del manifest["config"][key]
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert labels(dataroot, out, "--no-pass-through", "--no-rare-priority", "--future-frames", "0") == 0
    assert labels(dataroot, out, "--future-frames", "1") == 2
    assert "future_frames 0 -> 1" in capsys.readouterr().err


def test_workers_give_the_same_labels(dataroot, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert labels(dataroot, one, "--scenes", "toy-0,toy-1") == 0
    assert labels(dataroot, two, "--scenes", "toy-0,toy-1", "--workers", "2") == 0
    assert written(one) == written(two) and len(written(one)) == 6
    for rel in written(one):
        a, b = read_labels(one / rel), read_labels(two / rel)
        for key in ("semantics", "mask_camera", "mask_lidar"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))


def test_shards_partition_the_scenes(dataroot, tmp_path):
    from easyocc.data.nuscenes_index import DatasetIndex

    scenes = DatasetIndex(dataroot, VERSION).scenes
    parts = [shard_scenes(scenes, i, 3) for i in range(3)]
    names = [s.name for part in parts for s in part]
    assert sorted(names) == sorted(s.name for s in scenes) and len(set(names)) == len(names)
    a, b = tmp_path / "a", tmp_path / "b"
    assert labels(dataroot, a, "--shard", "0/2") == 0 and labels(dataroot, b, "--shard", "1/2") == 0
    scenes_a = {f.split("/")[0] for f in written(a)}
    scenes_b = {f.split("/")[0] for f in written(b)}
    assert not scenes_a & scenes_b and scenes_a | scenes_b == {s.name for s in scenes}
    assert labels(dataroot, a, "--shard", "2/2") == 2


def test_missing_map_is_a_one_line_error(dataroot, tmp_path, capsys):
    from easyocc.data.nuscenes_index import DatasetIndex

    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(dataroot, broken)
    kf = DatasetIndex(broken, VERSION).scenes[0].keyframes[1]
    missing = sim_depth_path(broken, kf.cameras["CAM_BACK"].relpath)
    missing.unlink()
    assert labels(broken, tmp_path / "out") == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("easyocc labels: error: ") and str(missing) in last


def test_label_quality_scores_a_labels_folder(dataroot, tmp_path, capsys):
    out = tmp_path / "labels"
    assert labels(dataroot, out, "--scenes", "toy-0") == 0
    report = tmp_path / "quality.json"
    assert cli.main(["label-quality", "--labels", str(out), "--gt", str(dataroot / "gts"), "--json", str(report)]) == 0
    text = capsys.readouterr().out
    assert "3 labelled keyframes scored" in text and "camera mask" in text and "no mask" in text
    scores = json.loads(report.read_text())
    assert set(scores) == {"camera", "none"} and scores["camera"]["num_samples"] == 3
    assert 0 < scores["camera"]["IoU"] <= 100 and scores["none"]["mIoU"] is not None


@pytest.mark.slow  # labels a dataroot per sweep setting
def test_label_quality_sweep_writes_table_and_plot(dataroot, tmp_path, capsys):
    out = tmp_path / "sweep"
    code = cli.main(["label-quality", "--sweep", "--data", str(dataroot), "--version", VERSION, "--gt",
                     str(dataroot / "gts"), "--scenes", "toy-0,toy-1", "--sweep-frames", "0,2",
                     "--sweep-min-points", "1,3", "--noise-presets", "none,realistic", "--sweep-carve", "on,off", "--out", str(out)])
    assert code == 0
    rows = json.loads((out / "label_sweep.json").read_text())["rows"]
    assert len(rows) == 2 * 2 * 2 * 2 and all(r["keyframes"] == 6 for r in rows)
    assert (out / "label_sweep.png").stat().st_size > 10_000 and (out / "label_sweep.csv").is_file()
    assert "| noise | carving | past frames |" in (out / "label_sweep.md").read_text()


def test_readme_labels_example_of_the_paper_window_runs_as_written(dataroot, tmp_path):
    """The README's "Beyond the paper" example (ideas off), on the toy dataroot: its manifest records them off."""
    from test_readme_examples import readme_commands, substitute

    command = ("easyocc labels --data data/simscenes --out labels-paper/ --semantics oracle --depth oracle "
               "--oracle-noise realistic --future-frames 0 --no-pass-through")
    assert command in readme_commands()
    out = tmp_path / "labels-paper"
    assert cli.main(substitute(command, {"data/simscenes": dataroot, "labels-paper/": out}) + ["--version", VERSION,
                                                                                              "--frames", "2"]) == 0
    config = json.loads((out / "manifest.json").read_text())["config"]
    assert (config["future_frames"], config["pass_through"], config["rare_priority"]) == (0, False, False)
    assert len(written(out)) > 0
