"""The viewer's layers as viser scene nodes: voxel meshes, the ego car, the six camera frusta with their images.

Shared by the live viewer (nodes replaced when the keyframe changes) and the export (every keyframe's nodes, shown
in turn). Node names: ``/<layer>/<group><suffix>`` (e.g. ``/gt/car``, or ``/gt/car/kf03`` in an export), so that
a layer or a class can be switched off in the scene tree as a whole.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from easyocc.data.nuscenes_index import CAMERA_NAMES, Keyframe
from easyocc.viewer.layers import EGO_CENTER, EGO_DIMENSIONS, EGO_RGB, MeshGroup, camera_frustum

#: The opening view: behind, left of and above the ego car, looking ahead of it (ego frame, metres).
VIEW_POSITION = (-26.0, 17.0, 27.0)
VIEW_LOOK_AT = (10.0, -5.0, -7.0)
#: Frustum depth in metres.
FRUSTUM_SCALE = 1.2
FRUSTUM_RGB = (30, 30, 30)


def node_key(group: MeshGroup) -> str:
    """The scene-tree name of a mesh group: its name with underscores (``car``, ``wrong_class_unobserved``)."""
    return group.name.replace(" (unobserved)", "_unobserved").replace(" ", "_")


def start_server(host: str = "127.0.0.1", port: int = 8080):
    """A viser server (on the next free port from ``port``; 0: any), without viser's banner: callers print their
    own line."""
    import viser

    with contextlib.redirect_stdout(io.StringIO()):
        return viser.ViserServer(host=host, port=port, verbose=False)


def stop_server(server) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        server.stop()


def configure_view(server) -> None:
    """z up, the opening camera, a plain background."""
    server.scene.set_up_direction("+z")
    server.initial_camera.position = VIEW_POSITION
    server.initial_camera.look_at = VIEW_LOOK_AT
    server.initial_camera.up = (0.0, 0.0, 1.0)
    server.scene.world_axes.visible = False


def add_voxel_layer(scene, root: str, groups: list[MeshGroup], suffix: str = "", visible: bool = True,
                    hidden: set[int] = frozenset()) -> list[tuple[MeshGroup, object]]:
    """One mesh node per group under ``root``; groups whose category is in ``hidden`` start invisible.
    Returns (group, handle) pairs."""
    nodes = []
    for group in groups:
        handle = scene.add_mesh_simple(
            f"{root}/{node_key(group)}{suffix}", group.mesh.vertices, group.mesh.faces, color=group.rgb,
            opacity=group.opacity, flat_shading=True, side="front", cast_shadow=False, receive_shadow=False,
            visible=visible and group.category not in hidden,
        )
        nodes.append((group, handle))
    return nodes


def add_ego(scene, name: str = "/ego/car", visible: bool = True):
    return scene.add_box(name, color=EGO_RGB, dimensions=EGO_DIMENSIONS, position=EGO_CENTER, cast_shadow=False,
                         receive_shadow=False, visible=visible)


def add_cameras(scene, root: str, kf: Keyframe, images: dict[str, np.ndarray], suffix: str = "",
                visible: bool = True) -> list:
    """The six cameras of ``kf`` as frusta in its ego frame, each with its image when ``images`` has one."""
    handles = []
    for name in CAMERA_NAMES:
        cam = kf.cameras[name]
        frustum = camera_frustum(cam.K, cam.width, cam.height, kf.ref_T_cam(name))
        handles.append(scene.add_camera_frustum(
            f"{root}/{name}{suffix}", fov=frustum.fov, aspect=frustum.aspect, scale=FRUSTUM_SCALE,
            color=FRUSTUM_RGB, image=images.get(name), format="jpeg", jpeg_quality=85, wxyz=frustum.wxyz,
            position=frustum.position, visible=visible, cast_shadow=False, receive_shadow=False,
        ))
    return handles
