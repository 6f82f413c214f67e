"""Datasets: the nuScenes-format index (real nuScenes or SimScenes) and the synthetic world."""
