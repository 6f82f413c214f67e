"""How light the viewer's voxel geometry is: exposed faces merged into rectangles, against one box per voxel and
against the exposed unit faces unmerged, on a real Occ3D ground-truth volume and on a noisy Occ3D-like prediction.

Per volume: occupied voxels, triangles and vertices sent to the browser for each representation, and the median
time to build the merged meshes (every class, camera mask "all" and "dim"), against building the unmerged faces in
the same run. Prints JSON.

    python benchmarks/bench_viewer.py [--repeats 20] [--occ3d ../shared/realdata/occ3d-sample/labels.npz]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import median_ms  # noqa: E402

from easyocc.occ3d import read_labels  # noqa: E402
from easyocc.viewer.layers import semantic_categories, semantic_layer_groups  # noqa: E402
from easyocc.viewer.meshing import Quads, exposed_faces, quads_to_mesh  # noqa: E402

#: The real Occ3D excerpt: ``shared/realdata`` in the nearest folder above this repository that has one.
DEFAULT_OCC3D = next(
    (p / "shared" / "realdata" for p in Path(__file__).resolve().parents[1:] if (p / "shared" / "realdata").is_dir()),
    Path(__file__).resolve().parents[2] / "shared" / "realdata",
) / "occ3d-sample" / "labels.npz"


def unit_face_mesh_size(categories: np.ndarray) -> tuple[int, int]:
    """(triangles, vertices) of the exposed unit faces, unmerged (corners shared), built as the viewer would."""
    faces = exposed_faces(categories)
    quads = []
    for d in range(6):
        axis, sign = divmod(d, 2)[0], (-1, 1)[d % 2]
        ijk = np.argwhere(faces[d])
        corners = np.repeat(ijk[:, None, :], 4, axis=1)
        u, v = [(1, 2), (2, 0), (0, 1)][axis]
        corners[:, :, axis] += 1 if sign > 0 else 0
        corners[:, [1, 2], u] += 1
        corners[:, [2, 3], v] += 1
        quads.append(corners)
    corners = np.concatenate(quads).astype(np.int32)
    mesh = quads_to_mesh(Quads(corners, np.zeros(len(corners), np.int32), np.ones(len(corners), np.int32)))
    return len(mesh.faces), len(mesh.vertices)


def measure(name: str, semantics: np.ndarray, observed: np.ndarray | None, repeats: int) -> dict:
    categories = semantic_categories(semantics)
    occupied = int((categories >= 0).sum())
    semantic_layer_groups(semantics, observed, "all")  # compile the kernel
    merged = semantic_layer_groups(semantics, observed, "all")
    dimmed = semantic_layer_groups(semantics, observed, "dim")
    unit_triangles, unit_vertices = unit_face_mesh_size(categories)
    merged_ms = median_ms(lambda: semantic_layer_groups(semantics, observed, "all"), repeats)
    unit_ms = median_ms(lambda: unit_face_mesh_size(categories), repeats)
    return {
        "volume": name,
        "occupied_voxels": occupied,
        "exposed_unit_faces": int(exposed_faces(categories).sum()),
        "triangles": {
            "merged_rectangles": sum(len(g.mesh.faces) for g in merged),
            "merged_rectangles_dim_mode": sum(len(g.mesh.faces) for g in dimmed),
            "unit_faces": unit_triangles,
            "one_box_per_voxel": 12 * occupied,
        },
        "vertices": {"merged_rectangles": sum(len(g.mesh.vertices) for g in merged), "unit_faces": unit_vertices,
                     "one_box_per_voxel": 8 * occupied},
        "ms_median": {"merged_meshes": merged_ms, "unit_faces": unit_ms},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--occ3d", type=Path, default=DEFAULT_OCC3D, help="a real Occ3D labels.npz")
    args = parser.parse_args()
    results = []
    if args.occ3d.is_file():
        gt = read_labels(args.occ3d)
        results.append(measure(f"Occ3D GT ({args.occ3d.name})", gt.semantics, gt.mask_camera, args.repeats))
    import synthetic_occ

    _, _, camera, pred = synthetic_occ.sample(0)
    results.append(measure("Occ3D-like noisy prediction (benchmarks/synthetic_occ.py)", pred, camera, args.repeats))
    print(json.dumps({"benchmark": "viewer geometry", "results": results}, indent=2))


if __name__ == "__main__":
    main()
