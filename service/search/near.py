"""Location?near=latitude|longitude|distance|units (R4 search.html#special): nearest first.

A bounding box on the indexed near-lat/near-lng rows (indexer.position_rows) narrows the candidates
in SQL on both databases; the exact great-circle (haversine) distance is then computed in Python,
candidates beyond the distance dropped, and the rest ordered by distance, then by creation.
Units are UCUM: km (the default), m, [mi_i] and [mi_us] (mi is taken as [mi_us]). Without a
distance, DEFAULT_KM is used, as the spec leaves "near" to the server then.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, and_, false, or_, select

from ..errors import BadRequest
from ..tables import resource, sp_number, sp_reference
from .params import Criterion, split_bar

EARTH_KM = 6371.0088  # mean Earth radius (IUGG)
DEFAULT_KM = 50.0
UNITS_KM = {"km": 1.0, "m": 0.001, "[mi_i]": 1.609344, "[mi_us]": 1.609347219, "mi": 1.609347219}


@dataclass(frozen=True)
class Point:
    """A near criterion of a search: its point and radius, and the reference it follows (None on Location)."""

    near: Near
    via: str | None


@dataclass(frozen=True)
class Near:
    """A parsed near value: the point and the radius in km."""

    lat: float
    lng: float
    km: float


def parse(c: Criterion) -> Near:
    """The point and radius of a near criterion; 400 naming the parameter on anything malformed."""
    if len(c.values) != 1:
        raise BadRequest("near takes one point: latitude|longitude|distance|units", expression=c.name)
    parts = split_bar(c.values[0])
    if len(parts) < 2 or len(parts) > 4 or not parts[0] or not parts[1]:
        raise BadRequest(f"near must be latitude|longitude[|distance[|units]], not '{c.values[0]}'", expression=c.name)
    lat, lng = _number(parts[0], "latitude", c.name), _number(parts[1], "longitude", c.name)
    if not -90 <= lat <= 90 or not -180 <= lng <= 180:
        raise BadRequest(f"near: latitude must be within ±90 and longitude within ±180, not {lat}|{lng}", expression=c.name)
    distance = _number(parts[2], "distance", c.name) if len(parts) > 2 and parts[2] else None
    unit = parts[3] if len(parts) > 3 and parts[3] else "km"
    if unit not in UNITS_KM:
        raise BadRequest(f"near: unknown distance unit '{unit}'; use km, m, [mi_i] or [mi_us]", expression=c.name)
    if distance is not None and distance < 0:
        raise BadRequest(f"near: the distance cannot be negative ({distance})", expression=c.name)
    return Near(lat, lng, DEFAULT_KM if distance is None else distance * UNITS_KM[unit])


def _number(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(f"near: the {what} '{text}' is not a number", expression=where) from None
    if not math.isfinite(value):
        raise BadRequest(f"near: the {what} '{text}' is not a finite number", expression=where)
    return value


def haversine_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in km between two WGS84 points on a spherical Earth."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


def box(near: Near) -> tuple[tuple[float, float], list[tuple[float, float]]]:
    """The latitude range and the longitude spans (two across the antimeridian) of the box around the circle."""
    dlat = math.degrees(near.km / EARTH_KM)
    lat = (near.lat - dlat, near.lat + dlat)
    if lat[0] <= -90 or lat[1] >= 90:  # the circle holds a pole: every longitude
        return lat, [(-180.0, 180.0)]
    dlng = math.degrees(math.asin(min(1.0, math.sin(near.km / EARTH_KM) / math.cos(math.radians(near.lat)))))
    low, high = near.lng - dlng, near.lng + dlng
    if dlng >= 180:
        return lat, [(-180.0, 180.0)]
    if low < -180:
        return lat, [(-180.0, high), (low + 360, 180.0)]
    if high > 180:
        return lat, [(low, 180.0), (-180.0, high - 360)]
    return lat, [(low, high)]


def _in_box(near: Near, lat_col, lng_col) -> ColumnElement:
    (low, high), spans = box(near)
    return and_(lat_col >= low, lat_col <= high, or_(*[and_(lng_col >= a, lng_col <= b) for a, b in spans]))


def box_condition(near: Near, R) -> ColumnElement:
    """Rows of R whose indexed position lies in the box around the circle (every match, some more)."""
    lat, lng = sp_number.alias(), sp_number.alias()
    inside = select(lat.c.resource_pk).join(lng, and_(lng.c.resource_pk == lat.c.resource_pk, lng.c.type == "Location",
                                                      lng.c.name == "near-lng")) \
        .where(lat.c.type == "Location", lat.c.name == "near-lat", _in_box(near, lat.c.value, lng.c.value))
    return R.c.pk.in_(inside)


def _coordinate(name: str):
    return select(sp_number.c.resource_pk).where(sp_number.c.type == "Location", sp_number.c.name == name)


def candidates(rtype: str, where: list, point: Point) -> Select:
    """(pk, latitude, longitude) of the matches: of the Location itself, or of each Location that `via` names.

    `where` leaves out the near criterion itself: its box is applied here, on the joined coordinate rows.
    """
    R = resource
    lat, lng = sp_number.alias(), sp_number.alias()
    if point.via is None:
        located = R.c.pk
        source = R
    else:
        ref, L = sp_reference.alias(), resource.alias()
        source = R.join(ref, and_(ref.c.resource_pk == R.c.pk, ref.c.type == rtype, ref.c.name == point.via,
                                  ref.c.target_type == "Location")) \
            .join(L, and_(L.c.type == "Location", L.c.id == ref.c.target_id, L.c.deleted == false()))
        located = L.c.pk
    source = source.join(lat, and_(lat.c.resource_pk == located, lat.c.type == "Location", lat.c.name == "near-lat")) \
        .join(lng, and_(lng.c.resource_pk == located, lng.c.type == "Location", lng.c.name == "near-lng"))
    return select(R.c.pk, lat.c.value, lng.c.value).select_from(source) \
        .where(*where, _in_box(point.near, lat.c.value, lng.c.value))
