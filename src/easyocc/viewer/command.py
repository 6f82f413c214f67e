"""``easyocc view``: the interactive 3D viewer in the browser; ``--export`` / ``--screenshot`` write a file instead.

    easyocc view --data demo-output/simscenes --labels demo-output/labels --pred demo-output/predictions
    easyocc view --data data/simscenes --labels labels/ --keyframe 6 --export keyframe6.html --screenshot kf6.png
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from easyocc.labels.sources import add_source_arguments
    from easyocc.viewer.layers import IMAGE_MODES, LAYER_TITLES, MASK_MODES

    parser.add_argument("--data", type=Path, required=True, help="nuScenes-format dataroot (real nuScenes or SimScenes)")
    parser.add_argument("--version", default="auto", help="nuScenes table version (default: the only v1.0-* folder)")
    parser.add_argument("--labels", type=Path, default=None, help="pseudo-labels: <scene>/<token>/labels.npz")
    parser.add_argument("--pred", type=Path, default=None, help="predictions: <token>.npz (easyocc predict)")
    parser.add_argument("--gt", type=Path, default=None,
                        help="Occ3D ground truth: <scene>/<token>/labels.npz (default: DATA/gts when present)")
    parser.add_argument("--scene", default=None,
                        help="scene name (default: the first scene with a prediction, else the first)")
    parser.add_argument("--keyframe", default=None, metavar="K|TOKEN",
                        help="keyframe index in the scene (from 0) or sample token: where the viewer starts; "
                             "--export and --screenshot show only this keyframe (default: export the whole scene, "
                             "screenshot the first keyframe)")
    parser.add_argument("--layer", default=None, choices=tuple(LAYER_TITLES),
                        help="layer shown first (default: pred, else labels, else gt); errors-* need --gt")
    parser.add_argument("--camera-mask", default="dim", choices=tuple(MASK_MODES),
                        help="voxels the cameras do not observe (GT camera mask): dim (default), hide or all")
    parser.add_argument("--images", default="photo", choices=tuple(IMAGE_MODES),
                        help="camera images on the frusta: photo (default), none, or the photo with the semantics "
                             "or depth of the 2D source named by --semantics / --depth")
    parser.add_argument("--no-ego", dest="ego", action="store_false", help="hide the ego car and the camera frusta")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve on (default 127.0.0.1: this machine only; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080, the next free one if taken)")
    parser.add_argument("--export", type=Path, default=None, metavar="FILE.html",
                        help="write the scene as one self-contained HTML file that opens offline, then exit")
    parser.add_argument("--screenshot", type=Path, default=None, metavar="FILE.png",
                        help="write a picture of the viewer taken with headless Chromium, then exit")
    parser.add_argument("--window", type=int, nargs=2, default=(1600, 1000), metavar=("W", "H"),
                        help="screenshot size in pixels (default 1600 1000)")
    add_source_arguments(parser, default_semantics=None, default_depth=None)


def run(args: argparse.Namespace) -> int:
    from easyocc.errors import EasyOccError
    from easyocc.labels.sources.registry import depth_source_from_args, semantic_source_from_args
    from easyocc.viewer.app import ViewOptions
    from easyocc.viewer.data import ViewerData, ViewerInputs, default_gt

    if args.window[0] < 64 or args.window[1] < 64:
        raise EasyOccError(f"--window must be at least 64 64 (got {args.window[0]} {args.window[1]})")
    inputs = ViewerInputs(data=args.data, version=args.version, labels=args.labels, pred=args.pred,
                          gt=args.gt if args.gt is not None else default_gt(args.data))
    data = ViewerData(inputs, semantic_source_from_args(args, args.data), depth_source_from_args(args, args.data))
    options = ViewOptions(scene=args.scene, keyframe=args.keyframe, layer=args.layer, mask=args.camera_mask,
                          images=args.images, ego=args.ego)
    if args.export is None and args.screenshot is None:
        return serve(data, options, args.host, args.port)
    if args.export is not None:
        write_export(data, options, args.export)
    if args.screenshot is not None:
        write_screenshot(data, options, args.screenshot, tuple(args.window))
    return 0


def serve(data, options, host: str, port: int) -> int:
    from easyocc.viewer.app import LiveViewer

    viewer = LiveViewer(data, options, host=host, port=port)
    print(f"easyocc view: {viewer.scene.name} ({len(viewer.scene.keyframes)} keyframes) at {viewer.url}  "
          "(Ctrl-C to stop)", flush=True)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())  # `kill` stops it as cleanly as Ctrl-C
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:  # the way to stop it: not an error
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        viewer.stop()
    print("easyocc view: stopped", flush=True)
    return 0


def write_export(data, options, path: Path) -> None:
    from easyocc.viewer.export import save_export

    scene = data.scene(options.scene)
    keyframes = None if options.keyframe is None else [data.keyframe(scene, options.keyframe)]
    size = save_export(path, data, options, keyframes)
    which = f"keyframe {keyframes[0]}" if keyframes else f"{len(scene.keyframes)} keyframes"
    print(f"easyocc view: wrote {path} ({size / 1e6:.1f} MB, {scene.name}, {which})")


def write_screenshot(data, options, path: Path, window: tuple[int, int]) -> None:
    from easyocc.fileio import atomic_write
    from easyocc.viewer.app import LiveViewer, ready_text
    from easyocc.viewer.browser import Chromium, require_chromium

    executable = require_chromium()  # before starting anything
    viewer = LiveViewer(data, options, host="127.0.0.1", port=0)
    try:
        with Chromium(executable, window=window) as browser:
            capture = browser.capture(viewer.url, ready_text(viewer.scene.name, viewer.index,
                                                             len(viewer.scene.keyframes)))
    finally:
        viewer.stop()
    with atomic_write(path, "wb") as handle:
        handle.write(capture.png)
    print(f"easyocc view: wrote {path} ({window[0]}x{window[1]})")
