"""Unit meshes (fitting [-0.5, 0.5]^3) for the three shapes and the ground plane.

Each mesh is a float32 array (N, 6) of non-indexed triangle vertices: position, normal.
The renderer scales them by world.dimensions, so the sizes are exactly the spec's.
"""
from __future__ import annotations

import numpy as np


def _triangles(positions: np.ndarray, normals: np.ndarray, faces: np.ndarray) -> np.ndarray:
    return np.concatenate([positions[faces.reshape(-1)], normals[faces.reshape(-1)]], axis=1).astype("f4")


def sphere(slices: int = 40, stacks: int = 20) -> np.ndarray:
    theta = np.linspace(0.0, np.pi, stacks + 1)  # from the top
    phi = np.linspace(0.0, 2.0 * np.pi, slices + 1)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    unit = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], axis=-1).reshape(-1, 3)
    faces = []
    for i in range(stacks):
        for j in range(slices):
            a, b = i * (slices + 1) + j, (i + 1) * (slices + 1) + j
            faces += [(a, b, b + 1), (a, b + 1, a + 1)]
    return _triangles(0.5 * unit, unit, np.array(faces))


def cube(bevel: float = 0.06, bevel_steps: int = 2) -> np.ndarray:
    """A cube with rounded edges of radius `bevel` (CLEVR's cubes are bevelled; the
    bevels catch highlights, which is much of what makes a metal cube read as metal)."""
    h = 0.5 - bevel
    arc = [h + bevel * k / bevel_steps for k in range(bevel_steps + 1)]
    coords = np.array(sorted({-c for c in arc} | set(arc)))
    out = []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            u_axis, v_axis = (axis + 1) % 3, (axis + 2) % 3
            grid = np.zeros((len(coords), len(coords), 3))
            grid[..., axis] = 0.5 * sign
            grid[..., u_axis], grid[..., v_axis] = np.meshgrid(coords, coords, indexing="ij")
            core = np.clip(grid, -h, h)
            offset = grid - core
            normal = offset / np.linalg.norm(offset, axis=-1, keepdims=True)
            surface = core + bevel * normal
            for i in range(len(coords) - 1):
                for j in range(len(coords) - 1):
                    quad = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)]
                    if sign < 0:
                        quad = quad[::-1]
                    for k in (0, 1, 2, 0, 2, 3):
                        a, b = quad[k]
                        out.append(np.concatenate([surface[a, b], normal[a, b]]))
    return np.array(out, dtype="f4")


def cylinder(slices: int = 48) -> np.ndarray:
    phi = np.linspace(0.0, 2.0 * np.pi, slices + 1)
    ring = np.stack([np.cos(phi), np.sin(phi), np.zeros_like(phi)], axis=1)
    out = []
    for j in range(slices):
        n0, n1 = ring[j], ring[j + 1]
        b0, b1 = 0.5 * n0 + [0, 0, -0.5], 0.5 * n1 + [0, 0, -0.5]
        t0, t1 = 0.5 * n0 + [0, 0, 0.5], 0.5 * n1 + [0, 0, 0.5]
        out += [np.r_[b0, n0], np.r_[b1, n1], np.r_[t1, n1], np.r_[b0, n0], np.r_[t1, n1], np.r_[t0, n0]]
        up, down = np.array([0.0, 0, 1]), np.array([0.0, 0, -1])
        out += [np.r_[0, 0, 0.5, up], np.r_[t0, up], np.r_[t1, up]]
        out += [np.r_[0, 0, -0.5, down], np.r_[b1, down], np.r_[b0, down]]
    return np.array(out, dtype="f4")


def ground(half_extent: float) -> np.ndarray:
    """A square on z = 0 (already in metres, not unit sized)."""
    h = half_extent
    corners = np.array([[-h, -h, 0], [h, -h, 0], [h, h, 0], [-h, h, 0]], dtype=float)
    up = np.tile([0.0, 0.0, 1.0], (4, 1))
    return _triangles(corners, up, np.array([(0, 1, 2), (0, 2, 3)]))


def unit_meshes(segments: int) -> dict[str, np.ndarray]:
    """The three shapes, curved ones with `segments` around their axis."""
    return {"sphere": sphere(segments, max(8, segments // 2)), "cube": cube(), "cylinder": cylinder(segments)}
