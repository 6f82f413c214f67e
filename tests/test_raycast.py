import numba
import numpy as np
import pytest

from easyocc import raycast
from easyocc.occ3d import OCC3D_GRID


def brute_force_walk(shape, origin, direction, t_max, step=1e-3):
    """Voxels met by sampling the ray densely, in order, with the parameter of first contact."""
    t = np.arange(0.0, t_max, step)
    ijk = np.floor(origin + t[:, None] * direction).astype(int)
    inside = np.all((ijk >= 0) & (ijk < shape), axis=1)
    flat = np.ravel_multi_index(ijk[inside].T, shape)
    order, first = np.unique(flat, return_index=True)
    return order[np.argsort(first)], t[inside][np.sort(first)]



# --- the first hit along each ray: only these tests ask for it, through the walk that marks voxels ---------------

@numba.njit(cache=True, parallel=True)
def _first_hit_kernel(occupied_flat, shape, origins, directions, t_max):
    n = directions.shape[0]
    hit = np.full(n, -1, dtype=np.int64)
    t_enter = np.empty(n, dtype=np.float32)
    t_exit = np.empty(n, dtype=np.float32)
    dummy = np.zeros(1, dtype=np.uint8)
    no_passes = np.zeros(1, dtype=np.float64)
    per_ray_origin = origins.shape[0] == n
    for r in numba.prange(n):
        o = origins[r] if per_ray_origin else origins[0]
        h, a, b = raycast._walk(o, directions[r], 0.0, t_max[r], shape, occupied_flat, True, dummy, False, no_passes,
                                0.0)
        hit[r] = h
        t_enter[r] = a
        t_exit[r] = b
    return hit, t_enter, t_exit


def first_hit(occupied, origins, directions, t_max=np.inf):
    """First voxel with ``occupied != 0`` along each ray, in voxel units: (hit (N,) int64 flat index or -1,
    t_enter (N,) float32, t_exit (N,) float32), where the ray enters and leaves the hit voxel; for a miss both are
    where the walk ended (the grid exit, or ``t_max``)."""
    origins, directions, t_max = raycast._prepare(origins, directions, t_max)
    occ = np.ascontiguousarray(occupied).astype(np.uint8, copy=False).reshape(-1)
    return _first_hit_kernel(occ, tuple(occupied.shape), origins, directions, t_max)


def first_hit_m(occupied, origins_m, directions, max_range_m=np.inf, grid=OCC3D_GRID):
    """:func:`first_hit` with origins in metres (the grid's frame); distances returned in metres."""
    o = grid.to_voxel_units(np.atleast_2d(origins_m))
    hit, t_in, t_out = first_hit(occupied, o, directions, np.asarray(max_range_m, dtype=np.float64) / grid.voxel_size)
    return hit, t_in * grid.voxel_size, t_out * grid.voxel_size

@pytest.fixture
def scene():
    rng = np.random.default_rng(7)
    occupied = rng.random((24, 20, 8)) < 0.04
    directions = rng.normal(size=(400, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return occupied, np.array([11.3, 9.6, 3.2]), directions


def test_first_hit_matches_dense_sampling(scene):
    occupied, origin, directions = scene
    hit, t_in, t_out = first_hit(occupied, origin, directions)
    for r in range(len(directions)):
        voxels, t_first = brute_force_walk(occupied.shape, origin, directions[r], 60.0)
        hits = np.flatnonzero(occupied.reshape(-1)[voxels])
        if hits.size:
            assert hit[r] == voxels[hits[0]]
            assert abs(t_in[r] - t_first[hits[0]]) < 2e-3 and t_out[r] > t_in[r]
        else:
            assert hit[r] == -1


def test_mark_traversed_matches_dense_sampling(scene):
    occupied, origin, directions = scene
    t_end = np.random.default_rng(0).uniform(0, 15, len(directions))
    marked = raycast.mark_traversed(occupied.shape, origin, directions, t_end)
    expected = np.zeros(occupied.size, np.uint8)
    for r in range(len(directions)):
        expected[brute_force_walk(occupied.shape, origin, directions[r], t_end[r])[0]] = 1
    # Dense sampling may miss a voxel only clipped within the sampling step at a corner.
    differ = np.flatnonzero(marked.reshape(-1) != expected)
    assert len(differ) <= 2 and marked.sum() > 100


def test_observed_voxels_stop_at_the_first_hit(scene):
    occupied, origin, directions = scene
    observed = raycast.mark_traversed(occupied.shape, origin, directions, occupied=occupied)
    hit, _, _ = first_hit(occupied, origin, directions)
    assert observed.reshape(-1)[hit[hit >= 0]].all()
    # Nothing beyond a first hit is observed along that ray: observed occupied voxels are exactly the first hits.
    np.testing.assert_array_equal(np.flatnonzero(observed.reshape(-1) & occupied.reshape(-1)), np.unique(hit[hit >= 0]))


def test_rays_from_outside_enter_the_grid():
    occupied = np.zeros((10, 10, 4), bool)
    occupied[5, 5, 2] = True
    hit, t_in, _ = first_hit(occupied, np.array([-3.0, 5.5, 2.5]), np.array([[1.0, 0.0, 0.0]]))
    assert hit[0] == np.ravel_multi_index((5, 5, 2), occupied.shape) and np.isclose(t_in[0], 8.0)
    miss, t_in, _ = first_hit(occupied, np.array([-3.0, 5.5, 2.5]), np.array([[-1.0, 0.0, 0.0]]))
    assert miss[0] == -1


def test_metre_wrappers_use_the_occ3d_grid():
    occupied = np.zeros(OCC3D_GRID.shape, bool)
    occupied[150, 100, 2] = True  # x in [20, 20.4) m, y in [0, 0.4), z in [-0.2, 0.2)
    hit, d_in, d_out = first_hit_m(occupied, np.array([0.0, 0.2, 0.0]), np.array([[1.0, 0, 0]]))
    assert hit[0] == np.ravel_multi_index((150, 100, 2), OCC3D_GRID.shape)
    assert np.isclose(d_in[0], 20.0, atol=1e-4) and np.isclose(d_out[0], 20.4, atol=1e-4)
    seen = raycast.mark_traversed_m(np.array([0.0, 0.2, 0.0]), np.array([[1.0, 0, 0]]), 1.0)
    assert seen.sum() == 3  # [0, 0.4), [0.4, 0.8), [0.8, 1.2) along x


def test_count_passes_counts_voxels_left_before_the_end(scene):
    occupied, origin, directions = scene
    rng = np.random.default_rng(1)
    t_end = rng.uniform(0, 15, len(directions))
    t_end[:20] = np.inf  # unbounded rays pass every voxel up to the grid's edge
    weights = rng.integers(1, 5, len(directions)).astype(np.float64)
    passes = raycast.count_passes(occupied.shape, origin, directions, t_end, weights)
    expected = np.zeros(occupied.size)
    for r in range(len(directions)):
        voxels, _ = brute_force_walk(occupied.shape, origin, directions[r], min(t_end[r], 60.0))
        end = np.floor(origin + min(t_end[r], 1e3) * directions[r]).astype(int)
        end_flat = np.ravel_multi_index(end, occupied.shape) if np.all((end >= 0) & (end < occupied.shape)) else -1
        expected[voxels[voxels != end_flat]] += weights[r]
    # Dense sampling may miss a voxel clipped within its step at a corner: a few voxels differ by one ray's weight.
    differ = np.flatnonzero(np.abs(passes.reshape(-1) - expected) > 0)
    assert len(differ) <= 6 and expected.sum() > 1000
    assert abs(passes.sum() - expected.sum()) <= 6 * weights.max()
    # A ray ending inside its first voxel passes nothing; weight 0 leaves a ray out; chunks add up exactly.
    assert raycast.count_passes(occupied.shape, origin, directions[:1], 0.1).sum() == 0
    assert raycast.count_passes(occupied.shape, origin, directions, t_end, 0.0).sum() == 0
    np.testing.assert_array_equal(raycast.count_passes(occupied.shape, origin, directions, t_end, weights),
                                  passes)
