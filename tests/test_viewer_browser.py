"""End to end in a real browser: the viewer on a tiny SimScenes, opened in headless Chromium (WebGL on SwiftShader);
the screenshot must show a scene (not a blank page) with the palette colour of the driveable surface. The exported
HTML file is opened the same way, from disk, and must not ask the network for anything.

Skips only where no Chromium is installed (.ci/run installs Debian's ``chromium``). The servers listen on
127.0.0.1 and are stopped by the test.
"""

from __future__ import annotations

import io
import socket

import numpy as np
import pytest
from PIL import Image

from easyocc.cli import main
from easyocc.occ3d import CLASS_COLORS, CLASS_IDS
from easyocc.viewer.browser import Chromium, find_chromium

needs_chromium = pytest.mark.skipif(
    find_chromium() is None, reason="no Chromium installed (Debian: apt-get install chromium; .ci/run installs it)")

WINDOW = (720, 480)
ROAD_RGB = CLASS_COLORS[CLASS_IDS["driveable_surface"]]  # (255, 0, 255)


def shaded(image: np.ndarray, rgb, lowest: float = 0.55, highest: float = 1.1, tolerance: float = 35) -> np.ndarray:
    """Pixels of colour ``rgb`` as lit faces show it: s * rgb for a brightness s in [lowest, highest], within
    ``tolerance`` per channel. image: (H, W, 3). Returns (H, W) bool."""
    rgb = np.asarray(rgb, float)
    scale = image @ rgb / (rgb @ rgb)
    residual = np.abs(image - scale[..., None] * rgb).max(axis=2)
    return (scale >= lowest) & (scale <= highest) & (residual <= tolerance)


def assert_scene_rendered(png: bytes) -> None:
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(float)
    assert image.shape == (WINDOW[1], WINDOW[0], 3)
    colours = len(np.unique(image.reshape(-1, 3), axis=0))
    assert colours > 300, f"the page looks blank ({colours} colours)"
    road = int(shaded(image, ROAD_RGB).sum())
    assert road > 0.001 * image.shape[0] * image.shape[1], f"only {road} pixels of the driveable-surface colour"


def test_the_colour_check_tells_the_road_from_its_neighbours():
    pixels = np.array([[[193, 26, 194], [255, 0, 255], [255, 204, 255], [75, 0, 75], [0, 150, 245]]], float)
    np.testing.assert_array_equal(shaded(pixels, ROAD_RGB), [[True, True, False, False, False]])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
@needs_chromium
def test_live_viewer_renders_in_headless_chromium(tiny_simscenes):
    from easyocc.viewer.app import LiveViewer, ViewOptions, ready_text
    from easyocc.viewer.data import ViewerData, ViewerInputs, default_gt

    data = ViewerData(ViewerInputs(tiny_simscenes, gt=default_gt(tiny_simscenes)))
    viewer = LiveViewer(data, ViewOptions(scene="scene-0001", keyframe=1), host="127.0.0.1", port=0)
    port = viewer.server.get_port()
    try:
        with Chromium(window=WINDOW) as browser:
            capture = browser.capture(viewer.url, ready_text("scene-0001", 1, 4))
            assert browser.evaluate("document.body.innerText").count("easyocc view") == 1
    finally:
        viewer.stop()
    assert not _port_open(port)
    assert_scene_rendered(capture.png)
    assert all(u.startswith((viewer.url, "blob:", "data:")) for u in capture.requests), capture.requests[:5]


@pytest.mark.slow
@needs_chromium
def test_view_command_export_opens_offline_and_screenshot(tiny_simscenes, tmp_path, capsys):
    page, picture = tmp_path / "out" / "keyframe.html", tmp_path / "keyframe.png"
    rc = main(["view", "--data", str(tiny_simscenes), "--scene", "scene-0002", "--keyframe", "2",
               "--export", str(page), "--screenshot", str(picture), "--window", *map(str, WINDOW)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert f"wrote {page}" in printed and f"wrote {picture}" in printed and "viser" not in printed
    assert_scene_rendered(picture.read_bytes())
    text = page.read_text()
    assert "__VISER_EMBED_DATA__" in text and 'id="easyocc-panel"' in text
    with Chromium(window=WINDOW) as browser:
        capture = browser.capture(page.as_uri())
        panel = browser.evaluate("document.getElementById('easyocc-panel').innerText")
    assert "scene-0002" in panel and "keyframe 2 (0-3)" in panel and "driveable_surface" in panel
    assert_scene_rendered(capture.png)
    online = [u for u in capture.requests if not u.startswith(("file:", "data:", "blob:"))]
    assert online == [], f"the exported page asked the network for {online[:3]}"
