# Copyright 2026 the cloud-crystal developers. MIT licence.
"""A crystal as a binary glTF 2.0 file (`.glb`): one sphere per site, coloured by element, and the cell's edges.

Written with numpy alone, for viewers that take a model file (Gradio's `gr.Model3D`, any glTF viewer): no web
viewer code, no CDN. The glTF 2.0 specification (Khronos) fixes the layout: a 12-byte header, a JSON chunk and a
binary chunk, both padded to 4 bytes; lengths in metres by convention, here in Å (the viewer fits the camera).

Colours are the Jmol scheme that pymatgen ships (`pymatgen/vis/ElementColorSchemes.yaml`); a disordered site is
drawn in the occupancy-weighted mean of its elements' colours, with a radius from its majority element.
Sphere radius: 0.35 × the element's atomic radius (pymatgen `Element.atomic_radius`, Å; 0.5 Å when unknown).

Cost: O(n_sites) vertices (92 per sphere), a few hundred kB for the 500-site limit of the app.
"""

from __future__ import annotations

import json
import struct
from functools import cache
from pathlib import Path

import numpy as np

#: Vertices of a sphere: (rings + 1) × (segments + 1).
_SPHERE_RINGS, _SPHERE_SEGMENTS = 6, 12
_EDGE_RADIUS = 0.06  # Å
_EDGE_SIDES = 8
_EDGE_COLOUR = (0.35, 0.35, 0.35)
_RADIUS_SCALE = 0.35
_DEFAULT_RADIUS = 0.5
_FALLBACK_COLOUR = (0.8, 0.4, 0.8)

_GLB_MAGIC, _GLB_VERSION = 0x46546C67, 2  # "glTF"
_CHUNK_JSON, _CHUNK_BIN = 0x4E4F534A, 0x004E4942  # "JSON", "BIN\0"
_FLOAT, _UNSIGNED_INT = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_TRIANGLES = 4


@cache
def element_colours() -> dict[str, tuple[float, float, float]]:
    """Jmol colours (RGB in 0..1) by element symbol, from the scheme file that pymatgen ships."""
    import pymatgen.vis
    import yaml

    path = Path(pymatgen.vis.__file__).parent / "ElementColorSchemes.yaml"
    scheme = yaml.safe_load(path.read_text())["Jmol"]
    return {symbol: tuple(channel / 255 for channel in rgb) for symbol, rgb in scheme.items()}


def _element_radius(symbol: str) -> float:
    from pymatgen.core import Element

    radius = Element(symbol).atomic_radius if Element.is_valid_symbol(symbol) else None
    return _RADIUS_SCALE * float(radius) if radius else _DEFAULT_RADIUS


def _unit_sphere() -> tuple[np.ndarray, np.ndarray]:
    """UV sphere of radius 1: `(vertices (V, 3) float32, triangles (T, 3) uint32)`; normals equal the vertices."""
    theta = np.linspace(0.0, np.pi, _SPHERE_RINGS + 1)
    phi = np.linspace(0.0, 2 * np.pi, _SPHERE_SEGMENTS + 1)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    vertices = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], axis=-1).reshape(-1, 3)
    row = _SPHERE_SEGMENTS + 1
    quads = [
        (r * row + s, (r + 1) * row + s, (r + 1) * row + s + 1, r * row + s + 1)
        for r in range(_SPHERE_RINGS)
        for s in range(_SPHERE_SEGMENTS)
    ]
    triangles = [(a, b, c) for a, b, c, _ in quads] + [(a, c, d) for a, _, c, d in quads]
    return vertices.astype(np.float32), np.asarray(triangles, dtype=np.uint32)


def _cylinder(start: np.ndarray, end: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An open cylinder from `start` to `end` (Å): `(vertices, normals, triangles)`."""
    axis = end - start
    direction = axis / np.linalg.norm(axis)
    helper = np.array([1.0, 0.0, 0.0]) if abs(direction[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(direction, helper)
    u /= np.linalg.norm(u)
    v = np.cross(direction, u)
    angles = np.linspace(0.0, 2 * np.pi, _EDGE_SIDES, endpoint=False)
    ring = np.cos(angles)[:, None] * u + np.sin(angles)[:, None] * v  # (sides, 3) unit normals
    vertices = np.concatenate([start + radius * ring, end + radius * ring])
    normals = np.concatenate([ring, ring])
    n = _EDGE_SIDES
    triangles = []
    for i in range(n):
        j = (i + 1) % n
        triangles += [(i, j, n + j), (i, n + j, n + i)]
    return vertices, normals, np.asarray(triangles, dtype=np.uint32)


def _site_look(site) -> tuple[tuple[float, float, float], float, str]:
    """Colour, radius and label of a (possibly disordered) site."""
    colours = element_colours()
    species = {getattr(sp, "symbol", str(sp)): float(occ) for sp, occ in site.species.items()}
    total = sum(species.values()) or 1.0
    colour = np.zeros(3)
    for symbol, occupancy in species.items():
        colour += occupancy / total * np.asarray(colours.get(symbol, _FALLBACK_COLOUR))
    majority = max(species, key=species.get)
    label = majority if len(species) == 1 and total > 0.999 else ",".join(sorted(species))
    return tuple(float(c) for c in colour), _element_radius(majority), label


def cell_edges(lattice_matrix: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 12 edges of the cell spanned by the rows of `lattice_matrix` (Å), as `(start, end)` Cartesian pairs."""
    corners = {
        (i, j, k): np.array([i, j, k], dtype=float) @ lattice_matrix
        for i in (0, 1)
        for j in (0, 1)
        for k in (0, 1)
    }
    edges = []
    for (i, j, k), start in corners.items():
        for axis in range(3):
            index = [i, j, k]
            if index[axis] == 0:
                index[axis] = 1
                edges.append((start, corners[tuple(index)]))
    return edges


def structure_to_glb(structure, path: str | Path) -> dict:
    """Write `structure` (a pymatgen `Structure`) as a binary glTF file at `path`.

    One mesh per distinct site look (colour and radius), holding a sphere for every such site at its Cartesian
    position (sites wrapped into the cell), and one mesh for the 12 cell edges; the scene is centred on the cell's
    centre.

    Returns:
        `dict`: `{"meshes": [{"name", "colour", "sites"}], "edges": 12, "bytes": file size}`, a summary for tests
        and the page.

    Raises:
        ValueError: the structure has no sites.
    """
    if len(structure) == 0:
        raise ValueError("a structure without sites has nothing to draw")
    lattice = np.asarray(structure.lattice.matrix, dtype=float)
    centre = 0.5 * lattice.sum(axis=0)
    sphere_vertices, sphere_triangles = _unit_sphere()
    groups: dict[tuple, list[np.ndarray]] = {}
    names: dict[tuple, str] = {}
    for site in structure:
        colour, radius, label = _site_look(site)
        key = (colour, radius)
        frac = np.mod(site.frac_coords, 1.0)
        groups.setdefault(key, []).append(frac @ lattice - centre)
        names.setdefault(key, label)

    meshes = []  # (name, colour, vertices, normals, triangles)
    for (colour, radius), positions in groups.items():
        count = len(positions)
        offsets = np.repeat(np.asarray(positions), len(sphere_vertices), axis=0)
        vertices = np.tile(sphere_vertices, (count, 1)) * radius + offsets
        normals = np.tile(sphere_vertices, (count, 1))
        triangles = np.concatenate([sphere_triangles + i * len(sphere_vertices) for i in range(count)])
        meshes.append((names[(colour, radius)], colour, vertices, normals, triangles, count))
    edge_parts = [_cylinder(a - centre, b - centre, _EDGE_RADIUS) for a, b in cell_edges(lattice)]
    offsets = np.cumsum([0] + [len(part[0]) for part in edge_parts[:-1]])
    meshes.append(
        (
            "cell",
            _EDGE_COLOUR,
            np.concatenate([part[0] for part in edge_parts]),
            np.concatenate([part[1] for part in edge_parts]),
            np.concatenate([part[2] + offset for part, offset in zip(edge_parts, offsets, strict=True)]),
            0,
        )
    )
    data = _glb_bytes(meshes)
    Path(path).write_bytes(data)
    return {
        "meshes": [
            {"name": name, "colour": list(colour), "sites": count} for name, colour, *_, count in meshes
        ],
        "edges": len(edge_parts),
        "bytes": len(data),
    }


def _glb_bytes(meshes) -> bytes:
    """Pack meshes `(name, colour, vertices (V,3), normals (V,3), triangles (T,3), _)` into one GLB file."""
    binary = bytearray()
    buffer_views, accessors, gltf_meshes, materials, nodes = [], [], [], [], []

    def add_view(array: np.ndarray, target: int) -> int:
        while len(binary) % 4:
            binary.append(0)
        buffer_views.append(
            {"buffer": 0, "byteOffset": len(binary), "byteLength": array.nbytes, "target": target}
        )
        binary.extend(array.tobytes())
        return len(buffer_views) - 1

    for name, colour, vertices, normals, triangles, _ in meshes:
        vertices = np.ascontiguousarray(vertices, dtype=np.float32)
        normals = np.ascontiguousarray(normals, dtype=np.float32)
        indices = np.ascontiguousarray(triangles, dtype=np.uint32).reshape(-1)
        position = len(accessors)
        accessors.append(
            {
                "bufferView": add_view(vertices, _ARRAY_BUFFER),
                "componentType": _FLOAT,
                "count": len(vertices),
                "type": "VEC3",
                "min": vertices.min(axis=0).tolist(),
                "max": vertices.max(axis=0).tolist(),
            }
        )
        accessors.append(
            {"bufferView": add_view(normals, _ARRAY_BUFFER), "componentType": _FLOAT, "count": len(normals),
             "type": "VEC3"}
        )  # fmt: skip
        accessors.append(
            {"bufferView": add_view(indices, _ELEMENT_ARRAY_BUFFER), "componentType": _UNSIGNED_INT,
             "count": len(indices), "type": "SCALAR"}
        )  # fmt: skip
        materials.append(
            {
                "name": name,
                "pbrMetallicRoughness": {
                    "baseColorFactor": [*colour, 1.0],
                    "metallicFactor": 0.0,
                    "roughnessFactor": 0.6,
                },
            }
        )
        gltf_meshes.append(
            {
                "name": name,
                "primitives": [
                    {
                        "attributes": {"POSITION": position, "NORMAL": position + 1},
                        "indices": position + 2,
                        "material": len(materials) - 1,
                        "mode": _TRIANGLES,
                    }
                ],
            }
        )
        nodes.append({"mesh": len(gltf_meshes) - 1, "name": name})
    while len(binary) % 4:
        binary.append(0)
    document = {
        "asset": {"version": "2.0", "generator": "cloud-crystal structure_view"},
        "scene": 0,
        "scenes": [{"nodes": list(range(len(nodes)))}],
        "nodes": nodes,
        "meshes": gltf_meshes,
        "materials": materials,
        "accessors": accessors,
        "bufferViews": buffer_views,
        "buffers": [{"byteLength": len(binary)}],
    }
    text = json.dumps(document, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return b"".join(
        [
            struct.pack("<III", _GLB_MAGIC, _GLB_VERSION, total),
            struct.pack("<II", len(text), _CHUNK_JSON),
            text,
            struct.pack("<II", len(binary), _CHUNK_BIN),
            bytes(binary),
        ]
    )


def read_glb(path: str | Path) -> tuple[dict, bytes]:
    """The JSON document and binary chunk of a GLB file (for tests and checks).

    Raises:
        ValueError: not a glTF 2.0 binary file, or its lengths disagree.
    """
    data = Path(path).read_bytes()
    magic, version, total = struct.unpack_from("<III", data, 0)
    if magic != _GLB_MAGIC or version != _GLB_VERSION or total != len(data):
        raise ValueError(f"{path}: not a glTF 2.0 binary file")
    json_length, json_type = struct.unpack_from("<II", data, 12)
    document = json.loads(data[20 : 20 + json_length])
    bin_length, bin_type = struct.unpack_from("<II", data, 20 + json_length)
    if json_type != _CHUNK_JSON or bin_type != _CHUNK_BIN:
        raise ValueError(f"{path}: chunks out of order")
    start = 28 + json_length
    return document, data[start : start + bin_length]
