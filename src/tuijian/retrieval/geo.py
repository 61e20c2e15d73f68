"""Geo retrieval: items within R km of a point, or the N nearest, over H3 cell postings.

Every located item is posted under its H3 cell (the `h3` library, Uber's maintained hexagonal
geo index). A circle maps to a disk of whole cells that surely covers it, so the index returns
a superset cheaply and the caller keeps the exact answer by computing distances on just those
candidates' coordinates. Resolution 7 (~1.2 km hexagon edges in China) covers a 3 km radius
with a disk of 2-3 rings (19-37 cells): few bitmaps to OR, and a few times the circle's area
to filter exactly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from functools import lru_cache

import h3
import numpy as np
from pyroaring import BitMap

from tuijian.data.items import ItemFeatureCenter
from tuijian.domain import FloatArray, IntArray
from tuijian.retrieval.postings import grouped, grown, to_bitmap, to_ids

RESOLUTION = 7
MAX_RINGS = 48  # ~100 km; past that a nearest search scans its candidates instead
# Margin for ring cells being slightly larger than the query's own cell.
_SAFETY = 1.1
KM_PER_DEG = 111.2
_cell_of = h3.api.basic_int.latlng_to_cell
_disk = h3.api.basic_int.grid_disk
_ring = h3.api.basic_int.grid_ring
_boundary = h3.api.basic_int.cell_to_boundary
_centre = h3.api.basic_int.cell_to_latlng


def distance_km(lat: float, lon: float, lats: FloatArray, lons: FloatArray) -> FloatArray:
    """Equirectangular distance (as recall/region.py): within a city as good as haversine
    and 3x cheaper; NaN for items without coordinates."""
    x = (lons - lon) * math.cos(math.radians(lat))
    y = lats - lat
    return KM_PER_DEG * np.sqrt(x * x + y * y)


class GeoIndex:
    def __init__(self, store: ItemFeatureCenter) -> None:
        self._store = store
        self._cell = _cells(store.column("lat"), store.column("lon"))  # 0: no coordinates
        located = np.flatnonzero(self._cell)
        keys, codes = np.unique(self._cell[located], return_inverse=True)
        self.postings: dict[int, BitMap] = {int(keys[c]): b for c, b in grouped(codes, located)}
        self.located = to_bitmap(located)

    def update(self, idx: IntArray) -> None:
        """Re-post items whose cell changed (idx unique)."""
        c = self._store.gather(idx, ("lat", "lon"))
        cells = _cells(c["lat"], c["lon"])
        self._cell = grown(self._cell, int(idx.max()) + 1, 0)
        old = self._cell[idx]
        changed = old != cells
        for i, was, now in zip(
            idx[changed].tolist(), old[changed].tolist(), cells[changed].tolist(), strict=True
        ):
            if was:
                self.postings[was].discard(i)
                self.located.discard(i)
            if now:
                self.postings.setdefault(now, BitMap()).add(i)
                self.located.add(i)
        self._cell[idx] = cells

    def distances(self, ids: IntArray, lat: float, lon: float) -> FloatArray:
        c = self._store.gather(ids, ("lat", "lon"))
        return distance_km(lat, lon, c["lat"].astype(np.float64), c["lon"].astype(np.float64))

    def covering(self, lat: float, lon: float, radius_km: float) -> BitMap | None:
        """Every item in cells that cover the circle (a superset of the matches), or None when
        the circle is too large for cells to help."""
        origin = _Origin(lat, lon)
        k = max(0, math.ceil(radius_km / (2 * origin.circumradius)) - 1)  # reach(k) < 2k·r
        rings = origin.rings_for(radius_km, k)
        return None if rings is None else self._union(_disk(origin.cell, rings))

    def nearest(self, lat: float, lon: float, n: int, pool: BitMap | None,
                keep: Callable[[IntArray], IntArray]) -> tuple[IntArray, FloatArray] | None:
        """Candidates that surely include the `n` nearest items of `pool` (None: every
        item) passing `keep`, with their distances; None when the disk would pass MAX_RINGS
        first (a sparse pool, or a point far from the items), and the caller should scan
        instead.

        The query's own cell first, then (short of n candidates) a disk widened by the
        density found so far, each searched whole: one union of postings, one AND with the
        pool, one gather of coordinates, where ring by ring paid those per ring. Once n
        candidates are found, their n-th distance D bounds the answer: one annulus more
        extends the disk to the rings that surely hold everything within D, and of those
        only the cells whose centre is within D plus a circumradius are searched (in a city,
        typically a few of ring 1's 6); only the candidates within D are returned.
        """
        origin = _Origin(lat, lon)
        total = len(self.located) if pool is None else pool.intersection_cardinality(
            self.located)
        ids_parts: list[IntArray] = []
        dist_parts: list[FloatArray] = []
        count = seen = 0
        bound = math.inf  # the n-th smallest distance found, once there are n
        inner, k = -1, 0  # the disk of `inner` rings is searched; the next one reaches `k`
        while True:
            if inner < 0:
                cells = _disk(origin.cell, k) if k else [origin.cell]
            else:  # the rings past the searched disk (once D is known, their cells near it)
                cells = origin.cells_near(inner, k, bound)
            found = self._union(cells)
            if pool is not None:
                found &= pool
            seen += len(found)
            ids = keep(to_ids(found))
            dist = self.distances(ids, lat, lon)
            # an item whose coordinates the store cleared before `add` re-posted it has none:
            # it must neither count toward n nor make D unknown (NaN)
            located = np.isfinite(dist)
            ids_parts.append(ids[located])
            dist_parts.append(dist[located])
            count += ids_parts[-1].shape[0]
            if seen == total or bound < math.inf:
                break  # every candidate is found, or the disk now surely holds all within D
            if count >= n:
                bound = _nth(np.concatenate(dist_parts), n)
                rings = origin.rings_for(bound, k)
                if rings is None:
                    return None
                if rings == k:
                    break
            elif k == MAX_RINGS:
                return None
            else:
                rings = min(_wider(k, count, n), MAX_RINGS)
            inner, k = k, rings
        ids, dist = np.concatenate(ids_parts), np.concatenate(dist_parts)
        if count > n:
            within = dist <= _nth(dist, n)
            ids, dist = ids[within], dist[within]
        return ids, dist

    def _union(self, cells: list[int]) -> BitMap:
        sets = [self.postings[c] for c in cells if c in self.postings]
        return BitMap.union(*sets) if sets else BitMap()


def _cells(lats: FloatArray, lons: FloatArray) -> IntArray:
    """The H3 cell of each point, 0 where coordinates are missing. A Python loop: h3-py has
    no vectorized point API, and at ~0.4 us a point it is 0.4 s per million items."""
    out = np.zeros(lats.shape[0], np.int64)
    ok = np.flatnonzero(np.isfinite(lats) & np.isfinite(lons))
    cells = [
        _cell_of(a, b, RESOLUTION)
        for a, b in zip(
            lats[ok].astype(np.float64).tolist(), lons[ok].astype(np.float64).tolist(), strict=True
        )
    ]
    if cells:
        out[ok] = cells
    return out


def _wider(k: int, found: int, n: int) -> int:
    """The rings of a disk expected to hold n candidates where k rings held `found`: the
    area scaled by the density found (x1.5, so that one more step usually suffices), or
    twice as wide when nothing was found."""
    if found == 0:
        return 2 * k + 1
    cells = (3 * k * (k + 1) + 1) * 1.5 * n / found  # a k-disk has 3k(k+1)+1 cells
    return max(k + 1, math.ceil((math.sqrt(12 * cells - 3) - 3) / 6))


def _nth(values: FloatArray, n: int) -> float:
    """The n-th smallest value (1-based)."""
    return float(np.partition(values, n - 1)[n - 1])


class _Origin:
    """A query point in its H3 cell, and how far around it a disk of k rings surely reaches.

    The nearest point outside the k-disk lies on the edge of some cell of ring k+1, so the
    disk surely holds the circle of radius min over that ring of (distance to the cell's
    centre) - (its circumradius). Measured on the actual cells rather than taken from a
    regular-hexagon formula: in kilometres H3 cells are visibly irregular (at 31°N their
    circumradius varies from 1.14 to 1.29 km), and the formula over-promised there.
    """

    def __init__(self, lat: float, lon: float) -> None:
        self.lat, self.lon = lat, lon
        self.cell = _cell_of(lat, lon, RESOLUTION)
        clat, clon, self.circumradius = _geometry(self.cell)
        self.offset = float(distance_km(lat, lon, np.array([clat]), np.array([clon]))[0])

    def covered(self, k: int) -> float:
        """The radius around the point that the disk of k rings surely covers."""
        return _reach(self.cell, k + 1) - self.offset - self.circumradius * _SAFETY

    def cells_near(self, inner: int, outer: int, radius_km: float) -> list[int]:
        """The cells more than `inner` and at most `outer` rings out that may hold a point
        within `radius_km` of this one: a cell's points lie within its circumradius of its
        centre (a ring cell's circumradius at most _SAFETY times the query cell's)."""
        reach = radius_km + self.circumradius * _SAFETY
        out: list[int] = []
        for k in range(inner + 1, outer + 1):
            cells, centres = _ring_centres(self.cell, k)
            near = distance_km(self.lat, self.lon, centres[:, 0], centres[:, 1]) <= reach
            out.extend(itertools.compress(cells, near.tolist()))
        return out

    def rings_for(self, radius_km: float, k: int) -> int | None:
        """The fewest rings, k or more, whose disk surely covers `radius_km`; None past
        MAX_RINGS."""
        while self.covered(k) < radius_km:
            k += 1
            if k > MAX_RINGS:
                return None
        return k


@lru_cache(maxsize=1 << 14)
def _geometry(cell: int) -> tuple[float, float, float]:
    """The cell's centre and circumradius in km (cached as `_reach` is)."""
    clat, clon = _centre(cell)
    corners = np.array(_boundary(cell), dtype=np.float64)
    return clat, clon, float(distance_km(clat, clon, corners[:, 0], corners[:, 1]).max())


@lru_cache(maxsize=1 << 14)
def _reach(cell: int, k: int) -> float:
    """The least distance from the cell's centre to the centre of a cell k rings out (cached:
    query points cluster in the cells where people are)."""
    clat, clon = _centre(cell)
    centres = _ring_centres(cell, k)[1]
    return float(distance_km(clat, clon, centres[:, 0], centres[:, 1]).min())


@lru_cache(maxsize=1 << 12)
def _ring_centres(cell: int, k: int) -> tuple[tuple[int, ...], FloatArray]:
    """The cells k rings out from `cell`, and their centres as (lat, lon) rows (cached as
    `_reach` is; at most 4096 rings, a few MB)."""
    cells = tuple(_ring(cell, k))
    return cells, np.array([_centre(c) for c in cells], dtype=np.float64).reshape(-1, 2)
