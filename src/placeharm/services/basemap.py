"""The base map beneath the area polygons: none (a plain background), a force's own XYZ tile
server (`tile_url`), or a local PMTiles archive (`pmtiles`) that placeharm serves itself.

PMTiles is read with Protomaps' `pmtiles` package (its directory and header functions); no
JavaScript protocol library is needed because the browser asks this server for plain
`/tiles/{z}/{x}/{y}` tiles.
"""

from __future__ import annotations

import functools
import gzip
import html
import json
import mmap
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pmtiles.tile import (
    Compression,
    Entry,
    TileType,
    deserialize_directory,
    deserialize_header,
    find_tile,
    zxy_to_tileid,
)

from placeharm.config import Settings
from placeharm.errors import ConfigError

TILE_PATH = "/tiles/{z}/{x}/{y}"
_MEDIA = {
    TileType.PNG: "image/png",
    TileType.JPEG: "image/jpeg",
    TileType.WEBP: "image/webp",
    TileType.AVIF: "image/avif",
    TileType.MVT: "application/vnd.mapbox-vector-tile",
}
_MAX_ZOOM = 30
_MERCATOR_LAT = 85.0511
_MAX_DEPTH = 4  # root + at most three levels of leaf directories (the PMTiles v3 spec)


@dataclass(frozen=True, slots=True)
class Tile:
    """One tile's bytes as stored, its media type and Content-Encoding (None or gzip)."""

    data: bytes
    media_type: str
    encoding: str | None


class TileArchive:
    """A local PMTiles v3 archive, memory-mapped read-only; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file = path.open("rb")
        except OSError as exc:
            raise ConfigError(
                f"the PMTiles file {path} cannot be opened ({exc.strerror}); "
                "check the pmtiles setting"
            ) from exc
        try:
            self._bytes = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self.header = deserialize_header(self._bytes[0:127])
        except Exception as exc:  # empty file, not PMTiles, PMTiles v2
            self._file.close()
            raise ConfigError(
                f"{path} is not a PMTiles v3 archive ({exc}); convert it with `pmtiles convert`"
            ) from exc
        tile_type = self.header["tile_type"]
        if tile_type not in _MEDIA:
            self.close()
            raise ConfigError(
                f"{path} holds {tile_type.name} tiles; placeharm serves PNG, JPEG, WebP, AVIF "
                "or MVT (vector) tiles"
            )
        compression = self.header["tile_compression"]
        if compression not in (Compression.NONE, Compression.UNKNOWN, Compression.GZIP):
            self.close()
            raise ConfigError(
                f"{path} compresses its tiles with {compression.name}; placeharm serves "
                "uncompressed or gzip tiles (re-pack with gzip, e.g. tippecanoe's default)"
            )
        self.media_type = _MEDIA[tile_type]
        self.encoding = "gzip" if compression is Compression.GZIP else None
        self.vector = tile_type is TileType.MVT
        self.metadata = self._metadata()
        self._directory = functools.lru_cache(maxsize=256)(self._read_directory)

    def _metadata(self) -> dict[str, Any]:
        h = self.header
        raw = self._bytes[h["metadata_offset"] : h["metadata_offset"] + h["metadata_length"]]
        try:
            if h["internal_compression"] is Compression.GZIP:
                raw = gzip.decompress(raw)
            value = json.loads(raw) if raw else {}
        except (OSError, ValueError):
            return {}  # metadata is optional: tiles are still served
        return value if isinstance(value, dict) else {}

    def _read_directory(self, offset: int, length: int) -> list[Entry]:
        return deserialize_directory(self._bytes[offset : offset + length])

    def get(self, z: int, x: int, y: int) -> Tile | None:
        """The tile at z/x/y, or None if the archive has none there (or z/x/y is impossible)."""
        h = self.header
        if not (h["min_zoom"] <= z <= min(h["max_zoom"], _MAX_ZOOM)):
            return None
        if not (0 <= x < 2**z and 0 <= y < 2**z):
            return None
        tile_id = zxy_to_tileid(z, x, y)
        offset, length = h["root_offset"], h["root_length"]
        for _ in range(_MAX_DEPTH):
            entry = find_tile(self._directory(offset, length), tile_id)
            if entry is None:
                return None
            if entry.run_length == 0:  # a leaf directory
                offset, length = h["leaf_directory_offset"] + entry.offset, entry.length
                continue
            start = h["tile_data_offset"] + entry.offset
            return Tile(
                bytes(self._bytes[start : start + entry.length]), self.media_type, self.encoding
            )
        return None

    def vector_layers(self) -> list[str]:
        """The layer names a vector archive declares (its TileJSON `vector_layers`)."""
        layers = self.metadata.get("vector_layers")
        if not isinstance(layers, list):
            return []
        return [str(layer["id"]) for layer in layers if isinstance(layer, dict) and "id" in layer]

    def close(self) -> None:
        if hasattr(self, "_bytes"):
            self._bytes.close()
        self._file.close()


def open_archive(settings: Settings) -> TileArchive | None:
    """The configured PMTiles archive, checked at start-up (a wrong file fails loudly then)."""
    return TileArchive(settings.pmtiles) if settings.pmtiles else None


def tile_origin(settings: Settings) -> str | None:
    """The tile server's origin, for the Content-Security-Policy; None without tile_url."""
    if not settings.tile_url:
        return None
    parts = urlsplit(settings.tile_url)
    return f"{parts.scheme}://{parts.netloc}"


def source(settings: Settings, archive: TileArchive | None) -> dict[str, Any] | None:
    """What the map script adds beneath the polygons: a MapLibre source and, for vector
    tiles, the layer names to draw plainly. None when no base map is configured."""
    attribution = html.escape(settings.tile_attribution.strip())  # plain text, shown as text
    if settings.tile_url:
        spec: dict[str, Any] = {
            "type": "raster",
            "tiles": [settings.tile_url],
            "tileSize": settings.tile_size,
        }
    elif archive is not None:
        h = archive.header
        spec = {
            "type": "vector" if archive.vector else "raster",
            "tiles": [TILE_PATH],  # on this server; the script makes it absolute
            "minzoom": h["min_zoom"],
            "maxzoom": h["max_zoom"],
        }
        if not archive.vector:
            spec["tileSize"] = settings.tile_size
        # web mercator ends at 85.0511°: a whole-world archive says 90, which MapLibre cannot use
        bounds = [h["min_lon_e7"] / 1e7, max(h["min_lat_e7"] / 1e7, -_MERCATOR_LAT)]
        bounds += [h["max_lon_e7"] / 1e7, min(h["max_lat_e7"] / 1e7, _MERCATOR_LAT)]
        if bounds[0] < bounds[2] and bounds[1] < bounds[3]:
            spec["bounds"] = bounds
        attribution = attribution or _text(str(archive.metadata.get("attribution") or ""))
    else:
        return None
    if attribution:
        spec["attribution"] = attribution
    result: dict[str, Any] = {"source": spec}
    if archive is not None and archive.vector:
        result["vector_layers"] = archive.vector_layers()
    return result


def _text(markup: str) -> str:
    """An archive's HTML attribution as text: MapLibre shows attribution as HTML, so the tags
    go and the rest is escaped (the file is not trusted to write into the page)."""
    return html.escape(re.sub(r"<[^>]*>", "", markup).strip())
