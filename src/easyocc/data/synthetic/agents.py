"""Shapes of the annotated objects (nuScenes sample_annotation): vehicles, pedestrians, barriers, cones, 'others'.

Each kind is a few prisms in the object's own frame (x forward, y left, z up from the ground it stands on, origin
at the centre of its box's footprint), all inside its annotation box ``size`` = (width, length, height), the
nuScenes order. Riders belong to their bicycle or motorcycle, as in nuScenes (``cycle.with_rider``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from easyocc.data.synthetic.motion import Mover
from easyocc.data.synthetic.solids import (
    MAT_GLASS,
    MAT_PLAIN,
    MAT_STRIPED,
    Solids,
    SolidBuilder,
    rectangle,
    regular_polygon,
)
from easyocc.occ3d import CLASS_IDS

#: kind -> (nuScenes category name, Occ3D class). 'bin', 'bicycle_rack' and 'debris' are Occ3D 'others'.
KINDS: dict[str, tuple[str, int]] = {
    "car": ("vehicle.car", CLASS_IDS["car"]),
    "truck": ("vehicle.truck", CLASS_IDS["truck"]),
    "bus": ("vehicle.bus.rigid", CLASS_IDS["bus"]),
    "trailer": ("vehicle.trailer", CLASS_IDS["trailer"]),
    "construction_vehicle": ("vehicle.construction", CLASS_IDS["construction_vehicle"]),
    "motorcycle": ("vehicle.motorcycle", CLASS_IDS["motorcycle"]),
    "bicycle": ("vehicle.bicycle", CLASS_IDS["bicycle"]),
    "pedestrian": ("human.pedestrian.adult", CLASS_IDS["pedestrian"]),
    "barrier": ("movable_object.barrier", CLASS_IDS["barrier"]),
    "traffic_cone": ("movable_object.trafficcone", CLASS_IDS["traffic_cone"]),
    "bin": ("movable_object.pushable_pullable", CLASS_IDS["others"]),
    "bicycle_rack": ("static_object.bicycle_rack", CLASS_IDS["others"]),
    "debris": ("movable_object.debris", CLASS_IDS["others"]),
}
VEHICLE_KINDS = ("car", "truck", "bus", "trailer", "construction_vehicle")
CYCLE_KINDS = ("motorcycle", "bicycle")

CAR_COLORS = ((0.92, 0.92, 0.92), (0.08, 0.08, 0.09), (0.62, 0.63, 0.66), (0.70, 0.10, 0.10), (0.14, 0.24, 0.58),
              (0.38, 0.40, 0.42), (0.12, 0.30, 0.18), (0.80, 0.66, 0.45))
TRUCK_COLORS = ((0.95, 0.95, 0.93), (0.90, 0.45, 0.10), (0.15, 0.30, 0.65), (0.60, 0.12, 0.10))
BUS_COLORS = ((0.90, 0.72, 0.10), (0.75, 0.12, 0.12), (0.93, 0.93, 0.93), (0.10, 0.45, 0.30))
CLOTHES = ((0.10, 0.10, 0.12), (0.20, 0.25, 0.45), (0.55, 0.10, 0.12), (0.75, 0.75, 0.72), (0.30, 0.40, 0.25),
           (0.60, 0.50, 0.35), (0.85, 0.55, 0.15))
SKIN = ((0.87, 0.70, 0.58), (0.62, 0.45, 0.32), (0.40, 0.28, 0.20), (0.95, 0.80, 0.68))
TYRE = (0.06, 0.06, 0.07)
GLASS = (0.18, 0.22, 0.28)


@dataclass
class Agent:
    """One annotated object: what it is, its box size (w, l, h), how it moves, and its parts (local frame)."""

    kind: str
    size: tuple[float, float, float]
    mover: Mover
    z: float
    parts: Solids
    attribute: str | None

    @property
    def category(self) -> str:
        return KINDS[self.kind][0]

    @property
    def cls(self) -> int:
        return KINDS[self.kind][1]

    @property
    def moving(self) -> bool:
        return self.mover.speed > 0


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _shade(color, factor: float):
    return tuple(min(1.0, c * factor) for c in color)


def agent_shape(kind: str, rng: np.random.Generator, rider: bool = False) -> tuple[tuple[float, float, float], Solids]:
    """Box size (w, l, h) and the parts (owner 0) of a new object of ``kind``."""
    cls = KINDS[kind][1]
    b = SolidBuilder()

    def part(cx, length, width, zlo, zhi, color, material=MAT_PLAIN, cy=0.0):
        b.add(rectangle(cx, cy, length, width), zlo, zhi, cls, color, material, owner=0)

    if kind == "car":
        l, w, h = rng.uniform(4.2, 4.9), rng.uniform(1.75, 1.95), rng.uniform(1.45, 1.75)
        color = _pick(rng, CAR_COLORS)
        part(0.3 * l, 0.7, 0.92 * w, 0.0, 0.35, TYRE)
        part(-0.3 * l, 0.7, 0.92 * w, 0.0, 0.35, TYRE)
        part(0.0, l, w, 0.35, 0.6 * h, color)
        part(-0.08 * l, 0.55 * l, 0.86 * w, 0.6 * h, h, _shade(color, 0.5), MAT_GLASS)
    elif kind == "truck":
        l, w, h = rng.uniform(6.0, 9.0), rng.uniform(2.3, 2.55), rng.uniform(2.9, 3.6)
        cab, cargo = _pick(rng, TRUCK_COLORS), _pick(rng, TRUCK_COLORS)
        part(0.0, l, w - 0.1, 0.0, 0.9, TYRE)
        part(0.5 * l - 1.1, 2.2, w, 0.9, 2.7, cab)
        part(-1.2, l - 2.4, w, 0.9, h, cargo)
    elif kind == "bus":
        l, w, h = rng.uniform(10.0, 12.5), rng.uniform(2.5, 2.6), rng.uniform(3.0, 3.4)
        color = _pick(rng, BUS_COLORS)
        part(0.32 * l, 1.0, w - 0.1, 0.0, 0.35, TYRE)
        part(-0.3 * l, 1.0, w - 0.1, 0.0, 0.35, TYRE)
        part(0.0, l, w, 0.35, 1.6, color)
        part(0.0, l, w, 1.6, h - 0.35, GLASS, MAT_GLASS)
        part(0.0, l, w, h - 0.35, h, color)
    elif kind == "trailer":
        l, w, h = rng.uniform(7.0, 11.0), rng.uniform(2.4, 2.55), rng.uniform(3.4, 3.9)
        part(-0.5 * l + 1.7, 2.6, w - 0.2, 0.0, 1.1, TYRE)
        part(0.5 * l - 2.0, 0.3, w - 0.5, 0.0, 1.1, (0.3, 0.3, 0.3))
        part(0.0, l, w, 1.1, h, _pick(rng, TRUCK_COLORS))
    elif kind == "construction_vehicle":
        l, w, h = rng.uniform(5.5, 7.5), rng.uniform(2.4, 2.9), rng.uniform(3.0, 3.6)
        yellow = (0.95, 0.72, 0.08)
        part(-0.1 * l, 0.8 * l, w, 0.0, 0.9, TYRE)
        part(-0.2 * l, 0.4 * l, 0.9 * w, 0.9, h, yellow)
        part(0.225 * l, 0.45 * l, 0.5, h - 1.0, h - 0.6, yellow)
        part(0.42 * l, 0.16 * l, 0.9 * w, 0.1, 1.0, (0.35, 0.33, 0.30))
    elif kind in CYCLE_KINDS:
        motor = kind == "motorcycle"
        l = rng.uniform(1.9, 2.2) if motor else rng.uniform(1.6, 1.8)
        w = rng.uniform(0.7, 0.9) if motor else 0.6
        frame_top = 1.0 if motor else 0.95
        h = (rng.uniform(1.5, 1.7) if motor else rng.uniform(1.65, 1.8)) if rider else frame_top + 0.1
        color = _pick(rng, CAR_COLORS if motor else CLOTHES)
        if motor:
            part(0.0, l, 0.35, 0.0, 0.55, TYRE)
            part(0.0, 0.9 * l, 0.45, 0.55, frame_top, color)
        else:
            part(0.0, l, 0.12, 0.0, frame_top, color)
        part(0.35 * l, 0.1, 0.55, frame_top, frame_top + 0.1, (0.2, 0.2, 0.2))
        if rider:
            clothes = _pick(rng, CLOTHES)
            part(-0.15, 0.45, 0.45, frame_top + 0.1, h - 0.25, clothes)
            part(-0.15, 0.25, 0.25, h - 0.25, h, (0.1, 0.1, 0.1) if motor else _pick(rng, SKIN))
    elif kind == "pedestrian":
        l, w, h = 0.55, 0.62, rng.uniform(1.55, 1.9)
        clothes = _pick(rng, CLOTHES)
        part(0.0, 0.3, 0.36, 0.0, 0.47 * h, _pick(rng, CLOTHES))
        part(0.0, 0.32, 0.52, 0.47 * h, 0.86 * h, clothes)
        part(0.0, 0.22, 0.2, 0.86 * h, h, _pick(rng, SKIN))
    elif kind == "barrier":
        l, w, h = rng.uniform(1.8, 2.2), 0.6, rng.uniform(0.9, 1.1)
        part(0.0, l, w, 0.0, 0.3, (0.85, 0.85, 0.82))
        part(0.0, l, 0.3, 0.3, h, (0.92, 0.92, 0.90), MAT_STRIPED)
    elif kind == "traffic_cone":
        l = w = 0.4
        h = rng.uniform(0.6, 0.8)
        part(0.0, 0.4, 0.4, 0.0, 0.04, (0.1, 0.1, 0.1))
        b.add(regular_polygon(0.0, 0.0, 0.14, 8), 0.04, h, cls, (0.95, 0.42, 0.05), MAT_STRIPED, owner=0)
    elif kind == "bin":
        l, w, h = 0.7, 0.6, rng.uniform(1.0, 1.15)
        part(0.0, l, w, 0.0, h, _pick(rng, ((0.15, 0.35, 0.18), (0.30, 0.30, 0.32), (0.15, 0.25, 0.55))))
    elif kind == "bicycle_rack":
        l, w, h = 2.4, 0.5, 0.85
        part(0.0, l, 0.5, 0.0, 0.05, (0.5, 0.5, 0.52))
        part(0.0, l, 0.08, 0.05, h, (0.7, 0.7, 0.72))
    elif kind == "debris":
        l, w, h = rng.uniform(0.6, 1.0), rng.uniform(0.4, 0.7), rng.uniform(0.2, 0.35)
        part(0.0, l, w, 0.0, h, (0.40, 0.30, 0.20))
    else:
        raise ValueError(f"unknown agent kind {kind!r}")
    return (float(w), float(l), float(h)), b.build()


def attribute_of(kind: str, moving: bool, rider: bool) -> str | None:
    """The nuScenes attribute name of an annotation (vehicles, cycles and pedestrians have exactly one)."""
    if kind in VEHICLE_KINDS:
        return "vehicle.moving" if moving else "vehicle.parked"
    if kind in CYCLE_KINDS:
        return "cycle.with_rider" if rider else "cycle.without_rider"
    if kind == "pedestrian":
        return "pedestrian.moving" if moving else "pedestrian.standing"
    return None
