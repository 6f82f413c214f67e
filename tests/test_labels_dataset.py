"""The labels stage's library face (``easyocc.labels.DatasetLabeler``): the README's Python example runs as written
and gives the command's labels; in memory and on disk agree; shards and checks."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from easyocc import cli
from easyocc.errors import EasyOccError
from easyocc.occ3d import label_path, read_labels

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_python_example() -> str:
    """The Python block of the README's section "From Python: labelling a dataset"."""
    section = README.read_text().split("## From Python: labelling a dataset", 1)[1]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


@pytest.mark.slow  # two worker processes start, and the command labels the same again (~10 s)
def test_readme_example_labels_as_the_command_does(tiny_simscenes, tmp_path, capsys):
    code = readme_python_example()
    calls = [line for line in code.splitlines() if line.strip() and not line.startswith("from ")]
    assert len(calls) == 5 and "DatasetLabeler(" in code and ".write(" in code  # five lines after the imports
    code = code.replace('"data/simscenes"', repr(str(tiny_simscenes))).replace('"labels/"', repr(str(tmp_path / "lib")))
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    report = namespace["report"]
    assert (report.written, report.already, report.scenes) == (4, 0, 1)  # scene-0001: the train split, 4 keyframes
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 4 and all(line.startswith("scene-0002 ") for line in printed)  # val, in memory

    assert cli.main(["labels", "--data", str(tiny_simscenes), "--out", str(tmp_path / "cli"), "--frames", "4",
                     "--oracle-noise", "realistic"]) == 0
    capsys.readouterr()
    files = sorted(p.relative_to(tmp_path / "lib") for p in (tmp_path / "lib").glob("*/*/labels.npz"))
    assert files == sorted(p.relative_to(tmp_path / "cli") for p in (tmp_path / "cli").glob("*/*/labels.npz"))
    assert len(files) == 4
    assert (tmp_path / "lib" / "manifest.json").read_text() == (tmp_path / "cli" / "manifest.json").read_text()
    for rel in files:
        lib, cmd = read_labels(tmp_path / "lib" / rel), read_labels(tmp_path / "cli" / rel)
        for key in ("semantics", "mask_camera", "mask_lidar"):
            np.testing.assert_array_equal(getattr(lib, key), getattr(cmd, key))


def test_in_memory_labels_equal_the_written_ones_and_shards_partition(tiny_simscenes, tmp_path):
    from easyocc.labels import DatasetLabeler, LabelConfig
    from easyocc.labels.sources.oracle import OracleDepth, OracleSemantics

    labeler = DatasetLabeler(tiny_simscenes, OracleSemantics(tiny_simscenes), OracleDepth(tiny_simscenes),
                             LabelConfig(frames=1, future_frames=0), version="v1.0-mini", device="cpu")
    assert [s.name for s in labeler.scenes("all")] == ["scene-0001", "scene-0002"]
    assert [[s.name for s in labeler.scenes("all", shard=(i, 2))] for i in (0, 1)] == [["scene-0001"], ["scene-0002"]]
    assert [s.name for s in labeler.scenes(names=["scene-0002"])] == ["scene-0002"]
    val = labeler.scenes("val")
    in_memory = {kf.token: labels for _, kf, labels in labeler.labels(val)}
    report = labeler.write(tmp_path, val, progress=False)
    assert report.written == len(in_memory) == 4 and report.already == 0
    for token, labels in in_memory.items():
        written = read_labels(label_path(tmp_path, "scene-0002", token))
        np.testing.assert_array_equal(written.semantics, labels.semantics)
        np.testing.assert_array_equal(written.mask_camera, labels.mask_camera)
    assert labeler.write(tmp_path, val, progress=False).already == 4  # resumed: nothing to do
    other = DatasetLabeler(tiny_simscenes, OracleSemantics(tiny_simscenes), OracleDepth(tiny_simscenes),
                           LabelConfig(frames=2, future_frames=0), device="cpu")
    with pytest.raises(EasyOccError, match=r"frames 1 -> 2"):
        other.write(tmp_path, val, progress=False)
    with pytest.raises(EasyOccError, match="workers must be >= 1"):
        labeler.write(tmp_path / "new", val, workers=0)
    assert not (tmp_path / "new").exists()
    with pytest.raises(EasyOccError, match="invalid device 'gpu'"):
        DatasetLabeler(tiny_simscenes, OracleSemantics(tiny_simscenes), OracleDepth(tiny_simscenes), device="gpu")
    with pytest.raises(EasyOccError, match="dataroot not found"):
        DatasetLabeler(tmp_path / "nowhere", OracleSemantics(tmp_path), OracleDepth(tmp_path))


@pytest.mark.slow  # the val scene labelled three times, torch on the CPU once
def test_the_torch_backend_on_the_cpu_gives_the_numba_labels(tiny_simscenes):
    from easyocc.labels import DatasetLabeler, LabelConfig
    from easyocc.labels.sources import SourceSpec

    semantics, depth = SourceSpec(oracle_noise="realistic").build(tiny_simscenes)

    def labels(backend):
        labeler = DatasetLabeler(tiny_simscenes, semantics, depth,
                                 LabelConfig(frames=1, future_frames=1, pixel_stride=2), device="cpu", backend=backend)
        return [labels for _, _, labels in labeler.labels(labeler.scenes("val"))]

    numba, torch = labels("numba"), labels("torch")
    assert len(numba) == len(torch) == 4 and labels("auto")[1].semantics.tobytes() == numba[1].semantics.tobytes()
    for a, b in zip(numba, torch):
        for key in ("semantics", "mask_camera", "mask_lidar"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    with pytest.raises(EasyOccError, match="unknown backend 'gpu'"):
        DatasetLabeler(tiny_simscenes, semantics, depth, backend="gpu")
