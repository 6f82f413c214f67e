"""Easy3D-Labels: 3D pseudo-labels from 2D semantics and metric depth, densified over time, in Occ3D format.

- ``sources/``: the 2D semantic and depth sources (Grounded-SAM, Metric3D, ..., the SimScenes oracle);
- ``lift``: pixels -> semantic points (and the ego-vehicle masks); ``cells``: a frame's points as fine cells;
- ``aggregate``: posed frames (images or labelled LiDAR) moved into the current keyframe, dynamic classes filtered;
- ``voxelize``: the class vote and the occupancy threshold; ``visibility``: free-space rays, carving, the masks;
- ``pipeline``: ``label_window`` (any posed clouds) and ``SceneLabeler`` (a scene through 2D sources);
- ``config``: ``LabelConfig``; ``command``/``quality``: ``easyocc labels`` and ``easyocc label-quality``;
- ``torch_backend``: the GPU path; ``toyworld``: an analytic scene for tests and benchmarks.
"""
