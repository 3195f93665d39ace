"""Buildings: people arriving and leaving by the building's usage and the time of day, an energy meter that
only counts up, HVAC bringing the room temperature to the desired set-point, CO2 following the people."""

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
    number,
    occupancy_profile,
    properties_of,
)

# Seconds for the occupancy to cover most of the way to its target: people do not arrive all at once.
ARRIVAL_TIME_S = 900.0


class Building:
    def __init__(self, thing: dict[str, Any], rng: random.Random) -> None:
        self.thing_id = str(thing["thingId"])
        self.rng = rng
        self.usage = str((thing.get("attributes") or {}).get("usage", "office"))
        occupancy = properties_of(thing, "occupancy")
        self.capacity = max(1, int(number(occupancy, "capacity", 400)))
        self.count = clamp(number(occupancy, "count", 0), 0, self.capacity)
        energy = properties_of(thing, "energy")
        self.total_kwh = number(energy, "totalKwh", 0.0)
        # The seeded power is the building's typical draw; its base load is a share of it.
        self.base_kw = number(energy, "powerKw", 40.0) * 0.6
        hvac = properties_of(thing, "hvac")
        desired = desired_of(thing, "hvac")
        self.setpoint = number(desired, "targetTemperature", number(hvac, "currentTemperature", 21.0))
        self.mode = str(desired.get("mode") or hvac.get("mode") or "auto")
        self.room = number(hvac, "currentTemperature", self.setpoint)
        air = properties_of(thing, "indoorAir")
        self.co2 = Drift(number(air, "co2", 450), 450, 400, 2000, volatility=3.0, reversion=0.003)
        self.humidity = Drift(number(air, "humidity", 42), 42, 20, 70, volatility=0.1, reversion=0.003)

    def step(self, now: datetime, dt: float) -> Update:
        target = occupancy_profile(self.usage, now) * self.capacity
        pull = min(1.0, dt / ARRIVAL_TIME_S)
        noise = self.rng.gauss(0, max(1.0, self.capacity * 0.004) * min(1.0, dt) ** 0.5)
        self.count = clamp(self.count + (target - self.count) * pull + noise, 0, self.capacity)
        people = round(self.count)
        ratio = people / self.capacity

        # The room drifts toward the outside (colder at night) and the HVAC pushes it to the set-point.
        outside = 10 + 6 * daily_wave(now, 15)
        gap = self.setpoint - self.room
        self.room += ((outside - self.room) * 0.0002 + gap * 0.003) * dt + self.rng.gauss(0, 0.01)
        self.room = clamp(self.room, 5, 35)
        fan = round(clamp(20 + abs(gap) * 30 + ratio * 20, 10, 100))
        supply = self.setpoint + clamp(gap * 4, -8, 8)
        hvac_kw = fan * self.base_kw * 0.006

        power = self.base_kw + ratio * self.base_kw * 0.8 + hvac_kw + self.rng.gauss(0, self.base_kw * 0.01)
        power = max(power, self.base_kw * 0.2)
        self.total_kwh += power * max(dt, 0.0) / 3600

        co2 = self.co2.step(self.rng, dt, 420 + 800 * ratio)
        humidity = self.humidity.step(self.rng, dt, 38 + 10 * ratio)
        return {
            "occupancy": {"count": people, "ratio": round(ratio, 3)},
            "energy": {"totalKwh": round(self.total_kwh, 3), "powerKw": round(power, 2)},
            "hvac": {
                "mode": self.mode,
                "currentTemperature": round(self.room, 2),
                "supplyAirTemperature": round(supply, 1),
                "fanSpeed": fan,
            },
            "indoorAir": {"co2": round(co2), "humidity": round(humidity, 1)},
        }
