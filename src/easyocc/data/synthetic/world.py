"""A procedural city block grid, deterministic by (seed, scene index): roads, sidewalks, parcels, objects, agents.

Layout (local frame, metres; the nuScenes global frame is this frame turned by a multiple of 90 degrees and moved):
- roads on a grid of lines with random spacing: 4 lanes of 3.5 m (an inner driving lane and an outer lane for
  parking, cycling and road works per direction, right-hand traffic), junctions where lines cross, a raised median
  (other_flat) on some segments, lane markings and crosswalks painted by the shader;
- kerbed sidewalks along every road (0.15 m), a terrain verge with trees, hedges and bins, then the blocks'
  parcels: buildings, parks (trees, hedges, ponds), parking lots, plazas and construction sites;
- street lights, traffic signs and traffic lights on the sidewalks' kerb side (manmade);
- annotated agents: parked and moving vehicles of every Occ3D vehicle class, cyclists, walking and standing
  pedestrians, road works (barriers, cones), bins, bicycle racks, debris.
The ego drives at a constant 5.5-9.5 m/s in the inner lane and turns at junctions at random. Every placement is
checked against everything accepted before (footprints over the whole drive, with height ranges), so nothing
ever intersects, moving or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from easyocc.data.synthetic.agents import CYCLE_KINDS, Agent, agent_shape, attribute_of
from easyocc.data.synthetic.footprints import FootprintIndex
from easyocc.data.synthetic.ground import GroundPlan
from easyocc.data.synthetic.motion import Line, Mover, Path, RouteBuilder, polyline_loop
from easyocc.data.synthetic.solids import (
    MAT_BUILDING,
    MAT_PLAIN,
    MAT_ROAD,
    MAT_SIDEWALK,
    MAT_SIGN,
    MAT_TERRAIN,
    MAT_VEGETATION,
    Solids,
    SolidBuilder,
    box_from_bounds,
    rectangle,
    regular_polygon,
    yaw_matrices,
)
from easyocc.geometry import make_transform, yaw_rotation
from easyocc.occ3d import CLASS_IDS

C = CLASS_IDS
ROAD_COLOR = (0.30, 0.30, 0.32)
SIDEWALK_COLOR = (0.62, 0.60, 0.57)
GRASS_COLOR = (0.34, 0.47, 0.21)
DIRT_COLOR = (0.50, 0.42, 0.30)
MEDIAN_COLOR = (0.55, 0.52, 0.46)
WATER_COLOR = (0.22, 0.36, 0.48)
BUILDING_COLORS = ((0.76, 0.70, 0.62), (0.62, 0.36, 0.30), (0.80, 0.80, 0.78), (0.55, 0.58, 0.62),
                   (0.85, 0.78, 0.60), (0.45, 0.42, 0.40))
METAL = (0.38, 0.38, 0.40)
LEAF_COLORS = ((0.16, 0.38, 0.12), (0.22, 0.42, 0.14), (0.12, 0.30, 0.10), (0.30, 0.45, 0.15))
BARK = (0.35, 0.25, 0.16)

#: Footprints are inflated by this much (metres) when checking that objects keep apart.
CLEARANCE = 0.3


@dataclass(frozen=True)
class WorldStyle:
    """Dimensions of the city (metres) and the ego's speed range (m/s)."""

    block_pitch: tuple[float, float] = (55.0, 80.0)
    lane_width: float = 3.5
    sidewalk_width: float = 3.5
    verge_width: tuple[float, float] = (1.5, 4.0)
    kerb_height: float = 0.15
    terrain_height: float = 0.08
    ego_speed: tuple[float, float] = (5.5, 9.5)
    #: Objects and agents are placed within this distance of the ego's route (the grid reaches 57 m).
    object_margin: float = 70.0
    #: Ground tiles reach this far beyond the route, for the horizon.
    ground_margin: float = 150.0

    @property
    def road_half_width(self) -> float:
        return 2.0 * self.lane_width


@dataclass(frozen=True)
class RoadGrid:
    """Road centre lines: N-S roads at x = ``xs``, E-W roads at y = ``ys`` (sorted), for markings and layout."""

    xs: np.ndarray
    ys: np.ndarray
    half_width: float
    lane_width: float


@dataclass
class World:
    """Everything of one scene. Times are seconds from the first keyframe; poses are in the local frame."""

    scenery: Solids
    agents: list[Agent]
    agent_parts: Solids
    ego: Mover
    roads: RoadGrid
    ground: GroundPlan
    sun: np.ndarray
    global_T_local: np.ndarray
    duration: float
    agent_part_range: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        owners = self.agent_parts.owner
        if len(owners) and np.any(np.diff(owners) < 0):
            raise ValueError("agent parts must be sorted by agent")
        starts = np.searchsorted(owners, np.arange(len(self.agents)), side="left")
        ends = np.searchsorted(owners, np.arange(len(self.agents)), side="right")
        self.agent_part_range = np.stack([starts, ends], axis=1) + len(self.scenery)
        self._paths = _PathTable([a.mover for a in self.agents])

    def agent_poses(self, t: float) -> np.ndarray:
        """(A, 3) [x, y, yaw] of every agent at time t."""
        return self._paths.poses(float(t))

    def solids_at(self, t: float) -> Solids:
        """Scenery then every agent's parts posed at time t (agent a's parts are ``agent_part_range[a]``)."""
        poses = self.agent_poses(t)
        owner = self.agent_parts.owner
        if len(owner) == 0:
            return self.scenery
        heights = np.array([a.z for a in self.agents])
        posed = self.agent_parts.transformed(yaw_matrices(poses[owner, 2]), poses[owner, :2])
        return Solids.concat([self.scenery, posed.shifted_z(heights[owner])])

    def local_T_ego(self, t: float) -> np.ndarray:
        """(4, 4) ego pose in the local frame at time t (origin on the ground below the rear axle)."""
        x, y, yaw = self.ego.pose(t)[0]
        return make_transform(yaw_rotation(yaw), (x, y, 0.0))

    def global_T_ego(self, t: float) -> np.ndarray:
        return self.global_T_local @ self.local_T_ego(t)


class _PathTable:
    """Every agent's path as padded arrays of straight pieces, to pose all agents at once.

    Agents move along straight lines or closed polylines (the ego alone turns on arcs).
    """

    def __init__(self, movers: list[Mover]):
        count = len(movers)
        most = max((len(m.path.pieces) for m in movers), default=1)
        self.start = np.full((count, most), np.inf)
        self.xy = np.zeros((count, most, 2))
        self.yaw = np.zeros((count, most))
        self.length = np.zeros(count)
        self.closed = np.zeros(count, dtype=bool)
        self.s0 = np.array([m.s0 for m in movers], dtype=np.float64)
        self.speed = np.array([m.speed for m in movers], dtype=np.float64)
        for a, m in enumerate(movers):
            if not all(isinstance(p, Line) for p in m.path.pieces):
                raise ValueError("agent paths must be made of straight pieces")
            lengths = np.array([p.length for p in m.path.pieces])
            self.start[a, : len(lengths)] = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
            self.xy[a, : len(lengths)] = [(p.x, p.y) for p in m.path.pieces]
            self.yaw[a, : len(lengths)] = [p.yaw for p in m.path.pieces]
            self.length[a] = lengths.sum()
            self.closed[a] = m.path.closed

    def poses(self, t: float) -> np.ndarray:
        """(A, 3) [x, y, yaw] at time t: the same as each ``Mover.pose(t)``."""
        s = self.s0 + self.speed * t
        s = np.where(self.closed, np.mod(s, np.where(self.closed, self.length, 1.0)), s)
        piece = np.clip((self.start <= s[:, None]).sum(axis=1) - 1, 0, None)
        rows = np.arange(len(s))
        u = s - self.start[rows, piece]
        yaw = self.yaw[rows, piece]
        xy = self.xy[rows, piece] + u[:, None] * np.stack([np.cos(yaw), np.sin(yaw)], axis=1)
        return np.column_stack([xy, yaw])


def _grid_lines(rng: np.random.Generator, first: float, extent: float, pitch: tuple[float, float]) -> np.ndarray:
    lines = [first]
    while lines[-1] < extent:
        lines.append(lines[-1] + rng.uniform(*pitch))
    while lines[0] > -extent:
        lines.insert(0, lines[0] - rng.uniform(*pitch))
    return np.round(np.array(lines), 2)


def _right(yaw: float) -> np.ndarray:
    return np.array([np.sin(yaw), -np.cos(yaw)])


def _heading(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw), np.sin(yaw)])


class _Generator:
    """Builds one :class:`World`; every random choice comes from ``rng`` in a fixed order."""

    def __init__(self, rng: np.random.Generator, style: WorldStyle, duration: float):
        self.rng = rng
        self.style = style
        self.duration = duration
        self.w = style.road_half_width
        self.lane = style.lane_width
        self.times = np.arange(-0.3, duration + 0.35, 0.1)
        self.index = FootprintIndex(self.times)
        self.scenery = SolidBuilder()
        self.agents: list[Agent] = []

    # ----------------------------------------------------------------------------------------------- layout
    def run(self) -> World:
        rng, style = self.rng, self.style
        speed = rng.uniform(*style.ego_speed)
        back = 15.0
        need = back + speed * self.duration + 40.0
        reach = need + style.ground_margin + 2 * style.block_pitch[1]
        self.xs = _grid_lines(rng, -rng.uniform(18.0, 40.0), reach, style.block_pitch)
        self.ys = _grid_lines(rng, 0.0, reach, style.block_pitch)
        self.ego = Mover(self._route(need, back), s0=back, speed=speed)
        route = self.ego.pose(np.linspace(-0.5, self.duration + 0.5, 200))[:, :2]
        lo, hi = route.min(axis=0), route.max(axis=0)
        self.populated = np.concatenate([lo - style.object_margin, hi + style.object_margin])
        self.route_points = route
        ground_bounds = np.concatenate([lo - style.ground_margin, hi + style.ground_margin])
        self._add_ego_footprint()
        self.blocks = self._blocks()
        self.ground = self._ground(ground_bounds)
        self.ground.add_to(self.scenery)
        self._populate()
        return self._world()

    def _route(self, need: float, back: float) -> Path:
        """The ego's path: from the inner lane of road y = 0 heading +x, straight or turning at each junction."""
        rng, w, half_lane = self.rng, self.w, 0.5 * self.lane
        rb = RouteBuilder(-back, -half_lane, 0.0)
        while sum(p.length for p in rb.pieces) < need:
            h = _heading(rb.yaw)
            pos = np.array([rb.x, rb.y])
            along_x = abs(h[0]) > 0.5
            lines = self.xs if along_x else self.ys
            coord = pos[0] if along_x else pos[1]
            sign = np.sign(h[0] if along_x else h[1])
            ahead = [c for c in lines if (c - coord) * sign > w + 8.0]
            junction_along = min(ahead, key=lambda c: (c - coord) * sign)
            centre_line = pos - _right(rb.yaw) * half_lane
            junction = centre_line + h * (junction_along - coord) * sign
            choice = rng.choice(3, p=[0.5, 0.25, 0.25])
            if choice == 0:
                rb.straight(float((junction - pos) @ h) + w + 1.0)
                continue
            turn = 1 if choice == 1 else -1
            radius = rng.uniform(7.0, 8.75) if turn == 1 else 5.25 - rng.uniform(0.0, 0.5)
            corner = junction + _right(rb.yaw) * half_lane + h * half_lane * turn
            arc_start = corner - h * radius
            rb.straight(float((arc_start - pos) @ h))
            rb.turn(radius, turn)
        rb.straight(200.0)
        return rb.path()

    def _add_ego_footprint(self) -> None:
        poses = self.ego.pose(self.times)
        # The car body around the rear axle (ego origin): 1 m behind, 3.9 m ahead.
        centres = poses[:, :2] + 1.45 * np.stack([np.cos(poses[:, 2]), np.sin(poses[:, 2])], axis=1)
        polys = np.stack([rectangle(c[0], c[1], 4.9 + 1.0, 2.0 + 0.8, yaw) for c, yaw in zip(centres, poses[:, 2])])
        self.index.add(polys, 0.0, 2.2)

    def _blocks(self) -> list[dict]:
        """Blocks between consecutive road lines that reach into the populated area, with their parcels."""
        rng, style, w = self.rng, self.style, self.w
        px0, py0, px1, py1 = self.populated
        blocks = []
        for i in range(len(self.xs) - 1):
            for j in range(len(self.ys) - 1):
                inner = np.array([self.xs[i] + w, self.ys[j] + w, self.xs[i + 1] - w, self.ys[j + 1] - w])
                if inner[2] < px0 or inner[0] > px1 or inner[3] < py0 or inner[1] > py1:
                    continue
                verge = float(np.round(rng.uniform(*style.verge_width), 2))
                inset = style.sidewalk_width + verge
                lot = inner + np.array([inset, inset, -inset, -inset])
                nx = max(1, int(round((lot[2] - lot[0]) / rng.uniform(18.0, 30.0))))
                ny = max(1, int(round((lot[3] - lot[1]) / rng.uniform(18.0, 30.0))))
                xe = np.linspace(lot[0], lot[2], nx + 1)
                ye = np.linspace(lot[1], lot[3], ny + 1)
                parcels = []
                for a in range(nx):
                    for b in range(ny):
                        kind = ("building", "park", "parking", "plaza", "construction")[
                            int(rng.choice(5, p=[0.56, 0.2, 0.1, 0.08, 0.06]))]
                        parcels.append({"rect": np.array([xe[a], ye[b], xe[a + 1], ye[b + 1]]), "kind": kind})
                blocks.append({"inner": inner, "verge": verge, "lot": lot, "parcels": parcels})
        self._ensure_construction_site(blocks)
        return blocks

    def _ensure_construction_site(self, blocks: list[dict]) -> None:
        """Every scene shows a construction vehicle: make the parcel nearest the route a site if none is."""
        parcels = [p for b in blocks for p in b["parcels"]]
        if not parcels or any(p["kind"] == "construction" for p in parcels):
            return
        centres = np.array([[(p["rect"][0] + p["rect"][2]) / 2, (p["rect"][1] + p["rect"][3]) / 2] for p in parcels])
        dist = np.linalg.norm(centres[:, None, :] - self.route_points[None], axis=-1).min(axis=1)
        parcels[int(np.argmin(dist))]["kind"] = "construction"

    def _ground(self, bounds: np.ndarray) -> GroundPlan:
        style, w, sw = self.style, self.w, self.style.sidewalk_width
        plan = GroundPlan(bounds, C["terrain"], style.terrain_height, MAT_TERRAIN, GRASS_COLOR)
        x0, y0, x1, y1 = bounds
        for y in self.ys:
            plan.paint(x0, y + w, x1, y + w + sw, C["sidewalk"], style.kerb_height, MAT_SIDEWALK, SIDEWALK_COLOR)
            plan.paint(x0, y - w - sw, x1, y - w, C["sidewalk"], style.kerb_height, MAT_SIDEWALK, SIDEWALK_COLOR)
        for x in self.xs:
            plan.paint(x + w, y0, x + w + sw, y1, C["sidewalk"], style.kerb_height, MAT_SIDEWALK, SIDEWALK_COLOR)
            plan.paint(x - w - sw, y0, x - w, y1, C["sidewalk"], style.kerb_height, MAT_SIDEWALK, SIDEWALK_COLOR)
        for y in self.ys:
            plan.paint(x0, y - w, x1, y + w, C["driveable_surface"], 0.0, MAT_ROAD, ROAD_COLOR)
        for x in self.xs:
            plan.paint(x - w, y0, x + w, y1, C["driveable_surface"], 0.0, MAT_ROAD, ROAD_COLOR)
        self._medians(plan)
        for block in self.blocks:
            for parcel in block["parcels"]:
                r = parcel["rect"]
                if parcel["kind"] == "parking":
                    plan.paint(r[0] + 1.0, r[1] + 1.0, r[2] - 1.0, r[3] - 1.0, C["driveable_surface"], 0.0,
                               MAT_ROAD, (0.34, 0.34, 0.35))
                elif parcel["kind"] == "plaza":
                    plan.paint(*r, C["sidewalk"], style.kerb_height, MAT_SIDEWALK, (0.70, 0.66, 0.60))
                elif parcel["kind"] == "construction":
                    plan.paint(*r, C["terrain"], 0.05, MAT_TERRAIN, DIRT_COLOR)
                elif parcel["kind"] == "park" and self.rng.random() < 0.4:
                    cx, cy = (r[0] + r[2]) / 2, (r[1] + r[3]) / 2
                    hx, hy = (r[2] - r[0]) * self.rng.uniform(0.15, 0.3), (r[3] - r[1]) * self.rng.uniform(0.15, 0.3)
                    parcel["pond"] = np.array([cx - hx, cy - hy, cx + hx, cy + hy])
                    plan.paint(*parcel["pond"], C["other_flat"], 0.02, MAT_PLAIN, WATER_COLOR)
        return plan

    def _medians(self, plan: GroundPlan) -> None:
        """Raised medians (other_flat) on some road segments, stopping short of the junctions."""
        px0, py0, px1, py1 = self.populated
        for axis, lines, cross in ((0, self.ys, self.xs), (1, self.xs, self.ys)):
            for c in lines:
                for a, b in zip(cross[:-1], cross[1:]):
                    lo, hi = a + self.w + 10.0, b - self.w - 10.0
                    inside = (px0 < (a + b) / 2 < px1) if axis == 0 else (py0 < (a + b) / 2 < py1)
                    if hi - lo < 8.0 or not inside or self.rng.random() > 0.3:
                        continue
                    rect = (lo, c - 0.5, hi, c + 0.5) if axis == 0 else (c - 0.5, lo, c + 0.5, hi)
                    plan.paint(*rect, C["other_flat"], self.style.kerb_height, MAT_PLAIN, MEDIAN_COLOR)
                    # Vehicles keep off the raised median (wide ones in the inner lane would touch it).
                    self.index.add(box_from_bounds(*rect), -0.2, self.style.kerb_height)

    # ------------------------------------------------------------------------------------------ placement
    def _in_populated(self, x: float, y: float) -> bool:
        px0, py0, px1, py1 = self.populated
        return px0 <= x <= px1 and py0 <= y <= py1

    def _static_solid(self, polygon, zlo, zhi, cls, color, material=MAT_PLAIN, check=True) -> bool:
        """Add a piece of scenery unless it would touch something already placed."""
        if check and not self.index.try_add(polygon, zlo, zhi):
            return False
        if not check:
            self.index.add(polygon, zlo, zhi)
        self.scenery.add(polygon, zlo, zhi, cls, color, material)
        return True

    def _scenery_group(self, parts: list[tuple]) -> bool:
        """Add several prisms (polygon, zlo, zhi, cls, color, material) all or nothing."""
        for poly, zlo, zhi, *_ in parts:
            if self.index.conflicts(poly, zlo, zhi):
                return False
        for poly, zlo, zhi, cls, color, material in parts:
            self.index.add(poly, zlo, zhi)
            self.scenery.add(poly, zlo, zhi, cls, color, material)
        return True

    def _agent(self, kind: str, mover: Mover, rider: bool = False, z: float | None = None,
               shape=None) -> Agent | None:
        """Place an agent if its footprint stays clear of everything over the whole drive."""
        size, parts = shape if shape is not None else agent_shape(kind, self.rng, rider)
        w, l, h = size
        if z is None:
            x, y, _ = mover.pose(0.0)[0]
            _, z = self.ground.lookup(x, y)
        poses = mover.pose(self.times if mover.speed > 0 else np.zeros(1))
        polys = np.stack([rectangle(p[0], p[1], l + CLEARANCE, w + CLEARANCE, p[2]) for p in poses])
        if self.index.conflicts(polys, z, z + h):
            return None
        if mover.speed == 0 and np.ptp(self.ground.heights_under(polys[0])) > 1e-9:
            return None  # Standing across a kerb.
        self.index.add(polys, z, z + h)
        parts.owner[:] = len(self.agents)
        agent = Agent(kind, size, mover, float(z), parts, attribute_of(kind, mover.speed > 0, rider))
        self.agents.append(agent)
        return agent

    def _parked(self, kind: str, x: float, y: float, yaw: float, rider: bool = False) -> Agent | None:
        return self._agent(kind, Mover(Path((Line(x, y, yaw, 1.0),)), 0.0, 0.0), rider)

    def _lane_line(self, axis: int, coord: float, direction: int, offset: float) -> tuple[float, float, float]:
        """A point and heading on the lane ``offset`` m right of road line ``coord`` driven in ``direction``."""
        yaw = (0.0 if direction > 0 else np.pi) if axis == 0 else (np.pi / 2 if direction > 0 else -np.pi / 2)
        if axis == 0:
            point = np.array([0.0, coord])
        else:
            point = np.array([coord, 0.0])
        point = point + _right(yaw) * offset
        return float(point[0]), float(point[1]), yaw

    def _segments(self):
        """Road segments between junctions within the populated area: (axis, coord, lo, hi) along the road."""
        px0, py0, px1, py1 = self.populated
        for axis, lines, cross in ((0, self.ys, self.xs), (1, self.xs, self.ys)):
            lo_p, hi_p = (px0, px1) if axis == 0 else (py0, py1)
            lo_c, hi_c = (py0, py1) if axis == 0 else (px0, px1)
            for c in lines:
                if not lo_c - self.w < c < hi_c + self.w:
                    continue
                for a, b in zip(cross[:-1], cross[1:]):
                    lo, hi = max(a + self.w, lo_p), min(b - self.w, hi_p)
                    if hi - lo > 10.0:
                        yield axis, float(c), float(lo), float(hi), float(a), float(b)

    def _populate(self) -> None:
        for block in self.blocks:
            for parcel in block["parcels"]:
                if parcel["kind"] == "building":
                    self._building(parcel["rect"])
        self._parked_vehicles()
        self._road_works()
        self._street_furniture()
        fill = {"park": self._parcel_park, "parking": self._parcel_parking, "plaza": self._parcel_plaza,
                "construction": self._parcel_construction}
        for block in self.blocks:
            self._verges(block)
            for parcel in block["parcels"]:
                if parcel["kind"] in fill:  # Buildings went first, so that nothing else takes their place.
                    fill[parcel["kind"]](parcel)
        self._moving_vehicles()
        self._cyclists()
        self._pedestrians()
        self._ensure_classes()

    def _building(self, rect: np.ndarray) -> None:
        rng = self.rng
        inset = rng.uniform(0.5, 3.0, size=4)
        x0, y0, x1, y1 = rect[0] + inset[0], rect[1] + inset[1], rect[2] - inset[2], rect[3] - inset[3]
        if x1 - x0 < 4 or y1 - y0 < 4:
            return
        height = float(rng.choice([rng.uniform(6.0, 12.0), rng.uniform(12.0, 30.0)]))
        color = BUILDING_COLORS[int(rng.integers(len(BUILDING_COLORS)))]
        z0 = self.style.terrain_height
        parts = [(box_from_bounds(x0, y0, x1, y1), z0, height, C["manmade"], color, MAT_BUILDING)]
        if rng.random() < 0.35 and x1 - x0 > 10 and y1 - y0 > 10:
            s = rng.uniform(2.0, 4.0)
            parts.append((box_from_bounds(x0 + s, y0 + s, x1 - s, y1 - s), height, height + rng.uniform(3.0, 9.0),
                          C["manmade"], color, MAT_BUILDING))
        self._scenery_group(parts)

    def _parked_vehicles(self) -> None:
        """Rows of parked vehicles in the outer lanes of some road segments."""
        rng = self.rng
        kinds = ("car", "truck", "trailer", "bus", "motorcycle", "bicycle", "construction_vehicle")
        weights = np.array([0.72, 0.08, 0.04, 0.03, 0.06, 0.04, 0.03])
        for axis, c, lo, hi, _, _ in self._segments():
            for direction in (1, -1):
                if rng.random() > 0.6:
                    continue
                s = lo + 12.0 + rng.uniform(0.0, 6.0)
                while s < hi - 12.0:
                    kind = kinds[int(rng.choice(len(kinds), p=weights))]
                    shape = agent_shape(kind, rng)
                    length = shape[0][1]
                    centre = s + length / 2 if direction > 0 else (lo + hi) - (s + length / 2)
                    x, y, yaw = self._lane_line(axis, c, direction, 1.5 * self.lane + rng.uniform(-0.15, 0.15))
                    if axis == 0:
                        x = centre
                    else:
                        y = centre
                    if s + length < hi - 12.0 and rng.random() < 0.8:
                        self._agent(kind, Mover(Path((Line(x, y, yaw, 1.0),)), 0.0, 0.0), shape=shape)
                    s += length + rng.uniform(0.8, 6.0)

    def _road_works(self) -> None:
        """One or two stretches of outer lane closed by barriers and cones, near the route."""
        rng = self.rng
        segments = list(self._segments())
        if not segments:
            return
        dist = [np.linalg.norm(self.route_points - self._segment_mid(s), axis=1).min() for s in segments]
        order = np.argsort(dist)[:6]
        for k in rng.permutation(order)[: int(rng.integers(1, 3))]:
            axis, c, lo, hi, _, _ = segments[k]
            direction = 1 if rng.random() < 0.5 else -1
            length = rng.uniform(10.0, 18.0)
            start = rng.uniform(lo + 6.0, max(lo + 6.0, hi - 6.0 - length))
            for along in np.arange(start, start + length, 2.3):
                x, y, yaw = self._lane_line(axis, c, direction, 1.5 * self.lane + 0.6)
                x, y = (along, y) if axis == 0 else (x, along)
                self._parked("barrier", x, y, yaw)
            for along in np.arange(start - 4.0, start + length + 4.0, 3.0):
                x, y, yaw = self._lane_line(axis, c, direction, self.lane + 0.45)
                x, y = (along, y) if axis == 0 else (x, along)
                self._parked("traffic_cone", x, y, yaw)
            if rng.random() < 0.5:
                x, y, yaw = self._lane_line(axis, c, direction, 1.5 * self.lane + 0.4)
                along = start + length + 6.0
                x, y = (along, y) if axis == 0 else (x, along)
                self._parked("debris", x, y, yaw)

    def _along(self, lo: float, hi: float, margin: float) -> float:
        """A random position in [lo + margin, hi - margin] (the middle when the interval is shorter)."""
        if hi - lo <= 2 * margin:
            return 0.5 * (lo + hi)
        return float(self.rng.uniform(lo + margin, hi - margin))

    def _segment_mid(self, segment) -> np.ndarray:
        axis, c, lo, hi = segment[:4]
        return np.array([(lo + hi) / 2, c]) if axis == 0 else np.array([c, (lo + hi) / 2])

    def _sidewalk_point(self, axis: int, c: float, side: int, along: float, offset: float) -> tuple[float, float]:
        """A point ``offset`` m from the kerb onto the sidewalk on ``side`` (+1: +y / +x side) of road ``c``."""
        across = c + side * (self.w + offset)
        return (along, across) if axis == 0 else (across, along)

    def _street_furniture(self) -> None:
        """Street lights, signs, bicycle racks along the kerb; traffic lights at some junctions."""
        rng, kerb = self.rng, self.style.kerb_height
        for axis, c, lo, hi, _, _ in self._segments():
            for side in (1, -1):
                along = lo + 6.0 + rng.uniform(0.0, 10.0)
                while along < hi - 6.0:
                    x, y = self._sidewalk_point(axis, c, side, along, 0.55)
                    if self._in_populated(x, y):
                        self._street_light(x, y, axis, side)
                    along += rng.uniform(22.0, 32.0)
                if rng.random() < 0.5:
                    x, y = self._sidewalk_point(axis, c, side, self._along(lo, hi, 8.0), 0.45)
                    self._sign(x, y)
                if rng.random() < 0.25:
                    along = self._along(lo, hi, 8.0)
                    x, y = self._sidewalk_point(axis, c, side, along, 1.0)
                    yaw = 0.0 if axis == 0 else np.pi / 2
                    if self._parked("bicycle_rack", x, y, yaw) is not None:
                        for k in range(int(rng.integers(0, 4))):
                            bx, by = self._sidewalk_point(axis, c, side, along - 0.9 + 0.6 * k, 1.85)
                            self._parked("bicycle", bx, by, yaw + np.pi / 2 * side)
        for x in self.xs:
            for y in self.ys:
                if not self._in_populated(x, y) or rng.random() > 0.5:
                    continue
                d = self.w + 0.6
                for sx, sy in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                    self._scenery_group([
                        (regular_polygon(x + sx * d, y + sy * d, 0.1, 8), kerb, 4.2, C["manmade"], METAL, MAT_PLAIN),
                        (rectangle(x + sx * d, y + sy * d, 0.35, 0.35), 4.2, 5.2, C["manmade"], (0.1, 0.1, 0.1),
                         MAT_PLAIN),
                    ])

    def _street_light(self, x: float, y: float, axis: int, side: int) -> None:
        rng, kerb = self.rng, self.style.kerb_height
        height = rng.uniform(6.5, 8.5)
        # The arm reaches over the outer lane, far above any vehicle.
        arm = np.array([0.0, -side * 1.6]) if axis == 0 else np.array([-side * 1.6, 0.0])
        cx, cy = np.array([x, y]) + arm / 2
        arm_len, arm_w = (0.2, 1.8) if axis == 0 else (1.8, 0.2)
        self._scenery_group([
            (regular_polygon(x, y, 0.12, 8), kerb, height, C["manmade"], METAL, MAT_PLAIN),
            (box_from_bounds(cx - arm_len / 2, cy - arm_w / 2, cx + arm_len / 2, cy + arm_w / 2), height - 0.25,
             height, C["manmade"], METAL, MAT_PLAIN),
        ])

    def _sign(self, x: float, y: float) -> None:
        kerb = self.style.kerb_height
        color = ((0.85, 0.1, 0.1), (0.1, 0.3, 0.75), (0.95, 0.95, 0.95))[int(self.rng.integers(3))]
        self._scenery_group([
            (regular_polygon(x, y, 0.05, 8), kerb, kerb + 2.1, C["manmade"], METAL, MAT_PLAIN),
            (rectangle(x, y, 0.65, 0.08), kerb + 2.1, kerb + 2.8, C["manmade"], color, MAT_SIGN),
        ])

    def _tree(self, x: float, y: float, z0: float, max_radius: float = 2.4) -> bool:
        rng = self.rng
        trunk_h = rng.uniform(2.2, 3.2)
        radius = rng.uniform(1.2, max(1.3, max_radius))
        crown_h = rng.uniform(2.5, 4.5)
        leaf = LEAF_COLORS[int(rng.integers(len(LEAF_COLORS)))]
        parts = [
            (regular_polygon(x, y, rng.uniform(0.15, 0.28), 8), z0, z0 + trunk_h, C["vegetation"], BARK, MAT_PLAIN),
            (regular_polygon(x, y, radius, 12, rng.uniform(0, 0.5)), z0 + trunk_h, z0 + trunk_h + crown_h,
             C["vegetation"], leaf, MAT_VEGETATION),
        ]
        if rng.random() < 0.6:
            parts.append((regular_polygon(x, y, 0.6 * radius, 12), z0 + trunk_h + crown_h,
                          z0 + trunk_h + crown_h + rng.uniform(0.8, 1.8), C["vegetation"], leaf, MAT_VEGETATION))
        return self._scenery_group(parts)

    def _verges(self, block: dict) -> None:
        """Trees, hedges and bins on the terrain strip between a block's sidewalk and its parcels."""
        rng, z0 = self.rng, self.style.terrain_height
        inner, verge = block["inner"], block["verge"]
        sw = self.style.sidewalk_width
        x0, y0, x1, y1 = inner + np.array([sw, sw, -sw, -sw])
        sides = ((0, y0 + verge / 2, x0, x1), (0, y1 - verge / 2, x0, x1), (1, x0 + verge / 2, y0, y1),
                 (1, x1 - verge / 2, y0, y1))
        for axis, across, lo, hi in sides:
            def at(along):
                return (along, across) if axis == 0 else (across, along)

            if rng.random() < 0.7:
                along = lo + rng.uniform(2.0, 8.0)
                while along < hi - 2.0:
                    x, y = at(along)
                    if self._in_populated(x, y):
                        self._tree(x, y, z0, max_radius=verge / 2 + sw - 0.4)
                    along += rng.uniform(7.0, 14.0)
            elif rng.random() < 0.6 and verge > 1.2:
                along = lo + rng.uniform(1.0, 6.0)
                while along < hi - 4.0:
                    length = min(rng.uniform(3.0, 10.0), hi - 1.0 - along)
                    x, y = at(along + length / 2)
                    if self._in_populated(x, y) and length > 1.0:
                        poly = rectangle(x, y, length, min(1.0, verge - 0.3), 0.0 if axis == 0 else np.pi / 2)
                        self._static_solid(poly, z0, z0 + rng.uniform(0.8, 1.5), C["vegetation"],
                                           LEAF_COLORS[int(rng.integers(len(LEAF_COLORS)))], MAT_VEGETATION)
                    along += length + rng.uniform(1.0, 5.0)
            if rng.random() < 0.35:
                x, y = at(self._along(lo, hi, 3.0))
                if self._in_populated(x, y):
                    self._parked("bin", x, y, 0.0 if axis == 0 else np.pi / 2)

    def _random_point(self, rect: np.ndarray, margin: float) -> tuple[float, float]:
        return (float(self.rng.uniform(rect[0] + margin, rect[2] - margin)),
                float(self.rng.uniform(rect[1] + margin, rect[3] - margin)))

    def _parcel_park(self, parcel: dict) -> None:
        rng, r, z0 = self.rng, parcel["rect"], self.style.terrain_height
        if "pond" in parcel:
            self.index.add(box_from_bounds(*parcel["pond"]), -1.0, 10.0)  # Keep trees out of the water.
        for _ in range(int(rng.integers(3, 9))):
            x, y = self._random_point(r, 2.5)
            if self._in_populated(x, y):
                self._tree(x, y, z0)
        if rng.random() < 0.5:
            for k in range(int(rng.integers(1, 4))):
                x, y = self._random_point(r, 3.0)
                self._static_solid(rectangle(x, y, 1.8, 0.6, rng.uniform(0, np.pi)), z0, z0 + 0.5, C["manmade"],
                                   (0.45, 0.32, 0.20))
        for _ in range(int(rng.integers(0, 3))):
            x, y = self._random_point(r, 2.0)
            self._parked("pedestrian", x, y, rng.uniform(-np.pi, np.pi))

    def _parcel_parking(self, parcel: dict) -> None:
        rng, r = self.rng, parcel["rect"]
        along_x = (r[2] - r[0]) >= (r[3] - r[1])
        for row in np.arange((r[1] if along_x else r[0]) + 4.0, (r[3] if along_x else r[2]) - 3.0, 6.0):
            for slot in np.arange((r[0] if along_x else r[1]) + 2.5, (r[2] if along_x else r[3]) - 2.0, 2.8):
                if rng.random() < 0.4:
                    continue
                x, y = (slot, row) if along_x else (row, slot)
                yaw = (np.pi / 2 if along_x else 0.0) + (np.pi if rng.random() < 0.5 else 0.0)
                kind = "car" if rng.random() < 0.9 else "truck"
                self._parked(kind, x, y, yaw)

    def _parcel_plaza(self, parcel: dict) -> None:
        rng, r, kerb = self.rng, parcel["rect"], self.style.kerb_height
        cx, cy = (r[0] + r[2]) / 2, (r[1] + r[3]) / 2
        if rng.random() < 0.6:
            self._scenery_group([
                (regular_polygon(cx, cy, 2.5, 12), kerb, kerb + 0.5, C["manmade"], (0.7, 0.7, 0.68), MAT_PLAIN),
                (regular_polygon(cx, cy, 0.4, 8), kerb + 0.5, kerb + 2.0, C["manmade"], (0.6, 0.6, 0.6), MAT_PLAIN),
            ])
        for _ in range(int(rng.integers(2, 6))):
            x, y = self._random_point(r, 1.5)
            self._parked("pedestrian", x, y, rng.uniform(-np.pi, np.pi))
        for _ in range(int(rng.integers(0, 3))):
            x, y = self._random_point(r, 1.5)
            self._parked("bin", x, y, rng.uniform(-np.pi, np.pi))
        for _ in range(int(rng.integers(0, 3))):
            x, y = self._random_point(r, 2.0)
            self._tree(x, y, kerb, max_radius=1.8)

    def _parcel_construction(self, parcel: dict) -> None:
        rng, r = self.rng, parcel["rect"]
        for _ in range(4):
            x, y = self._random_point(r, 4.0)
            if self._parked("construction_vehicle", x, y, rng.uniform(-np.pi, np.pi)) is not None:
                break
        for kind in ("truck", "trailer", "construction_vehicle"):
            if rng.random() < 0.5:
                x, y = self._random_point(r, 5.0)
                self._parked(kind, x, y, float(rng.choice([0.0, np.pi / 2, np.pi, -np.pi / 2])))
        # Barriers along the two parcel edges nearest the road, cones scattered inside.
        for along in np.arange(r[0] + 1.5, r[2] - 1.0, 2.4):
            self._parked("barrier", along, r[1] + 0.6, 0.0)
            self._parked("barrier", along, r[3] - 0.6, 0.0)
        for _ in range(int(rng.integers(3, 8))):
            x, y = self._random_point(r, 1.5)
            self._parked("traffic_cone", x, y, 0.0)
        for _ in range(int(rng.integers(0, 3))):
            x, y = self._random_point(r, 1.5)
            self._parked("pedestrian", x, y, rng.uniform(-np.pi, np.pi))

    def _moving_vehicles(self) -> None:
        """Traffic in the inner lanes, in both directions, straight through the junctions."""
        rng = self.rng
        px0, py0, px1, py1 = self.populated
        kinds = ("car", "truck", "bus", "motorcycle", "construction_vehicle", "truck+trailer")
        weights = np.array([0.66, 0.09, 0.09, 0.08, 0.03, 0.05])
        speeds = {"car": (5.0, 12.0), "truck": (5.0, 9.0), "bus": (5.0, 9.0), "motorcycle": (7.0, 13.0),
                  "construction_vehicle": (2.0, 5.0), "truck+trailer": (5.0, 8.0)}
        roads = [(0, y) for y in self.ys if py0 < y < py1] + [(1, x) for x in self.xs if px0 < x < px1]
        if not roads:
            return
        for _ in range(60):
            axis, c = roads[int(rng.integers(len(roads)))]
            direction = 1 if rng.random() < 0.5 else -1
            kind = kinds[int(rng.choice(len(kinds), p=weights))]
            x, y, yaw = self._lane_line(axis, c, direction, 0.5 * self.lane)
            span = (px0, px1) if axis == 0 else (py0, py1)
            start = span[0] - 40.0 if direction > 0 else span[1] + 40.0
            x, y = (start, y) if axis == 0 else (x, start)
            path = Path((Line(x, y, yaw, span[1] - span[0] + 80.0),))
            speed = rng.uniform(*speeds[kind])
            s0 = rng.uniform(0.0, path.length)
            if kind == "truck+trailer":
                self._truck_with_trailer(path, s0, speed)
            else:
                self._agent(kind, Mover(path, s0, speed), rider=kind == "motorcycle")

    def _truck_with_trailer(self, path: Path, s0: float, speed: float) -> None:
        """A truck towing a trailer: two agents on the same path, accepted together or not at all."""
        truck = agent_shape("truck", self.rng)
        trailer = agent_shape("trailer", self.rng)
        gap = truck[0][1] / 2 + 0.6 + trailer[0][1] / 2
        movers = (Mover(path, s0, speed), Mover(path, s0 - gap, speed))
        for mover, shape in zip(movers, (truck, trailer)):
            poses = mover.pose(self.times)
            w, l, h = shape[0]
            polys = np.stack([rectangle(p[0], p[1], l + CLEARANCE, w + CLEARANCE, p[2]) for p in poses])
            if self.index.conflicts(polys, 0.0, h):
                return
        # The pair is clear of everything else; the trailer hugs the truck, so add without checking them mutually.
        for mover, shape, kind in zip(movers, (truck, trailer), ("truck", "trailer")):
            w, l, h = shape[0]
            poses = mover.pose(self.times)
            self.index.add(np.stack([rectangle(p[0], p[1], l, w, p[2]) for p in poses]), 0.0, h)
            shape[1].owner[:] = len(self.agents)
            self.agents.append(Agent(kind, shape[0], mover, 0.0, shape[1], attribute_of(kind, True, False)))

    def _cyclists(self) -> None:
        rng = self.rng
        segments = list(self._segments())
        for _ in range(12 if segments else 0):
            axis, c, lo, hi, _, _ = segments[int(rng.integers(len(segments)))]
            direction = 1 if rng.random() < 0.5 else -1
            x, y, yaw = self._lane_line(axis, c, direction, 1.5 * self.lane + rng.uniform(-0.3, 0.5))
            start = lo - 30.0 if direction > 0 else hi + 30.0
            x, y = (start, y) if axis == 0 else (x, start)
            path = Path((Line(x, y, yaw, hi - lo + 60.0),))
            self._agent("bicycle", Mover(path, rng.uniform(0.0, path.length), rng.uniform(3.0, 6.0)), rider=True)

    def _pedestrians(self) -> None:
        """Pedestrians walking around blocks on the sidewalks, and a few standing still."""
        rng, kerb = self.rng, self.style.kerb_height
        for block in self.blocks:
            inner = block["inner"]
            for _ in range(int(rng.integers(2, 6))):
                d = rng.uniform(1.3, 2.8)
                # A loop d metres in from the kerb, on the block's sidewalk ring.
                corners = np.array([[inner[0] + d, inner[1] + d], [inner[2] - d, inner[1] + d],
                                    [inner[2] - d, inner[3] - d], [inner[0] + d, inner[3] - d]])
                if rng.random() < 0.5:
                    corners = corners[::-1]
                path = polyline_loop(corners)
                mover = Mover(path, rng.uniform(0.0, path.length), rng.uniform(0.9, 1.6))
                x, y, _ = mover.pose(0.0)[0]
                if self._in_populated(x, y):
                    self._agent("pedestrian", mover, z=kerb)
            for _ in range(int(rng.integers(0, 3))):
                side = int(rng.integers(4))
                d = rng.uniform(1.2, 3.0)
                t = rng.uniform(0.2, 0.8)
                x = inner[0] + d if side == 0 else inner[2] - d if side == 1 else inner[0] + t * (inner[2] - inner[0])
                y = inner[1] + d if side == 2 else inner[3] - d if side == 3 else inner[1] + t * (inner[3] - inner[1])
                if self._in_populated(x, y):
                    self._parked("pedestrian", x, y, rng.uniform(-np.pi, np.pi))

    def _ensure_classes(self) -> None:
        """Every vehicle class, pedestrians, barriers, cones and 'others' near the route, placed in the outer
        lanes (or on the sidewalk) closest to it when chance left one out."""
        rng = self.rng
        near = [a for a in self.agents
                if np.linalg.norm(self.route_points - a.mover.pose(0.0)[0, :2], axis=1).min() < 45.0]
        present = {a.kind for a in near}
        wanted = ("car", "truck", "bus", "trailer", "construction_vehicle", "motorcycle", "bicycle", "pedestrian",
                  "barrier", "traffic_cone", "bin")
        segments = sorted(self._segments(),
                          key=lambda s: np.linalg.norm(self.route_points - self._segment_mid(s), axis=1).min())[:6]
        for kind in wanted:
            if kind in present or not segments:
                continue
            for _ in range(30):
                axis, c, lo, hi, _, _ = segments[int(rng.integers(len(segments)))]
                direction = 1 if rng.random() < 0.5 else -1
                along = self._along(lo, hi, 6.0)
                if kind in ("pedestrian", "bin"):
                    x, y = self._sidewalk_point(axis, c, direction, along, rng.uniform(1.2, 2.8))
                    yaw = rng.uniform(-np.pi, np.pi)
                else:
                    x, y, yaw = self._lane_line(axis, c, direction, 1.5 * self.lane)
                    x, y = (along, y) if axis == 0 else (x, along)
                if self._parked(kind, x, y, yaw, rider=False) is not None:
                    break

    # ------------------------------------------------------------------------------------------- output
    def _world(self) -> World:
        rng = self.rng
        elevation, azimuth = np.radians(rng.uniform(30.0, 60.0)), rng.uniform(-np.pi, np.pi)
        sun = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
        # Global frame: the local frame turned by a multiple of 90 degrees and moved so that the whole ground has
        # positive coordinates (nuScenes map images start at the origin), a few hundred metres out.
        quarter = int(rng.integers(4))
        rot = np.round(yaw_rotation(quarter * np.pi / 2)) + 0.0  # Exact zeros and ones (no -0.0).
        corners = np.array([[b[0], b[1], 0.0] for b in (self.ground.bounds[[0, 1]], self.ground.bounds[[2, 3]],
                                                        self.ground.bounds[[0, 3]], self.ground.bounds[[2, 1]])])
        turned = corners @ rot.T
        offset = -turned.min(axis=0) + np.array([rng.uniform(20.0, 120.0), rng.uniform(20.0, 120.0), 0.0])
        offset = np.round(offset, 3)
        offset[2] = 0.0
        parts = Solids.concat([a.parts for a in self.agents])
        return World(
            scenery=self.scenery.build(),
            agents=self.agents,
            agent_parts=parts,
            ego=self.ego,
            roads=RoadGrid(self.xs, self.ys, self.w, self.lane),
            ground=self.ground,
            sun=sun,
            global_T_local=make_transform(rot, offset),
            duration=self.duration,
        )


def build_world(seed: int, scene_index: int, duration: float, style: WorldStyle = WorldStyle()) -> World:
    """The world of scene ``scene_index`` of the dataset with ``seed``; ``duration`` = seconds of driving."""
    rng = np.random.default_rng([int(seed), int(scene_index), 20250101])
    return _Generator(rng, style, float(duration)).run()
