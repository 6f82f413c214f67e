"""The EasyOcc model: image encoder, voxel lifting by projection, 3D CNN head."""
