"""Which model drives which twin: chosen by the thing's definition (``namespace:name``, any version), so
that things created by hand with a seeded definition are simulated too."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ditto_compat.seeding.catalog import Route
from ditto_compat.seeding.telemetry.buildings import Building
from ditto_compat.seeding.telemetry.city import District, RoadSegment, WeatherStation
from ditto_compat.seeding.telemetry.sensors import (
    AirQualitySensor,
    ClimateSensor,
    ColdChainSensor,
    VibrationSensor,
)
from ditto_compat.seeding.telemetry.signals import TwinModel
from ditto_compat.seeding.telemetry.vehicles import CityBus, DeliveryTruck, ElectricVan

Factory = Callable[[dict[str, Any], random.Random, Mapping[str, Route]], TwinModel]


def _plain(model: Callable[[dict[str, Any], random.Random], TwinModel]) -> Factory:
    return lambda thing, rng, _routes: model(thing, rng)


MODELS: dict[str, Factory] = {
    "org.acme.sensors:ClimateSensor": _plain(ClimateSensor),
    "org.acme.sensors:AirQualitySensor": _plain(AirQualitySensor),
    "org.acme.sensors:VibrationSensor": _plain(VibrationSensor),
    "org.acme.sensors:TemperatureSensor": _plain(ColdChainSensor),
    "org.acme.fleet:DeliveryTruck": DeliveryTruck,
    "org.acme.fleet:ElectricVan": ElectricVan,
    "org.acme.fleet:CityBus": CityBus,
    "org.acme.buildings:Building": _plain(Building),
    "org.acme.city:District": _plain(District),
    "org.acme.city:WeatherStation": _plain(WeatherStation),
    "org.acme.city:RoadSegment": _plain(RoadSegment),
}


def model_key(definition: object) -> str | None:
    """``org.acme.fleet:CityBus`` of ``org.acme.fleet:CityBus:2.0.0``."""
    if not isinstance(definition, str) or definition.count(":") < 1:
        return None
    return ":".join(definition.split(":")[:2])


def build_models(
    things: Iterable[dict[str, Any]], routes: Mapping[str, Route], *, seed: int | None = None
) -> list[TwinModel]:
    """A model per thing whose definition has one (others are skipped). Each twin has its own random
    generator seeded from ``seed`` and its id, so a run is reproducible and twins differ."""
    models: list[TwinModel] = []
    for thing in things:
        factory = MODELS.get(model_key(thing.get("definition")) or "")
        if factory is None:
            continue
        rng = random.Random(f"{seed}:{thing['thingId']}") if seed is not None else random.Random()
        models.append(factory(thing, rng, routes))
    return models
