"""The on-disk cache around any source: hits skip the source, settings change the folder, bad entries are
recomputed."""

from __future__ import annotations

import os

import numpy as np
from sources_util import sim_scene

from easyocc.labels.sources.base import DepthSource, SemanticSource
from easyocc.labels.sources.cache import CachedDepth, CachedSemantics, cache_folder
from easyocc.labels.sources.maps import write_label_png
from easyocc.labels.sources.noise import NOISE_PRESETS
from easyocc.labels.sources.oracle import OracleDepth, OracleSemantics


class Counting(SemanticSource, DepthSource):
    """Wraps a source and counts the calls that reach it."""

    def __init__(self, inner):
        self.inner, self.name, self.calls = inner, inner.name, 0

    def semantics(self, camera):
        self.calls += 1
        return self.inner.semantics(camera)

    def depth(self, camera):
        self.calls += 1
        return self.inner.depth(camera)

    def fingerprint(self):
        return self.inner.fingerprint()


def test_hits_skip_the_source_and_return_the_same_maps(tmp_path):
    camera, semantics, _ = sim_scene(tmp_path)
    noise = NOISE_PRESETS["realistic"]
    sem_source = Counting(OracleSemantics(tmp_path, noise.semantics))
    dep_source = Counting(OracleDepth(tmp_path, noise.depth))
    sem, dep = CachedSemantics(sem_source, tmp_path / "c"), CachedDepth(dep_source, tmp_path / "c")
    first = sem.semantics(camera), dep.depth(camera)
    second = sem.semantics(camera), dep.depth(camera)
    assert sem_source.calls == dep_source.calls == 1
    assert (sem.folder.hits, sem.folder.misses, dep.folder.hits, dep.folder.misses) == (1, 1, 1, 1)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])  # a miss returns the float16-rounded map too
    assert second[1].dtype == np.float32
    exact = dep_source.inner.depth(camera)
    np.testing.assert_allclose(second[1], exact, rtol=1e-3)
    # A fresh wrapper (a rerun) reads the same files.
    rerun = CachedDepth(Counting(OracleDepth(tmp_path, noise.depth)), tmp_path / "c")
    np.testing.assert_array_equal(rerun.depth(camera), first[1])
    assert rerun.source.calls == 0
    folder = sem.folder.root
    assert (folder / "fingerprint.txt").read_text().strip() == sem_source.fingerprint()
    assert (folder / "samples" / "CAM_FRONT" / "frame0.png").is_file()
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_other_settings_never_read_stale_entries(tmp_path):
    camera, _, _ = sim_scene(tmp_path)
    exact = CachedSemantics(OracleSemantics(tmp_path), tmp_path / "c")
    noisy = CachedSemantics(OracleSemantics(tmp_path, NOISE_PRESETS["strong"].semantics), tmp_path / "c")
    reseeded = CachedSemantics(OracleSemantics(tmp_path, NOISE_PRESETS["strong"].semantics, seed=1), tmp_path / "c")
    assert len({exact.folder.root, noisy.folder.root, reseeded.folder.root}) == 3
    assert exact.folder.root == cache_folder(tmp_path / "c", "oracle", exact.fingerprint())
    assert not np.array_equal(exact.semantics(camera), noisy.semantics(camera))
    assert noisy.folder.misses == 1 and noisy.folder.hits == 0


def test_bad_or_stale_entries_are_recomputed(tmp_path):
    camera, semantics, _ = sim_scene(tmp_path)
    source = Counting(OracleSemantics(tmp_path))
    cached = CachedSemantics(source, tmp_path / "c")
    cached.semantics(camera)
    entry = cached.folder.entry(camera)
    write_label_png(entry, np.zeros((4, 4), np.uint8))  # wrong shape
    np.testing.assert_array_equal(cached.semantics(camera), semantics)
    entry.write_bytes(b"corrupt")
    np.testing.assert_array_equal(cached.semantics(camera), semantics)
    assert source.calls == 3
    # An image newer than its entry (the dataset was regenerated) is recomputed too.
    stamp = camera.image_path.stat().st_mtime_ns - 10**9
    os.utime(entry, ns=(stamp, stamp))
    cached.semantics(camera)
    assert source.calls == 4
    cached.semantics(camera)
    assert source.calls == 4 and cached.folder.hits == 1
