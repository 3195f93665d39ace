"""Vehicles driving their routes: position and heading along the way-points, speed with acceleration
limits, stops (deliveries, bus stops with passengers boarding and alighting), fuel or battery use with
refuelling and charging, odometer."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ditto_compat.seeding.catalog import Route
from ditto_compat.seeding.telemetry.signals import (
    Update,
    bearing_deg,
    clamp,
    distance_m,
    interpolate,
    number,
    occupancy_profile,
    properties_of,
)

KMH = 1 / 3.6  # m/s per km/h
ACCELERATION = 1.2  # m/s², a loaded truck or a bus
DECELERATION = 2.0


def synthetic_route(start: tuple[float, float], name: str) -> Route:
    """A loop of about 5 km around ``start``, for a vehicle whose route is unknown."""
    points = []
    for i in range(8):
        angle = 2 * math.pi * i / 8
        points.append((start[0] + 0.007 * math.sin(angle), start[1] + 0.01 * math.cos(angle)))
    points.append(points[0])
    return Route(name, tuple(points), frozenset({0, 4}))


class Vehicle:
    """Shared driving logic; subclasses add their energy and cargo or passengers."""

    cruise_kmh = 45.0
    dwell_s = (60.0, 180.0)

    def __init__(self, thing: dict[str, Any], rng: random.Random, routes: Mapping[str, Route]) -> None:
        self.thing_id = str(thing["thingId"])
        self.rng = rng
        loc = properties_of(thing, "location")
        here = (number(loc, "latitude", 47.3769), number(loc, "longitude", 8.5417))
        route_name = str((thing.get("attributes") or {}).get("route", ""))
        self.route = routes.get(route_name) or synthetic_route(here, route_name or self.thing_id)
        points = self.route.waypoints
        # Start on the segment that begins at the way-point nearest to where the twin is.
        self.segment = min(range(len(points) - 1), key=lambda i: distance_m(points[i], here))
        self.position = points[self.segment]
        self.along = 0.0  # metres along the current segment
        self.speed = number(properties_of(thing, "speed"), "value", 0.0) * KMH
        self.target = self._new_target()
        self.dwell = 0.0
        self.odometer = number(properties_of(thing, "odometer"), "value", 0.0)

    def _new_target(self) -> float:
        return clamp(self.rng.gauss(self.cruise_kmh, 8.0), 15.0, 70.0) * KMH

    def _drive(self, dt: float) -> list[int]:
        """Moves by ``dt`` seconds; returns the stops (way-point indices) reached."""
        reached: list[int] = []
        if self.dwell > 0:
            self.dwell = max(0.0, self.dwell - dt)
            self.speed = 0.0
            return reached
        if self.rng.random() < min(1.0, 0.01 * dt):
            self.target = self._new_target()  # traffic: a new pace now and then
        if self.speed < self.target:
            self.speed = min(self.target, self.speed + ACCELERATION * dt)
        else:
            self.speed = max(self.target, self.speed - DECELERATION * dt)
        remaining = self.speed * dt
        self.odometer += remaining / 1000
        points = self.route.waypoints
        while remaining > 0:
            a, b = points[self.segment], points[self.segment + 1]
            length = max(distance_m(a, b), 1.0)
            if self.along + remaining < length:
                self.along += remaining
                remaining = 0
            else:
                remaining -= length - self.along
                self.along = 0.0
                self.segment = (self.segment + 1) % (len(points) - 1)
                if self.segment in self.route.stops:
                    reached.append(self.segment)
                    self.dwell = self.rng.uniform(*self.dwell_s)
                    self.speed = 0.0
                    break
        a, b = points[self.segment], points[self.segment + 1]
        self.position = interpolate(a, b, self.along / max(distance_m(a, b), 1.0))
        return reached

    def _motion(self) -> Update:
        points = self.route.waypoints
        heading = bearing_deg(points[self.segment], points[self.segment + 1])
        return {
            "location": {
                "latitude": round(self.position[0], 6),
                "longitude": round(self.position[1], 6),
                "heading": round(heading, 1),
            },
            "speed": {"value": round(self.speed / KMH, 1)},
            "odometer": {"value": round(self.odometer, 2)},
        }


class DeliveryTruck(Vehicle):
    """A diesel truck: about 28 l/100 km, refuelled at a stop when below 15 %."""

    def __init__(self, thing: dict[str, Any], rng: random.Random, routes: Mapping[str, Route]) -> None:
        super().__init__(thing, rng, routes)
        fuel = properties_of(thing, "fuel")
        self.fuel = number(fuel, "level", 80.0)
        self.tank_l = number(fuel, "capacityLiters", 220.0)
        self.coolant = number(properties_of(thing, "engine"), "coolantTemperature", 20.0)

    def step(self, now: datetime, dt: float) -> Update:
        before = self.odometer
        stops = self._drive(dt)
        litres = (self.odometer - before) * 0.28 + (0.0003 * dt if self.dwell > 0 else 0.0)  # idling
        self.fuel = clamp(self.fuel - 100 * litres / self.tank_l, 0.0, 100.0)
        if stops and self.fuel < 15:
            self.fuel = 95.0
        running = self.speed > 0 or self.dwell > 0
        self.coolant += (88.0 - self.coolant) * min(1.0, dt / 300) if running else 0.0
        update = self._motion()
        update["fuel"] = {"level": round(self.fuel, 2)}
        update["engine"] = {
            "running": running,
            "rpm": round(650 + self.speed / KMH * 28 + self.rng.gauss(0, 20)) if running else 0,
            "coolantTemperature": round(self.coolant, 1),
        }
        return update


class ElectricVehicle(Vehicle):
    """Battery use in kWh per km, charging at a stop when low (the dwell lasts until it is charged)."""

    kwh_per_km = 0.3
    charge_kw = 100.0

    def __init__(self, thing: dict[str, Any], rng: random.Random, routes: Mapping[str, Route]) -> None:
        super().__init__(thing, rng, routes)
        battery = properties_of(thing, "battery")
        self.battery = number(battery, "level", 90.0)
        self.capacity_kwh = number(battery, "capacityKwh", 100.0)
        self.charging = False

    def _energy(self, dt: float, distance_km: float, stops: list[int]) -> Update:
        if self.charging:
            self.battery = min(100.0, self.battery + 100 * self.charge_kw * dt / 3600 / self.capacity_kwh)
            if self.battery >= 90:
                self.charging = False
                self.dwell = 0.0
            else:
                self.dwell = max(self.dwell, 1.0)  # stay plugged in
        else:
            self.battery = max(0.0, self.battery - 100 * distance_km * self.kwh_per_km / self.capacity_kwh)
            if stops and self.battery < 20:
                self.charging = True
        range_km = self.battery / 100 * self.capacity_kwh / self.kwh_per_km
        return {
            "battery": {
                "level": round(self.battery, 2),
                "charging": self.charging,
                "rangeKm": round(range_km, 1),
            }
        }


class ElectricVan(ElectricVehicle):
    """A delivery van: parcels dropped at each stop, reloaded at the depot (way-point 0)."""

    def __init__(self, thing: dict[str, Any], rng: random.Random, routes: Mapping[str, Route]) -> None:
        super().__init__(thing, rng, routes)
        self.parcels = int(number(properties_of(thing, "cargo"), "parcels", 0))

    def step(self, now: datetime, dt: float) -> Update:
        before = self.odometer
        stops = self._drive(dt)
        update = self._motion()
        update.update(self._energy(dt, self.odometer - before, stops))
        for stop in stops:
            self.parcels = (
                self.rng.randint(80, 140) if stop == 0 else max(0, self.parcels - self.rng.randint(5, 25))
            )
        update["cargo"] = {"parcels": self.parcels, "doorsLocked": self.dwell <= 0}
        return update


class CityBus(ElectricVehicle):
    """A city bus: stops at every stop of its line, passengers alight and board by the time of day."""

    cruise_kmh = 28.0
    dwell_s = (15.0, 40.0)
    kwh_per_km = 1.3
    charge_kw = 300.0

    def __init__(self, thing: dict[str, Any], rng: random.Random, routes: Mapping[str, Route]) -> None:
        super().__init__(thing, rng, routes)
        passengers = properties_of(thing, "passengers")
        self.capacity = int(number(passengers, "capacity", 160))
        self.count = int(clamp(number(passengers, "count", 0), 0, self.capacity))
        self.next_stop = int(number(properties_of(thing, "trip"), "nextStop", 1))

    def step(self, now: datetime, dt: float) -> Update:
        before = self.odometer
        stops = self._drive(dt)
        update = self._motion()
        update.update(self._energy(dt, self.odometer - before, stops))
        if stops:
            demand = occupancy_profile("office", now) * 0.7 + 0.1  # rush hours fill the buses
            alighted = sum(1 for _ in range(self.count) if self.rng.random() < 0.25)
            waiting = int(self.rng.expovariate(1.0) * 25 * demand)
            self.count -= alighted
            boarded = min(waiting, self.capacity - self.count)
            self.count += boarded
            self.next_stop = (stops[-1] + 1) % (len(self.route.waypoints) - 1)
            update["passengers"] = {"count": self.count, "boarded": boarded, "alighted": alighted}
        update["trip"] = {"nextStop": self.next_stop, "doorsOpen": self.dwell > 0 and not self.charging}
        return update
