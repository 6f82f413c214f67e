"""SimScenes: a procedural driving world written as a real nuScenes-format dataset with Occ3D ground truth."""
