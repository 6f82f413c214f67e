"""Scoring predictions: Occ3D mIoU under each named protocol, geometric IoU, RayIoU."""
