"""2D sources: per-image semantic maps (Occ3D ids) and metric depth maps, behind one small interface."""

from easyocc.labels.sources.base import DepthSource, SemanticSource, check_depth, check_semantics

__all__ = ["DepthSource", "SemanticSource", "check_depth", "check_semantics"]
