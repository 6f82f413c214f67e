"""The SimScenes sensor rig: the six nuScenes cameras and LIDAR_TOP, mounted as on the real car.

Mounting, intrinsics and sensor tokens are copied from the calibrated_sensor and sensor tables of the real
nuScenes keyframe sample ``ca9a282c9e77460f8360f564131a8af5`` (scene-0061, v1.0-mini); they are package constants,
never read at run time. The intrinsics are for 1600x900 images and are scaled to the generated image size.

Timing follows the real car: the keyframe timestamp is the LIDAR_TOP timestamp, and each camera fires when the
rotating LiDAR sweeps across its field of view, a few tens of milliseconds earlier (offsets of the same sample).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from easyocc.data.nuscenes_index import CAMERA_NAMES, LIDAR_NAME
from easyocc.geometry import make_transform, scale_intrinsics

#: Image size of the real nuScenes cameras, for which ``SENSORS[*].intrinsic`` holds.
NUSCENES_IMAGE_SIZE = (1600, 900)


@dataclass(frozen=True)
class SensorMount:
    """One sensor as mounted on the ego vehicle: ``ego_T_sensor`` from translation and quaternion [w, x, y, z]."""

    channel: str
    sensor_token: str
    modality: str
    translation: tuple[float, float, float]
    rotation: tuple[float, float, float, float]
    intrinsic: tuple[tuple[float, ...], ...] = ()
    #: Sensor timestamp minus the LIDAR_TOP (keyframe) timestamp, microseconds.
    offset_us: int = 0

    @property
    def ego_T_sensor(self) -> np.ndarray:
        """(4, 4) float64 sensor -> ego."""
        return make_transform(np.asarray(self.rotation), self.translation)

    def intrinsics(self, width: int, height: int) -> np.ndarray:
        """(3, 3) float64 intrinsics for images of ``width`` x ``height`` (scaled from 1600x900)."""
        sx = width / NUSCENES_IMAGE_SIZE[0]
        sy = height / NUSCENES_IMAGE_SIZE[1]
        return scale_intrinsics(np.asarray(self.intrinsic, dtype=np.float64), sx, sy)


SENSORS: dict[str, SensorMount] = {
    s.channel: s
    for s in (
        SensorMount(
            "CAM_FRONT", "725903f5b62f56118f4094b46a4470d8", "camera",
            (1.70079118954, 0.0159456324149, 1.51095763913),
            (0.4998015430569128, -0.5030316162024876, 0.4997798114386805, -0.49737083824542755),
            ((1266.417203046554, 0.0, 816.2670197447984), (0.0, 1266.417203046554, 491.50706579294757),
             (0.0, 0.0, 1.0)),
            offset_us=-35491,
        ),
        SensorMount(
            "CAM_FRONT_RIGHT", "2f7ad058f1ac5557bf321c7543758f43", "camera",
            (1.5508477543, -0.493404796419, 1.49574800619),
            (0.2060347966337182, -0.2026940577919598, 0.6824507824531167, -0.6713610884174485),
            ((1260.8474446004698, 0.0, 807.968244525554), (0.0, 1260.8474446004698, 495.3344268742088),
             (0.0, 0.0, 1.0)),
            offset_us=-27612,
        ),
        SensorMount(
            "CAM_FRONT_LEFT", "ec4b5d41840a509984f7ec36419d4c09", "camera",
            (1.52387798135, 0.494631336551, 1.50932822144),
            (0.6757265034669446, -0.6736266522251881, 0.21214015046209478, -0.21122827103904068),
            ((1272.5979470598488, 0.0, 826.6154927353808), (0.0, 1272.5979470598488, 479.75165386361925),
             (0.0, 0.0, 1.0)),
            offset_us=-43107,
        ),
        SensorMount(
            "CAM_BACK", "ce89d4f3050b5892b33b3d328c5e82a3", "camera",
            (0.0283260309358, 0.00345136761476, 1.57910346144),
            (0.5037872666382278, -0.49740249788611096, -0.4941850223835201, 0.5045496097725578),
            ((809.2209905677063, 0.0, 829.2196003259838), (0.0, 809.2209905677063, 481.77842384512485),
             (0.0, 0.0, 1.0)),
            offset_us=-10426,
        ),
        SensorMount(
            "CAM_BACK_LEFT", "a89643a5de885c6486df2232dc954da2", "camera",
            (1.03569100218, 0.484795032713, 1.59097014818),
            (0.6924185592174665, -0.7031619420114925, -0.11648342771943819, 0.11203317912370753),
            ((1256.7414812095406, 0.0, 792.1125740759628), (0.0, 1256.7414812095406, 492.7757465151356),
             (0.0, 0.0, 1.0)),
            offset_us=-528,
        ),
        SensorMount(
            "CAM_BACK_RIGHT", "ca7dba2ec9f95951bbe67246f7f2c3f7", "camera",
            (1.0148780988, -0.480568219723, 1.56239545128),
            (0.12280980120078765, -0.132400842670559, -0.7004305821388234, 0.690496031265798),
            ((1259.5137405846733, 0.0, 807.2529053838625), (0.0, 1259.5137405846733, 501.19579884916527),
             (0.0, 0.0, 1.0)),
            offset_us=-20058,
        ),
        SensorMount(
            LIDAR_NAME, "dc8b396651c05aedbb9cdaae573bb567", "lidar",
            (0.943713, 0.0, 1.84023),
            (0.7077955119163518, -0.006492242056004365, 0.010646214713995808, -0.7063073142877817),
        ),
    )
}
assert set(CAMERA_NAMES) | {LIDAR_NAME} == set(SENSORS)


@dataclass(frozen=True)
class LidarPattern:
    """A spinning multi-beam LiDAR like the HDL-32E of nuScenes: rings from ``lowest_deg`` up in equal steps."""

    beams: int = 32
    azimuths: int = 1084
    lowest_deg: float = -30.67
    highest_deg: float = 10.67
    max_range: float = 70.0

    def directions(self) -> np.ndarray:
        """Unit ray directions in the LiDAR frame, (azimuths * beams, 3) float64, ordered by azimuth then ring
        (ring 0 = lowest beam), as nuScenes scans are stored."""
        elevation = np.radians(np.linspace(self.lowest_deg, self.highest_deg, self.beams))
        azimuth = np.arange(self.azimuths, dtype=np.float64) * (2.0 * np.pi / self.azimuths)
        az, el = np.meshgrid(azimuth, elevation, indexing="ij")
        d = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)
        return d.reshape(-1, 3)

    def rings(self) -> np.ndarray:
        """Ring index of each direction of :meth:`directions`, (azimuths * beams,) int."""
        return np.tile(np.arange(self.beams), self.azimuths)
