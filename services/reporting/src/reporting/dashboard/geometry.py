"""The outlines of the 18 regions for the map, assembled from the département outlines that the
State's chart package ships (``@gouvfr/dsfr-chart``, read at build time into ``map/france.json`` of
the front-end assets; nothing of it is committed). Overseas regions are drawn as insets on the left."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from ti_shared.assets import asset_path
from ti_shared.geo import DEPARTEMENTS, REGIONS

#: the inset column left of metropolitan France (its map spans 0 0 1010 1010)
INSET_WIDTH = 170
INSET_HEIGHT = 190
VIEW_BOX = f"-{INSET_WIDTH + 10} 0 {1010 + INSET_WIDTH + 10} 1010"


@dataclass(frozen=True)
class Shape:
    path: str
    transform: str = ""


@dataclass(frozen=True)
class RegionShapes:
    code: str
    shapes: tuple[Shape, ...]


@functools.lru_cache(maxsize=2)
def _load(path: Path) -> dict[str, RegionShapes]:
    data = json.loads(path.read_text(encoding="utf-8"))
    shapes: dict[str, list[Shape]] = {code: [] for code in REGIONS}
    for dep, d in data["metropole"]["departements"].items():
        shapes[DEPARTEMENTS[dep][1]].append(Shape(d))
    for i, (dep, inset) in enumerate(sorted(data["outremer"].items())):
        _, _, w, h = (float(x) for x in inset["viewBox"].split())
        scale = min((INSET_WIDTH - 20) / w, (INSET_HEIGHT - 30) / h)
        x = -INSET_WIDTH + (INSET_WIDTH - 20 - w * scale) / 2
        y = 20 + i * INSET_HEIGHT + (INSET_HEIGHT - 30 - h * scale) / 2
        shapes[DEPARTEMENTS[dep][1]].append(Shape(inset["path"], f"translate({x:.1f} {y:.1f}) scale({scale:.3f})"))
    missing = [code for code, s in shapes.items() if not s]
    if missing:
        raise ValueError(f"no outline for the regions {missing} in {path}")
    return {code: RegionShapes(code, tuple(s)) for code, s in shapes.items()}


def region_shapes() -> dict[str, RegionShapes]:
    """Region code → its outlines (one path per département), for the 18 regions."""
    return _load(asset_path("map/france.json"))
