"""Paths made of straight lines and circular arcs, parametrised by arc length, and things that move along them.

A pose is (x, y, yaw) in the world's local frame (metres, radians). Before its start and after its end an open
path continues straight along its end headings; a closed path (a loop around a block) wraps around.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Line:
    x: float
    y: float
    yaw: float
    length: float

    def end(self) -> tuple[float, float, float]:
        return (self.x + self.length * np.cos(self.yaw), self.y + self.length * np.sin(self.yaw), self.yaw)

    def pose(self, u: np.ndarray) -> np.ndarray:
        return np.stack([self.x + u * np.cos(self.yaw), self.y + u * np.sin(self.yaw),
                         np.full_like(u, self.yaw)], axis=-1)


@dataclass(frozen=True)
class Arc:
    """A circular arc starting at (x, y) with heading ``yaw``, turning left (turn = +1) or right (-1)."""

    x: float
    y: float
    yaw: float
    radius: float
    turn: int
    angle: float  # swept angle, radians > 0

    @property
    def length(self) -> float:
        return self.radius * self.angle

    def pose(self, u: np.ndarray) -> np.ndarray:
        # Centre sits on the turning side of the start point.
        cx = self.x - self.turn * self.radius * np.sin(self.yaw)
        cy = self.y + self.turn * self.radius * np.cos(self.yaw)
        phi = u / self.radius
        yaw = self.yaw + self.turn * phi
        return np.stack([cx + self.turn * self.radius * np.sin(yaw), cy - self.turn * self.radius * np.cos(yaw),
                         yaw], axis=-1)

    def end(self) -> tuple[float, float, float]:
        x, y, yaw = self.pose(np.array([self.length]))[0]
        return float(x), float(y), float(yaw)


@dataclass(frozen=True)
class Path:
    """Consecutive :class:`Line` / :class:`Arc` pieces; ``closed`` paths wrap around."""

    pieces: tuple
    closed: bool = False

    @property
    def length(self) -> float:
        return float(sum(p.length for p in self.pieces))

    def pose(self, s) -> np.ndarray:
        """Poses (N, 3) [x, y, yaw] at arc lengths ``s`` (N,)."""
        s = np.atleast_1d(np.asarray(s, dtype=np.float64))
        total = self.length
        if self.closed:
            s = np.mod(s, total)
        starts = np.cumsum([0.0] + [p.length for p in self.pieces])
        piece = np.clip(np.searchsorted(starts, s, side="right") - 1, 0, len(self.pieces) - 1)
        out = np.empty((len(s), 3))
        for i, p in enumerate(self.pieces):
            sel = piece == i
            if not sel.any():
                continue
            u = s[sel] - starts[i]
            if isinstance(p, Arc) and not self.closed:
                # Beyond an arc at either end of an open path: continue straight along the end heading.
                before, after = u < 0, u > p.length
                pose = p.pose(np.clip(u, 0.0, p.length))
                for mask, at in ((before, 0.0), (after, p.length)):
                    if mask.any():
                        x, y, yaw = p.pose(np.array([at]))[0]
                        extra = (u[mask] - at)
                        pose[mask] = np.stack([x + extra * np.cos(yaw), y + extra * np.sin(yaw),
                                               np.full_like(extra, yaw)], axis=-1)
                out[sel] = pose
            else:
                out[sel] = p.pose(u)
        return out


def polyline_loop(corners: np.ndarray) -> Path:
    """A closed path through (N, 2) corners (straight pieces, sharp corners)."""
    pieces = []
    for a, b in zip(corners, np.roll(corners, -1, axis=0)):
        d = b - a
        pieces.append(Line(float(a[0]), float(a[1]), float(np.arctan2(d[1], d[0])), float(np.hypot(*d))))
    return Path(tuple(pieces), closed=True)


@dataclass(frozen=True)
class Mover:
    """Something that travels along ``path`` at constant ``speed``: arc length ``s0 + speed * t`` at time t (s)."""

    path: Path
    s0: float
    speed: float

    def pose(self, t) -> np.ndarray:
        """(N, 3) [x, y, yaw] at times t (N,) in seconds."""
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        return self.path.pose(self.s0 + self.speed * t)


@dataclass
class RouteBuilder:
    """Builds an open path piece by piece, starting at a pose."""

    x: float
    y: float
    yaw: float
    pieces: list = field(default_factory=list)

    def straight(self, length: float) -> None:
        if length > 1e-9:
            piece = Line(self.x, self.y, self.yaw, float(length))
            self.pieces.append(piece)
            self.x, self.y, self.yaw = piece.end()

    def turn(self, radius: float, turn: int, angle: float = np.pi / 2) -> None:
        piece = Arc(self.x, self.y, self.yaw, float(radius), int(turn), float(angle))
        self.pieces.append(piece)
        x, y, yaw = piece.end()
        # Snap the heading to the exact angle so later straight pieces stay on their lane.
        self.x, self.y, self.yaw = x, y, self.yaw + turn * angle

    def path(self) -> Path:
        return Path(tuple(self.pieces))
