"""Industrial sensors: climate (temperature, humidity, battery), air quality, machine vibration and
cold-chain temperature with door-opening excursions."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from ditto_compat.seeding.telemetry.signals import (
    Drift,
    Update,
    clamp,
    daily_wave,
    number,
    occupancy_profile,
    properties_of,
)


class ClimateSensor:
    """Room temperature with a small daily swing, humidity moving the other way, a battery draining slowly."""

    def __init__(self, thing: dict[str, Any], rng: random.Random) -> None:
        self.thing_id = str(thing["thingId"])
        self.rng = rng
        temp = number(properties_of(thing, "temperature"), "value", 21.0)
        hum = number(properties_of(thing, "humidity"), "value", 45.0)
        self.base_temp, self.base_hum = temp, hum
        self.temperature = Drift(temp, temp, temp - 8, temp + 8, volatility=0.05, reversion=0.005)
        self.humidity = Drift(hum, hum, 10, 95, volatility=0.2, reversion=0.005)
        self.battery = number(properties_of(thing, "battery"), "level", 100.0)
        self.low = number(properties_of(thing, "temperature"), "minMeasured", temp)
        self.high = number(properties_of(thing, "temperature"), "maxMeasured", temp)

    def step(self, now: datetime, dt: float) -> Update:
        wave = daily_wave(now, 15)
        temp = self.temperature.step(self.rng, dt, self.base_temp + 1.2 * wave)
        hum = self.humidity.step(self.rng, dt, self.base_hum - 4 * wave)
        self.low, self.high = min(self.low, temp), max(self.high, temp)
        # about 2 % a day; a technician swaps the battery when it is nearly empty
        self.battery -= dt * 2 / 86400
        if self.battery < 5:
            self.battery = 100.0
        return {
            "temperature": {
                "value": round(temp, 2),
                "minMeasured": round(self.low, 2),
                "maxMeasured": round(self.high, 2),
            },
            "humidity": {"value": round(hum, 1)},
            "battery": {"level": round(self.battery, 2)},
        }


def air_quality_index(co2: float, pm25: float) -> str:
    if co2 > 1400 or pm25 > 55:
        return "poor"
    if co2 > 1000 or pm25 > 25:
        return "moderate"
    return "good"


class AirQualitySensor:
    """CO2 following the people in the room (an office day), particulates and VOC wandering around their level."""

    def __init__(self, thing: dict[str, Any], rng: random.Random) -> None:
        self.thing_id = str(thing["thingId"])
        self.rng = rng
        air = properties_of(thing, "airQuality")
        self.co2 = Drift(number(air, "co2", 600), 600, 400, 2500, volatility=4.0, reversion=0.003)
        pm25 = number(air, "pm25", 8)
        self.pm25 = Drift(pm25, pm25, 0.5, 150, volatility=0.15, reversion=0.004)
        voc = number(air, "voc", 120)
        self.voc = Drift(voc, voc, 10, 2000, volatility=2.0, reversion=0.004)
        temp = number(properties_of(thing, "temperature"), "value", 22.0)
        self.temperature = Drift(temp, temp, temp - 6, temp + 6, volatility=0.04, reversion=0.005)

    def step(self, now: datetime, dt: float) -> Update:
        people = occupancy_profile("office", now)
        co2 = self.co2.step(self.rng, dt, 420 + 700 * people)
        pm25 = self.pm25.step(self.rng, dt)
        pm10 = clamp(pm25 * 1.7 + self.rng.gauss(0, 0.5), pm25, 250)
        voc = self.voc.step(self.rng, dt)
        temp = self.temperature.step(self.rng, dt)
        return {
            "airQuality": {
                "co2": round(co2),
                "pm25": round(pm25, 1),
                "pm10": round(pm10, 1),
                "voc": round(voc),
                "index": air_quality_index(co2, pm25),
            },
            "temperature": {"value": round(temp, 2)},
        }


class VibrationSensor:
    """Velocity RMS of a rotating machine around its normal level, with occasional shocks that decay; the
    status compares it with the alarm thresholds of the twin."""

    def __init__(self, thing: dict[str, Any], rng: random.Random) -> None:
        self.thing_id = str(thing["thingId"])
        self.rng = rng
        vib = properties_of(thing, "vibration")
        rms = number(vib, "rmsVelocity", 1.8)
        self.rms = Drift(rms, rms, 0.1, 20.0, volatility=0.03, reversion=0.02)
        self.frequency = number(vib, "dominantFrequency", 49.6)
        self.shock = 0.0
        alarm = properties_of(thing, "alarm")
        self.warning, self.critical = number(alarm, "warning", 4.5), number(alarm, "critical", 7.1)
        temp = number(properties_of(thing, "temperature"), "value", 48.0)
        self.temperature = Drift(temp, temp, temp - 15, temp + 25, volatility=0.05, reversion=0.004)

    def step(self, now: datetime, dt: float) -> Update:
        if self.rng.random() < min(1.0, 0.002 * dt):
            self.shock += self.rng.uniform(2.0, 5.0)
        self.shock *= 0.97 ** max(dt, 0.0)
        rms = clamp(self.rms.step(self.rng, dt) + self.shock, 0.1, 20.0)
        status = "critical" if rms >= self.critical else "warning" if rms >= self.warning else "normal"
        temp = self.temperature.step(self.rng, dt, self.temperature.mean + 2 * self.shock)
        return {
            "vibration": {
                "rmsVelocity": round(rms, 2),
                "peakAcceleration": round(clamp(rms * 0.22 + self.rng.gauss(0, 0.03), 0.01, 10.0), 3),
                "dominantFrequency": round(self.frequency + self.rng.gauss(0, 0.15), 2),
                "status": status,
            },
            "temperature": {"value": round(temp, 1)},
        }


class ColdChainSensor:
    """A freezer or cold room holding its temperature; a door left open now and then warms it for a while,
    and the alarm turns active outside the twin's low/high limits."""

    def __init__(self, thing: dict[str, Any], rng: random.Random) -> None:
        self.thing_id = str(thing["thingId"])
        self.rng = rng
        temp = number(properties_of(thing, "temperature"), "value", -18.0)
        self.temperature = Drift(temp, temp, temp - 5, temp + 25, volatility=0.03, reversion=0.01)
        alarm = properties_of(thing, "alarm")
        self.low, self.high = number(alarm, "low", temp - 7), number(alarm, "high", temp + 3)
        self.excursion = 0.0

    def step(self, now: datetime, dt: float) -> Update:
        if self.rng.random() < min(1.0, 0.0015 * dt):
            self.excursion += self.rng.uniform(2.0, 6.0)
        self.excursion *= 0.99 ** max(dt, 0.0)
        temp = self.temperature.step(self.rng, dt, self.temperature.mean + self.excursion)
        return {
            "temperature": {"value": round(temp, 2)},
            "alarm": {"active": not self.low <= temp <= self.high},
        }
