"""Easy3D-Labels: 3D pseudo-labels from 2D semantics and metric depth, densified over time, in Occ3D format."""
