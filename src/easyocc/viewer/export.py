"""The viewer as one self-contained HTML file that opens offline: viser's static embedding (its whole web client,
zstd-compressed, with the scene recorded into the page) plus a small panel of our own (legend, scores).

Every available layer is in the file; the chosen one is visible, the others can be switched on in viser's scene
tree (top right), as can single classes. With several keyframes the recording shows them in turn at 2 Hz: viser's
playback bar is then the keyframe slider and play button.
"""

from __future__ import annotations

import html
from pathlib import Path

from easyocc.fileio import atomic_write
from easyocc.occ3d import CLASS_COLORS, CLASS_NAMES, NUM_SEMANTIC_CLASSES
from easyocc.viewer import layers as L
from easyocc.viewer.app import PLAY_RATE, ViewOptions, initial_layer, keyframe_label, legend_html
from easyocc.viewer.data import SCORES_NOTE, ViewerData, scores_tables
from easyocc.viewer.scene import add_cameras, add_ego, add_voxel_layer, configure_view, start_server, stop_server


def export_html(data: ViewerData, options: ViewOptions = ViewOptions(), keyframes: list[int] | None = None) -> str:
    """The page (a str of HTML) for ``keyframes`` (indices in the scene; None: every keyframe) of the scene
    ``options`` selects."""
    scene = data.scene(options.scene)
    indices = list(range(len(scene.keyframes))) if keyframes is None else list(keyframes)
    layer = initial_layer(data, options.layer)
    data.require_image_mode(options.images)
    # The recording needs a server object; it listens on an ephemeral local port until the page is written.
    server = start_server("127.0.0.1", 0)
    try:
        configure_view(server)
        add_ego(server.scene, visible=options.ego)
        for name in data.layers():
            server.scene.add_frame(f"/{name}", show_axes=False, visible=name == layer)
        server.scene.add_frame("/cameras", show_axes=False, visible=options.ego)
        frames = []
        from tqdm import tqdm

        for step, index in enumerate(tqdm(indices, desc="export", unit="keyframe", disable=len(indices) == 1)):
            kf = scene.keyframes[index]
            volumes = data.volumes(kf)
            suffix = f"/kf{index:02d}" if len(indices) > 1 else ""
            handles = [handle for name in data.layers()
                       for _, handle in add_voxel_layer(server.scene, f"/{name}", volumes.layer(name, options.mask) or [],
                                                        suffix, visible=step == 0)]
            handles += add_cameras(server.scene, "/cameras", kf, data.camera_images(kf, options.images), suffix,
                                   visible=step == 0)
            frames.append(handles)
        recording = server.get_scene_serializer()
        for previous, current in zip(frames, frames[1:]):
            recording.insert_sleep(1.0 / PLAY_RATE)
            for handle in previous:
                handle.visible = False
            for handle in current:
                handle.visible = True
        if len(frames) > 1:
            recording.insert_sleep(1.0 / PLAY_RATE)
        page = recording.as_html()
    finally:
        stop_server(server)
    return add_panel(page, panel_html(data, scene, indices, layer))


def save_export(path: str | Path, data: ViewerData, options: ViewOptions = ViewOptions(),
                keyframes: list[int] | None = None) -> int:
    """Write :func:`export_html` to ``path`` atomically; returns its size in bytes."""
    page = export_html(data, options, keyframes).encode()
    with atomic_write(path, "wb") as handle:
        handle.write(page)
    return len(page)


def panel_html(data: ViewerData, scene, indices: list[int], layer: str) -> str:
    """Our panel: what the file shows, the legends, and each keyframe's scores."""
    count = len(scene.keyframes)
    which = (keyframe_label(indices[0], count) if len(indices) == 1
             else f"keyframes {indices[0]}-{indices[-1]}, shown in turn at {PLAY_RATE:g} Hz")
    layers = ", ".join(f"<code>/{n}</code> {html.escape(L.LAYER_TITLES[n])}" for n in data.layers())
    parts = [
        f"<b>easyocc view</b> &middot; {html.escape(scene.name)} &middot; {which}",
        f"<p>Layers: {layers}. Shown: <b>{html.escape(L.LAYER_TITLES[layer])}</b>; switch layers and classes in the "
        "scene tree (button at the top right).</p>",
        legend_html(CLASS_NAMES[:NUM_SEMANTIC_CLASSES], CLASS_COLORS, "Occ3D classes", columns=3),
        legend_html(L.ERROR_NAMES, L.ERROR_COLORS, "Errors against the GT", columns=4),
    ]
    for index in indices:
        kf = scene.keyframes[index]
        tables = "".join(_html_table(header, rows) for header, rows in scores_tables(data.volumes(kf).scores))
        if tables:
            parts.append(f"<details{' open' if len(indices) == 1 else ''}><summary>Scores, keyframe {index} "
                         f"(<code>{html.escape(kf.token)}</code>)</summary>{tables}</details>")
    if any(data.volumes(scene.keyframes[i]).scores for i in indices):
        parts.append(f"<p>{html.escape(SCORES_NOTE).replace('*full*', '<i>full</i>')}</p>")
    return (
        '<div id="easyocc-panel" style="position:fixed;left:8px;top:8px;z-index:1000;max-width:520px;'
        "max-height:60vh;overflow:auto;background:rgba(255,255,255,0.92);border:1px solid #ccc;border-radius:4px;"
        'padding:6px 10px;font:12px sans-serif;color:#222"><details open><summary>Legend and scores</summary>'
        + "".join(parts) + "</details></div>"
    )


def add_panel(page: str, panel: str) -> str:
    """``page`` with ``panel`` placed just before ``</body>``."""
    end = page.rindex("</body>")
    return page[:end] + panel + page[end:]


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    cell = 'style="padding:0 6px;text-align:{}"'
    head = "".join(f"<th {cell.format('left' if i == 0 else 'right')}>{html.escape(h)}</th>"
                   for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td {cell.format('left' if i == 0 else 'right')}>{html.escape(v)}</td>"
                                    for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f'<table style="border-collapse:collapse;margin:4px 0"><tr>{head}</tr>{body}</table>'
