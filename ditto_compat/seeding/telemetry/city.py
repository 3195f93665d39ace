"""The city: districts (ambient air, noise, street lighting), weather stations and traffic counters on road
segments, all following the day: rush hours, warmer afternoons, lights at night."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from ditto_compat.seeding.telemetry.signals import (
    Drift,
    Update,
    clamp,
    daily_wave,
    desired_of,
    hour_of_day,
    number,
    properties_of,
    traffic_profile,
)

LANE_CAPACITY_PER_HOUR = 1800


class District:
    def __init__(self, thing: dict[str, Any], rng: random.Random) -> None:
        self.thing_id = str(thing["thingId"])
        self.rng = rng
        air = properties_of(thing, "airQuality")
        self.no2 = Drift(
            number(air, "no2", 22), number(air, "no2", 22), 2, 200, volatility=0.3, reversion=0.002
        )
        self.pm25 = Drift(
            number(air, "pm25", 9), number(air, "pm25", 9), 1, 150, volatility=0.1, reversion=0.002
        )
        self.o3 = Drift(number(air, "o3", 40), number(air, "o3", 40), 2, 240, volatility=0.3, reversion=0.002)
        level = number(properties_of(thing, "noise"), "levelDb", 55)
        self.noise = Drift(level, level, 30, 95, volatility=0.3, reversion=0.01)
        lighting = properties_of(thing, "streetLighting")
        self.lamps_failed = int(number(lighting, "lampsFailed", 0))
        self.lamps_total = int(number(lighting, "lampsTotal", 1000))
        self.night_dim = int(number(desired_of(thing, "streetLighting"), "nightDimLevel", 60))

    def step(self, now: datetime, dt: float) -> Update:
        traffic = traffic_profile(now)
        no2 = self.no2.step(self.rng, dt, self.no2.mean * (0.5 + 0.6 * traffic))
        pm25 = self.pm25.step(self.rng, dt)
        o3 = self.o3.step(self.rng, dt, self.o3.mean * (1 + 0.4 * daily_wave(now, 16)))
        # a simplified index: the worst of the pollutants against their WHO-like guide values
        aqi = round(clamp(max(no2 / 40, pm25 / 15, o3 / 100) * 50, 0, 500))
        noise = self.noise.step(self.rng, dt, self.noise.mean + 6 * (traffic - 1))
        hour = hour_of_day(now)
        on = hour < 6.5 or hour >= 20.0
        if self.rng.random() < min(1.0, 0.0005 * dt):
            self.lamps_failed = min(self.lamps_total, self.lamps_failed + 1)
        return {
            "airQuality": {"aqi": aqi, "no2": round(no2, 1), "pm25": round(pm25, 1), "o3": round(o3, 1)},
            "noise": {"levelDb": round(noise, 1)},
            "streetLighting": {
                "on": on,
                "dimLevel": (self.night_dim if 0 <= hour < 5 else 100) if on else 0,
                "lampsFailed": self.lamps_failed,
            },
        }


class WeatherStation:
    def __init__(self, thing: dict[str, Any], rng: random.Random) -> None:
        self.thing_id = str(thing["thingId"])
        self.rng = rng
        temp = number(properties_of(thing, "temperature"), "value", 12)
        self.base_temp = temp
        self.temperature = Drift(temp, temp, temp - 25, temp + 25, volatility=0.03, reversion=0.002)
        hum = number(properties_of(thing, "humidity"), "value", 70)
        self.base_hum = hum
        self.humidity = Drift(hum, hum, 15, 100, volatility=0.1, reversion=0.002)
        wind = properties_of(thing, "wind")
        speed = number(wind, "speed", 3)
        self.wind = Drift(speed, speed, 0, 40, volatility=0.08, reversion=0.005)
        self.direction = number(wind, "direction", 250)
        pressure = number(properties_of(thing, "pressure"), "value", 965)
        self.pressure = Drift(
            pressure, pressure, pressure - 40, pressure + 40, volatility=0.02, reversion=0.0005
        )
        rain = properties_of(thing, "precipitation")
        self.total_today = number(rain, "totalToday", 0)
        self.raining = number(rain, "rate", 0) > 0
        self.day = -1

    def step(self, now: datetime, dt: float) -> Update:
        if now.toordinal() != self.day:
            if self.day != -1:
                self.total_today = 0.0
            self.day = now.toordinal()
        # rain comes and goes: on average a shower of about half an hour every few hours
        if self.rng.random() < min(1.0, dt / (1800 if self.raining else 14400)):
            self.raining = not self.raining
        rate = clamp(self.rng.gammavariate(2.0, 1.2), 0.1, 30) if self.raining else 0.0
        self.total_today += rate * max(dt, 0.0) / 3600
        wave = daily_wave(now, 15)
        temp = self.temperature.step(self.rng, dt, self.base_temp + 4 * wave - (2 if self.raining else 0))
        hum = self.humidity.step(self.rng, dt, self.base_hum - 12 * wave + (20 if self.raining else 0))
        wind = self.wind.step(self.rng, dt)
        self.direction = (self.direction + self.rng.gauss(0, 2.0) * min(dt, 60) ** 0.5) % 360
        return {
            "temperature": {"value": round(temp, 1)},
            "humidity": {"value": round(hum, 1)},
            "wind": {
                "speed": round(wind, 1),
                "gust": round(wind * self.rng.uniform(1.2, 1.8), 1),
                "direction": round(self.direction),
            },
            "pressure": {"value": round(self.pressure.step(self.rng, dt), 1)},
            "precipitation": {"rate": round(rate, 1), "totalToday": round(self.total_today, 2)},
        }


def congestion_of(ratio: float) -> str:
    if ratio < 0.4:
        return "free"
    if ratio < 0.7:
        return "moderate"
    if ratio < 0.9:
        return "dense"
    return "jammed"


class RoadSegment:
    """A traffic counter: flow by the time of day, speed falling as the road fills, a running vehicle total."""

    def __init__(self, thing: dict[str, Any], rng: random.Random) -> None:
        self.thing_id = str(thing["thingId"])
        self.rng = rng
        attributes = thing.get("attributes") or {}
        lanes = max(1, int(attributes.get("lanes", 1)))
        self.capacity = lanes * LANE_CAPACITY_PER_HOUR
        self.speed_limit = float(attributes.get("speedLimit", 50))
        traffic = properties_of(thing, "traffic")
        # The seeded flow is taken as the segment's average daytime flow.
        self.typical = number(traffic, "vehiclesPerHour", 300)
        self.flow = Drift(self.typical, self.typical, 0, self.capacity, volatility=8.0, reversion=0.01)
        self.total = number(traffic, "vehiclesTotal", 0)

    def step(self, now: datetime, dt: float) -> Update:
        flow = self.flow.step(self.rng, dt, min(self.capacity, self.typical * traffic_profile(now)))
        ratio = flow / self.capacity
        speed = self.speed_limit * clamp(1 - 0.85 * ratio**2, 0.08, 1.0) * self.rng.uniform(0.9, 1.02)
        self.total += flow * max(dt, 0.0) / 3600
        return {
            "traffic": {
                "vehiclesPerHour": round(flow),
                "averageSpeed": round(speed, 1),
                "occupancy": round(clamp(ratio * 60 + self.rng.gauss(0, 1), 0, 100), 1),
                "congestion": congestion_of(ratio),
                "vehiclesTotal": int(self.total),
            }
        }
