"""Unit meshes (fitting [-0.5, 0.5]^3) for the three shapes and the ground plane.

Each mesh is indexed (vertices (N, 6): position, normal; triangles (M, 3)): llvmpipe
shades each vertex once per draw, so indexing cuts its vertex work several times.
The renderer scales them by world.dimensions, so the sizes are exactly the spec's.
"""
from __future__ import annotations

import numpy as np


Mesh = tuple  # (vertices (N, 6) float32: position, normal; indices (M, 3) int32)


def _indexed(vertices: np.ndarray, faces) -> Mesh:
    faces = np.asarray(faces, dtype="i4").reshape(-1, 3)
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    return np.ascontiguousarray(vertices, dtype="f4"), np.ascontiguousarray(faces[keep])


def _grid_faces(rows: int, cols: int, flip: bool = False) -> np.ndarray:
    """Two triangles per cell of a (rows+1) x (cols+1) vertex grid, row-major."""
    i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    a = (i * (cols + 1) + j).ravel()
    b, c, d = a + cols + 1, a + cols + 2, a + 1
    faces = np.stack([np.stack([a, b, c], 1), np.stack([a, c, d], 1)], 1).reshape(-1, 3)
    return faces[:, ::-1] if flip else faces


def sphere(slices: int = 24, stacks: int = 12) -> Mesh:
    theta = np.linspace(0.0, np.pi, stacks + 1)  # from the top
    phi = np.linspace(0.0, 2.0 * np.pi, slices + 1)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    unit = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], axis=-1).reshape(-1, 3)
    faces = _grid_faces(stacks, slices)
    # the poles' rows collapse to a point: drop the triangles that became degenerate there
    collapsed = np.all(np.isclose(unit[faces[:, 0]], unit[faces[:, 1]]), 1) | np.all(np.isclose(unit[faces[:, 1]], unit[faces[:, 2]]), 1) | np.all(np.isclose(unit[faces[:, 0]], unit[faces[:, 2]]), 1)
    return _indexed(np.concatenate([0.5 * unit, unit], axis=1), faces[~collapsed])


def cube(bevel: float = 0.06, bevel_steps: int = 2) -> Mesh:
    """A cube with rounded edges of radius `bevel` (CLEVR's cubes are bevelled; the
    bevels catch highlights, which is much of what makes a metal cube read as metal)."""
    h = 0.5 - bevel
    arc = [h + bevel * k / bevel_steps for k in range(bevel_steps + 1)]
    coords = np.array(sorted({-c for c in arc} | set(arc)))
    n = len(coords)
    vertices, faces = [], []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            u_axis, v_axis = (axis + 1) % 3, (axis + 2) % 3
            grid = np.zeros((n, n, 3))
            grid[..., axis] = 0.5 * sign
            grid[..., u_axis], grid[..., v_axis] = np.meshgrid(coords, coords, indexing="ij")
            core = np.clip(grid, -h, h)
            offset = grid - core
            normal = offset / np.linalg.norm(offset, axis=-1, keepdims=True)
            surface = core + bevel * normal
            faces.append(_grid_faces(n - 1, n - 1, flip=sign < 0) + len(vertices) * n * n)
            vertices.append(np.concatenate([surface, normal], axis=-1).reshape(-1, 6))
    return _indexed(np.concatenate(vertices), np.concatenate(faces))


def cylinder(slices: int = 24) -> Mesh:
    phi = np.linspace(0.0, 2.0 * np.pi, slices + 1)
    ring = np.stack([np.cos(phi), np.sin(phi), np.zeros_like(phi)], axis=1)
    up = np.tile([0.0, 0.0, 1.0], (slices + 1, 1))
    zb, zt = np.array([0.0, 0.0, -0.5]), np.array([0.0, 0.0, 0.5])
    side = np.concatenate([np.c_[0.5 * ring + zb, ring], np.c_[0.5 * ring + zt, ring]])  # rows: bottom, top
    top = np.concatenate([[np.r_[zt, 0, 0, 1]], np.c_[0.5 * ring + zt, up]])
    bottom = np.concatenate([[np.r_[zb, 0, 0, -1]], np.c_[0.5 * ring + zb, -up]])
    side_faces = _grid_faces(1, slices, flip=True)
    k = np.arange(slices)
    n_side, n_cap = len(side), len(top)
    top_faces = np.stack([np.zeros_like(k), k + 1, k + 2], 1) + n_side
    bottom_faces = np.stack([np.zeros_like(k), k + 2, k + 1], 1) + n_side + n_cap
    vertices = np.concatenate([side, top, bottom])
    return _indexed(vertices, np.concatenate([side_faces, top_faces, bottom_faces]))


def ground(half_extent: float) -> Mesh:
    """A square on z = 0 (already in metres, not unit sized)."""
    h = half_extent
    corners = np.array([[-h, -h, 0, 0, 0, 1], [h, -h, 0, 0, 0, 1], [h, h, 0, 0, 0, 1], [-h, h, 0, 0, 0, 1]], dtype=float)
    return _indexed(corners, [(0, 1, 2), (0, 2, 3)])


def unit_meshes(segments: int) -> dict[str, Mesh]:
    """The three shapes, curved ones with `segments` around their axis."""
    return {"sphere": sphere(segments, max(6, segments // 2)), "cube": cube(), "cylinder": cylinder(segments)}
