"""Small building blocks of realistic signals: a bounded mean-reverting random walk (an Ornstein-Uhlenbeck
process, so values wander with noise yet stay near their level), daily profiles and geometry."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

Properties = dict[str, Any]
Update = dict[str, Properties]


class TwinModel(Protocol):
    """What the simulator drives: one twin, stepped with the simulated time and the seconds since last step."""

    thing_id: str

    def step(self, now: datetime, dt: float) -> Update: ...


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


@dataclass
class Drift:
    """A value pulled back toward ``mean`` (``reversion`` per second) and shaken by ``volatility`` per
    square-root second, never leaving [``low``, ``high``]."""

    value: float
    mean: float
    low: float
    high: float
    volatility: float
    reversion: float = 0.01

    def step(self, rng: random.Random, dt: float, mean: float | None = None) -> float:
        target = self.mean if mean is None else mean
        dt = max(dt, 0.0)
        # Exact discretisation of the OU process: stable for any dt (a simulator at a low rate steps far).
        decay = math.exp(-self.reversion * dt)
        spread = self.volatility * math.sqrt((1 - decay * decay) / (2 * self.reversion))
        self.value = clamp(
            target + (self.value - target) * decay + rng.gauss(0.0, spread), self.low, self.high
        )
        return self.value


def hour_of_day(now: datetime) -> float:
    return now.hour + now.minute / 60 + now.second / 3600


def bump(hour: float, centre: float, width: float) -> float:
    """A bell around ``centre`` (hours), 1 at its top."""
    return math.exp(-(((hour - centre) / width) ** 2))


def occupancy_profile(usage: str, now: datetime) -> float:
    """Share of the capacity present at ``now`` for a building's usage (0..1)."""
    hour = hour_of_day(now)
    weekend = now.weekday() >= 5
    if usage == "hospital":
        return 0.55 + 0.3 * bump(hour, 11, 4) + 0.1 * bump(hour, 17, 2)
    if usage == "retail":
        return (
            0.0
            if hour < 9 or hour > 20.5
            else 0.15 + 0.45 * bump(hour, 13, 2.5) + 0.4 * bump(hour, 17.5, 1.5)
        )
    if usage == "factory":
        # three shifts with a quieter night, fewer people at weekends
        level = 0.75 if 6 <= hour < 22 else 0.35
        return level * (0.4 if weekend else 1.0)
    if usage == "warehouse":
        return (0.7 if 5 <= hour < 21 else 0.2) * (0.5 if weekend else 1.0)
    if weekend:
        return 0.03
    if usage == "school":
        return 0.9 * (
            1.0 if 7.75 <= hour < 12 or 13.25 <= hour < 15.5 else 0.15 if 12 <= hour < 13.25 else 0.0
        )
    # office: arrive 7-9, lunch dip, leave 16-18
    return clamp(
        0.85 * (bump(hour, 10.5, 2.2) + bump(hour, 14.5, 2.0)) - 0.2 * bump(hour, 12.5, 0.5), 0.02, 0.95
    )


def traffic_profile(now: datetime) -> float:
    """Road traffic relative to an average day hour (about 0.1 at night, up to about 1.6 in the peaks)."""
    hour = hour_of_day(now)
    base = 0.1 + 0.9 * bump(hour, 13, 5)
    if now.weekday() < 5:
        base += 0.7 * bump(hour, 7.75, 1.0) + 0.6 * bump(hour, 17.25, 1.2)
    return base


def daily_wave(now: datetime, peak_hour: float) -> float:
    """A cosine in [-1, 1] peaking at ``peak_hour``."""
    return math.cos((hour_of_day(now) - peak_hour) / 24 * 2 * math.pi)


EARTH_RADIUS_M = 6_371_000.0


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine) between two (latitude, longitude) points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, h)))


def bearing_deg(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    y = math.sin(lon2 - lon1) * math.cos(lat2)
    x = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(lon2 - lon1)
    return (math.degrees(math.atan2(y, x)) + 360) % 360


def interpolate(a: tuple[float, float], b: tuple[float, float], fraction: float) -> tuple[float, float]:
    """A point between ``a`` and ``b`` (linear in degrees: fine over a city block)."""
    return a[0] + (b[0] - a[0]) * fraction, a[1] + (b[1] - a[1]) * fraction


def properties_of(thing: dict[str, Any], feature: str) -> Properties:
    """A feature's properties in a thing's JSON ({} when absent)."""
    props = ((thing.get("features") or {}).get(feature) or {}).get("properties")
    return dict(props) if isinstance(props, dict) else {}


def desired_of(thing: dict[str, Any], feature: str) -> Properties:
    props = ((thing.get("features") or {}).get(feature) or {}).get("desiredProperties")
    return dict(props) if isinstance(props, dict) else {}


def number(props: Properties, key: str, default: float) -> float:
    value = props.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default
