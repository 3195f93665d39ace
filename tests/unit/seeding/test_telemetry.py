"""The telemetry models: every seeded twin has one, values stay plausible over a simulated day, counters only
grow, vehicles move along their routes, and a seeded run is reproducible."""

from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta
from typing import Any

import pytest

from ditto_compat.seeding.catalog import Route, SeedDomain, load_catalog
from ditto_compat.seeding.telemetry.registry import build_models
from ditto_compat.seeding.telemetry.signals import Drift, TwinModel, distance_m, occupancy_profile
from ditto_compat.seeding.telemetry.vehicles import CityBus

START = datetime(2025, 6, 3, 0, 0)  # a Tuesday
STEP_S = 60.0
STEPS = 24 * 60  # one simulated day, a step a minute


@pytest.fixture(scope="module")
def domains() -> list[SeedDomain]:
    return load_catalog()


def routes_of(domains: list[SeedDomain]) -> dict[str, Route]:
    return {name: route for d in domains for name, route in d.routes.items()}


def things_of(domains: list[SeedDomain], name: str | None = None) -> list[dict[str, Any]]:
    return [t for d in domains if name in (None, d.name) for t in d.things]


def run_day(models: list[TwinModel]) -> dict[str, list[dict[str, dict[str, Any]]]]:
    history: dict[str, list[dict[str, dict[str, Any]]]] = {m.thing_id: [] for m in models}
    for i in range(1, STEPS + 1):
        now = START + timedelta(seconds=i * STEP_S)
        for model in models:
            history[model.thing_id].append(model.step(now, STEP_S))
    return history


@pytest.fixture(scope="module")
def day(domains: list[SeedDomain]) -> dict[str, list[dict[str, dict[str, Any]]]]:
    return run_day(build_models(things_of(domains), routes_of(domains), seed=7))


def series(history: list[dict[str, dict[str, Any]]], feature: str, prop: str) -> list[Any]:
    return [u[feature][prop] for u in history if feature in u and prop in u[feature]]


def test_every_seeded_twin_has_a_model(domains: list[SeedDomain]) -> None:
    things = things_of(domains)
    assert len(build_models(things, routes_of(domains), seed=1)) == len(things)


def test_same_seed_same_values_other_seed_other_values(domains: list[SeedDomain]) -> None:
    things, routes = things_of(domains), routes_of(domains)

    def first_steps(seed: int) -> list[Any]:
        models = build_models(things, routes, seed=seed)
        return [m.step(START + timedelta(minutes=k), 30.0) for k in range(3) for m in models]

    assert first_steps(5) == first_steps(5)
    assert first_steps(5) != first_steps(6)


def test_updates_only_touch_features_the_twin_has(domains: list[SeedDomain], day: dict[str, Any]) -> None:
    for thing in things_of(domains):
        touched = {feature for update in day[thing["thingId"]] for feature in update}
        assert touched <= set(thing["features"]), thing["thingId"]


@pytest.mark.parametrize(
    ("domain", "feature", "prop", "low", "high"),
    [
        ("sensors", "humidity", "value", 10, 95),
        ("sensors", "airQuality", "co2", 400, 2500),
        ("sensors", "vibration", "rmsVelocity", 0.1, 20),
        ("sensors", "battery", "level", 5, 100),
        ("vehicles", "speed", "value", 0, 70),
        ("vehicles", "location", "latitude", 47.30, 47.45),
        ("vehicles", "location", "longitude", 8.45, 8.60),
        ("buildings", "occupancy", "ratio", 0, 1),
        ("buildings", "hvac", "currentTemperature", 5, 35),
        ("city", "wind", "direction", 0, 360),
        ("city", "humidity", "value", 15, 100),
        ("city", "traffic", "averageSpeed", 5, 110),  # a little over the limit happens
    ],
)
def test_values_stay_in_bounds(
    domains: list[SeedDomain],
    day: dict[str, Any],
    domain: str,
    feature: str,
    prop: str,
    low: float,
    high: float,
) -> None:
    values = [v for t in things_of(domains, domain) for v in series(day[t["thingId"]], feature, prop)]
    assert values, f"no {feature}/{prop} in {domain}"
    assert low <= min(values) and max(values) <= high
    assert len(set(values)) > 10  # and they do change


def test_counters_only_grow(domains: list[SeedDomain], day: dict[str, Any]) -> None:
    for domain, feature, prop in [
        ("buildings", "energy", "totalKwh"),
        ("vehicles", "odometer", "value"),
        ("city", "traffic", "vehiclesTotal"),
    ]:
        for thing in things_of(domains, domain):
            if feature not in thing["features"]:
                continue
            values = series(day[thing["thingId"]], feature, prop)
            assert values == sorted(values), thing["thingId"]
            assert values[-1] > values[0], thing["thingId"]


def test_building_occupancy_follows_the_day(domains: list[SeedDomain], day: dict[str, Any]) -> None:
    hq = things_of(domains, "buildings")[0]
    assert hq["thingId"] == "org.acme.buildings:hq-zurich"
    counts = series(day[hq["thingId"]], "occupancy", "count")
    capacity = hq["features"]["occupancy"]["properties"]["capacity"]
    at = {hour: counts[hour * 60 - 1] for hour in (4, 11, 22)}
    assert at[4] < 0.1 * capacity and at[22] < 0.1 * capacity
    assert 0.5 * capacity < at[11] <= capacity
    assert occupancy_profile("office", START.replace(hour=11)) > occupancy_profile(
        "office", START.replace(hour=23)
    )


def test_vehicles_drive_their_routes(domains: list[SeedDomain], day: dict[str, Any]) -> None:
    routes = routes_of(domains)
    for thing in things_of(domains, "vehicles"):
        positions = [(u["location"]["latitude"], u["location"]["longitude"]) for u in day[thing["thingId"]]]
        assert len(set(positions)) > 100, thing["thingId"]
        route = routes[thing["attributes"]["route"]]
        # every position lies near the route: within a few hundred metres of one of its way-points
        for position in positions[::50]:
            assert min(distance_m(position, p) for p in route.waypoints) < 2500, thing["thingId"]


def test_bus_passengers_stay_within_capacity_and_change_at_stops(
    domains: list[SeedDomain], day: dict[str, Any]
) -> None:
    for thing in things_of(domains, "vehicles"):
        if "passengers" not in thing["features"]:
            continue
        capacity = thing["features"]["passengers"]["properties"]["capacity"]
        counts = series(day[thing["thingId"]], "passengers", "count")
        assert len(counts) > 20, thing["thingId"]  # many stops in a day
        assert all(0 <= c <= capacity for c in counts)
        assert len(set(counts)) > 5


def test_fuel_and_batteries_are_used_and_refilled(domains: list[SeedDomain], day: dict[str, Any]) -> None:
    for thing in things_of(domains, "vehicles"):
        feature = "fuel" if "fuel" in thing["features"] else "battery"
        levels = series(day[thing["thingId"]], feature, "level")
        assert all(0 <= level <= 100 for level in levels)
        assert any(b < a for a, b in itertools.pairwise(levels)), thing["thingId"]


def test_a_bus_without_a_known_route_drives_a_loop_where_it_is() -> None:
    thing = {
        "thingId": "org.example:bus-1",
        "attributes": {"route": "nowhere"},
        "features": {"location": {"properties": {"latitude": 48.1, "longitude": 11.5}}},
    }
    bus = CityBus(thing, random.Random(1), {})
    updates = [bus.step(START + timedelta(seconds=i), 5.0) for i in range(200)]
    last = updates[-1]["location"]
    assert distance_m((48.1, 11.5), (last["latitude"], last["longitude"])) < 2000
    assert updates[-1]["odometer"]["value"] > 0.5


def test_drift_is_bounded_even_with_large_steps() -> None:
    rng = random.Random(3)
    drift = Drift(20.0, 20.0, 15.0, 25.0, volatility=5.0, reversion=0.001)
    values = [drift.step(rng, 3600.0) for _ in range(500)]
    assert min(values) >= 15.0 and max(values) <= 25.0
