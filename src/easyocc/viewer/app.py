"""The live viewer: a viser server whose panel picks the scene, keyframe (slider, play), layer, camera-mask mode,
camera images and classes, and shows the legend and the keyframe's scores.

The scene holds one keyframe at a time; changing anything rebuilds the affected nodes (meshing a full Occ3D volume
takes ~20 ms), so memory stays flat however long the scene.
"""

from __future__ import annotations

import html
import threading
from dataclasses import dataclass

from easyocc.errors import EasyOccError
from easyocc.occ3d import CLASS_COLORS, CLASS_NAMES, NUM_SEMANTIC_CLASSES
from easyocc.viewer import layers as L
from easyocc.viewer.data import SCORES_NOTE, ViewerData, markdown_table, scores_tables
from easyocc.viewer.scene import add_cameras, add_ego, add_voxel_layer, configure_view, start_server, stop_server

#: Keyframes per second when playing (nuScenes keyframes are 2 Hz: real time).
PLAY_RATE = 2.0


@dataclass(frozen=True)
class ViewOptions:
    """What the viewer shows first. scene: a scene name (None: the first with a prediction, else the first);
    keyframe: index in the scene or sample token (None: 0); layer: a key of LAYER_TITLES (None: the prediction,
    else the pseudo-labels, else the GT); mask: a key of MASK_MODES; images: a key of IMAGE_MODES; ego: show the
    ego car and the camera frusta."""

    scene: str | None = None
    keyframe: str | int | None = None
    layer: str | None = None
    mask: str = "dim"
    images: str = "photo"
    ego: bool = True


def initial_layer(data: ViewerData, wanted: str | None) -> str:
    available = data.layers()
    if not available:
        raise EasyOccError("nothing to show: give --gt, --labels or --pred (or a dataroot with a gts/ folder)")
    if wanted is None:
        return next(n for n in ("pred", "labels", "gt") if n in available)
    if wanted not in available:
        raise EasyOccError(f"layer '{wanted}' needs other inputs (available: {', '.join(available)})")
    return wanted


def keyframe_label(index: int, count: int) -> str:
    """Keyframes are numbered from 0, as ``--keyframe`` takes them."""
    return f"keyframe {index} (0-{count - 1})"


def ready_text(scene_name: str, index: int, count: int) -> str:
    """The status line once a keyframe is on screen (a headless browser waits for it before a screenshot)."""
    return f"Showing {scene_name}, {keyframe_label(index, count)}."


def legend_html(names, colors, title: str, columns: int = 1) -> str:
    """A colour legend: one swatch and name per entry, in ``columns`` columns."""
    rows = "".join(
        f'<div style="display:flex;align-items:center;gap:5px">'
        f'<span style="display:inline-block;width:11px;height:11px;flex:none;border:1px solid #555;'
        f'background:rgb({r},{g},{b})"></span>{html.escape(name)}</div>'
        for name, (r, g, b) in zip(names, (tuple(int(v) for v in c) for c in colors))
    )
    grid = f"display:grid;grid-template-columns:repeat({columns},auto);column-gap:12px;row-gap:1px"
    return f'<div style="font-size:12px"><b>{html.escape(title)}</b><div style="{grid}">{rows}</div></div>'


class LiveViewer:
    """A viser server showing one scene of ``data``; ``url`` is where to open it. ``stop()`` ends it."""

    def __init__(self, data: ViewerData, options: ViewOptions = ViewOptions(), host: str = "127.0.0.1",
                 port: int = 8080):
        if options.mask not in L.MASK_MODES:
            raise EasyOccError(f"unknown camera-mask mode '{options.mask}' (known: {', '.join(L.MASK_MODES)})")
        self.data = data
        self.scene = data.scene(options.scene)
        self.index = data.keyframe(self.scene, options.keyframe)
        self.layer = initial_layer(data, options.layer)
        self.mask = options.mask
        data.require_image_mode(options.images)
        self.images = options.images
        self.hidden: dict[str, set[int]] = {"semantic": set(), "error": set()}
        self._lock = threading.RLock()
        self._layer_nodes: list = []
        self._camera_nodes: list = []
        self._playing = threading.Event()
        self._stopped = threading.Event()

        self.host = host
        self.server = start_server(host, port)
        try:
            configure_view(self.server)
            self.ego = add_ego(self.server.scene, visible=options.ego)
            self._build_panel(options)
            self.show()
        except BaseException:
            stop_server(self.server)
            raise
        self._player = threading.Thread(target=self._play_loop, name="easyocc-view-play", daemon=True)
        self._player.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.server.get_port()}"

    # --- the panel ------------------------------------------------------------------------------------------------

    def _build_panel(self, options: ViewOptions) -> None:
        gui = self.server.gui
        gui.configure_theme(control_width="medium")
        gui.main_panel.dock_right()  # beside the 3D view, not over it
        self._title = gui.add_markdown("")
        names = [s.name for s in self.data.index.scenes]
        self._scene_menu = gui.add_dropdown("Scene", names, initial_value=self.scene.name, visible=len(names) > 1)
        self._slider = gui.add_slider("Keyframe", 0, max(0, len(self.scene.keyframes) - 1), 1, self.index)
        self._play = gui.add_button("Play", hint=f"step through the keyframes at {PLAY_RATE:g} per second")
        self._layer_titles = {L.LAYER_TITLES[n]: n for n in self.data.layers()}
        self._layer_menu = gui.add_dropdown("Layer", list(self._layer_titles), initial_value=L.LAYER_TITLES[self.layer])
        self._mask_titles = {t: m for m, t in L.MASK_MODES.items()}
        self._mask_menu = gui.add_dropdown("Camera mask", list(self._mask_titles), initial_value=L.MASK_MODES[self.mask])
        self._image_titles = {L.IMAGE_MODES[m]: m for m in self.data.image_modes()}
        self._image_menu = gui.add_dropdown("Cameras", list(self._image_titles),
                                            initial_value=L.IMAGE_MODES[self.images])
        self._ego_box = gui.add_checkbox("Ego car and camera frusta", options.ego)
        self._status = gui.add_markdown("")
        with gui.add_folder("Scores of this keyframe"):
            self._scores = gui.add_markdown("")
        with gui.add_folder("Per-class IoU", expand_by_default=False):
            self._per_class = gui.add_markdown("")
        with gui.add_folder("Legend"):
            gui.add_html(legend_html(CLASS_NAMES[:NUM_SEMANTIC_CLASSES], CLASS_COLORS, "Occ3D classes", columns=2))
            gui.add_html(legend_html(L.ERROR_NAMES, L.ERROR_COLORS, "Errors against the GT", columns=2))
        with gui.add_folder("Show classes", expand_by_default=False):
            self._class_boxes = [gui.add_checkbox(name, True) for name in CLASS_NAMES[:NUM_SEMANTIC_CLASSES]]
        with gui.add_folder("Show error categories", expand_by_default=False):
            self._error_boxes = [gui.add_checkbox(name, True) for name in L.ERROR_NAMES]

        self._scene_menu.on_update(lambda _: self._set_scene(self._scene_menu.value))
        self._slider.on_update(lambda _: self._set(index=int(self._slider.value)))
        self._play.on_click(lambda _: self._toggle_play())
        self._layer_menu.on_update(lambda _: self._set(layer=self._layer_titles[self._layer_menu.value]))
        self._mask_menu.on_update(lambda _: self._set(mask=self._mask_titles[self._mask_menu.value]))
        self._image_menu.on_update(lambda _: self._set(images=self._image_titles[self._image_menu.value]))
        self._ego_box.on_update(lambda _: self._set_ego(self._ego_box.value))
        for kind, boxes in (("semantic", self._class_boxes), ("error", self._error_boxes)):
            for category, box in enumerate(boxes):
                box.on_update(lambda _, k=kind, c=category, b=box: self._toggle_category(k, c, b.value))

    # --- state changes --------------------------------------------------------------------------------------------

    def _set(self, index: int | None = None, layer: str | None = None, mask: str | None = None,
             images: str | None = None) -> None:
        with self._lock:
            cameras_change = (index is not None and index != self.index) or (images not in (None, self.images))
            self.index = self.index if index is None else index
            self.layer = layer or self.layer
            self.mask = mask or self.mask
            self.images = images or self.images
            self.show(cameras=cameras_change)

    def _set_scene(self, name: str) -> None:
        with self._lock:
            self.scene = self.data.scene(name)
            self.index = 0
            self._slider.max = max(0, len(self.scene.keyframes) - 1)
            self._slider.value = 0
            self.show()

    def _set_ego(self, visible: bool) -> None:
        with self._lock:
            self.ego.visible = visible
            for handle in self._camera_nodes:
                handle.visible = visible

    def _toggle_category(self, kind: str, category: int, visible: bool) -> None:
        with self._lock:
            (self.hidden[kind].discard if visible else self.hidden[kind].add)(category)
            if self._layer_kind() == kind:
                for group, handle in self._layer_nodes:
                    if group.category == category:
                        handle.visible = visible

    def _layer_kind(self) -> str:
        return "error" if self.layer.startswith("errors-") else "semantic"

    def _toggle_play(self) -> None:
        if self._playing.is_set():
            self._playing.clear()
            self._play.label = "Play"
        else:
            self._playing.set()
            self._play.label = "Pause"

    def _play_loop(self) -> None:
        while not self._stopped.is_set():
            if not self._playing.wait(timeout=0.2):
                continue
            if self._stopped.wait(1.0 / PLAY_RATE) or not self._playing.is_set():
                continue
            with self._lock:
                self._slider.value = (self.index + 1) % len(self.scene.keyframes)

    # --- drawing --------------------------------------------------------------------------------------------------

    def show(self, cameras: bool = True) -> None:
        """Rebuild the shown layer (and the camera frusta) for the current keyframe and settings."""
        with self._lock:
            kf = self.scene.keyframes[self.index]
            count = len(self.scene.keyframes)
            self._title.content = (f"**easyocc view** · {self.scene.name} · {keyframe_label(self.index, count)}  \n"
                                   f"`{kf.token}`")
            notes = []
            try:
                volumes = self.data.volumes(kf)
                groups = volumes.layer(self.layer, self.mask)
                images = self.data.camera_images(kf, self.images) if cameras else None
            except EasyOccError as exc:  # a bad file: say so in the panel, keep serving
                self._status.content = f"**Error:** {html.escape(str(exc))}"
                return
            if groups is None:
                notes.append(f"No {L.LAYER_TITLES[self.layer]} for this keyframe.")
            if volumes.observed() is None and self.mask != "all":
                notes.append("No camera mask (needs --gt or --labels): every voxel is shown.")
            with self.server.atomic():
                for _, handle in self._layer_nodes:
                    handle.remove()
                self._layer_nodes = add_voxel_layer(self.server.scene, f"/{self.layer}", groups or [],
                                                    hidden=self.hidden[self._layer_kind()])
                if cameras:
                    for handle in self._camera_nodes:
                        handle.remove()
                    self._camera_nodes = add_cameras(self.server.scene, "/cameras", kf, images,
                                                     visible=self._ego_box.value)
            tables = scores_tables(volumes.scores)
            if tables:
                self._scores.content = "\n".join(markdown_table(*tables[0]) + ["", SCORES_NOTE])
                self._per_class.content = "\n".join(markdown_table(*tables[1]) + ["", "Under the GT camera mask."])
            else:
                self._scores.content = self._per_class.content = "Needs the GT and a prediction or pseudo-labels."
            self._status.content = " ".join(notes + [ready_text(self.scene.name, self.index, count)])

    def stop(self) -> None:
        self._stopped.set()
        self._playing.clear()
        self._player.join(timeout=5)
        stop_server(self.server)
