"""Easy3D-Labels: 3D pseudo-labels from 2D semantics and metric depth, densified over time, in Occ3D format.

The library face: :class:`DatasetLabeler` (``dataset``) labels a nuScenes-format dataroot with two 2D sources and a
:class:`LabelConfig`, in memory or into a resumable folder; ``easyocc labels`` parses its flags into it.

- ``sources/``: the 2D semantic and depth sources (Grounded-SAM, Metric3D, ..., the SimScenes oracle);
- ``lift``: pixels -> semantic points (and the ego-vehicle masks); ``cells``: a frame's points as fine cells;
- ``aggregate``: posed frames (images or labelled LiDAR) moved into the current keyframe, dynamic classes filtered;
- ``voxelize``: the class vote and the occupancy threshold; ``visibility``: free-space rays, carving, the masks;
- ``pipeline``: ``label_window`` (any posed clouds) and ``SceneLabeler`` (a scene through 2D sources);
- ``dataset``: ``DatasetLabeler`` (scenes, manifest, resume, shards, worker processes); ``sweep``: the
  frames x min-points sweep scored against ground truth;
- ``config``: ``LabelConfig``; ``options``: the command-line flags of the stage; ``command``/``quality``: the
  commands ``easyocc labels`` and ``easyocc label-quality``;
- ``backend``: the implementation picked once (numba's kernels, or ``torch_backend`` on a device);
  ``toyworld``: an analytic scene for tests and benchmarks.
"""

from easyocc.labels.config import LabelConfig
from easyocc.labels.dataset import DatasetLabeler, LabelReport  # light: the heavy modules load when they run

__all__ = ["DatasetLabeler", "LabelConfig", "LabelReport"]
