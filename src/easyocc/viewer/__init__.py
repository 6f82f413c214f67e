"""``easyocc view``: an interactive 3D viewer in the browser for datasets, pseudo-labels and predictions (viser).

Modules: ``meshing`` (voxel surfaces as merged quads: pure numpy/numba), ``layers`` (what is drawn: error
categories, camera-mask modes, colours, frusta, image overlays: pure), ``data`` (reading through the dataset index
and the Occ3D readers; per-keyframe scores), ``scene`` (viser nodes), ``app`` (the live viewer), ``export`` (one
self-contained HTML file), ``browser`` (headless Chromium for screenshots), ``command`` (the CLI).
"""
