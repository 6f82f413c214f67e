"""The model sources on a real nuScenes keyframe (real 1600x900 JPEGs, real intrinsics, real file names)."""

from __future__ import annotations

import numpy as np
import pytest
from sources_models import save_depth_anything, save_metric3d_repo

from easyocc.data.nuscenes_index import DatasetIndex
from easyocc.labels.sources.cache import CachedDepth
from easyocc.labels.sources.depth_anything import DepthAnythingConfig, DepthAnythingDepth
from easyocc.labels.sources.metric3d import Metric3DConfig, Metric3DDepth


@pytest.fixture(scope="module")
def keyframe(real_nuscenes_root):
    index = DatasetIndex(real_nuscenes_root, "v1.0-mini", cameras=("CAM_FRONT", "CAM_BACK"))
    return next(iter(index.keyframes.values()))


def test_metric3d_scales_canonical_depth_by_each_real_cameras_focal(keyframe, tmp_path):
    repo, checkpoint = save_metric3d_repo(tmp_path / "metric3d", gain=1.5)
    source = Metric3DDepth(Metric3DConfig(repo, checkpoint, "metric3d_vit_tiny", device="cpu"))
    for name, camera in keyframe.cameras.items():
        assert (camera.height, camera.width) == (900, 1600)
        depth = source.depth(camera)
        scale = min(616 / 900, 1064 / 1600)
        # The tiny model sees 20 m in the canonical camera (gain 1.5 from the checkpoint).
        np.testing.assert_allclose(depth, 1.5 * 20 * camera.K[0, 0] * scale / 1000, rtol=1e-5, err_msg=name)
    fronts, backs = (source.depth(keyframe.cameras[n]).mean() for n in ("CAM_FRONT", "CAM_BACK"))
    assert fronts > 1.4 * backs  # CAM_BACK has the wider lens (fx about 800 px against 1266 px)


def test_cache_keys_real_relpaths_and_depth_anything_reads_real_jpegs(keyframe, tmp_path):
    model = save_depth_anything(tmp_path / "da", constant_sigmoid_input=0.0)
    source = CachedDepth(DepthAnythingDepth(DepthAnythingConfig(model, device="cpu")), tmp_path / "cache")
    camera = keyframe.cameras["CAM_FRONT"]
    first = source.depth(camera)
    np.testing.assert_allclose(first, 40.0, rtol=1e-3)
    entry = source.folder.entry(camera)
    assert entry.name == "n015-2018-07-24-11-22-45+0800__CAM_FRONT__1532402927612460.npy" and entry.is_file()
    np.testing.assert_array_equal(source.depth(camera), first)
    assert (source.folder.hits, source.folder.misses) == (1, 1)
