"""2D sources: per-image semantic maps (Occ3D ids) and metric depth maps, behind one small interface.

Sources by name: :class:`SourceSpec` (spec.py: names and settings as plain data, ``spec.build(dataroot)``); for
the command line :func:`add_source_arguments`, :func:`sources_from_args` (registry.py).
Library use: construct the classes of the source modules (oracle, grounded_sam, metric3d, depth_anything,
occnerf, precomputed) and wrap them in :class:`~.cache.CachedSemantics` / :class:`~.cache.CachedDepth`.
"""

from easyocc.labels.sources.base import DepthSource, SemanticSource, check_depth, check_semantics
from easyocc.labels.sources.registry import add_source_arguments, sources_from_args
from easyocc.labels.sources.spec import SourceSpec

__all__ = ["DepthSource", "SemanticSource", "SourceSpec", "add_source_arguments", "check_depth", "check_semantics",
           "sources_from_args"]
