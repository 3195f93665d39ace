"""The simulation loop: the twins' models stepped in turn at a steady rate, each update handed to a transport.

Time in the models runs ``speedup`` times faster than the wall clock (a day curve can be watched in minutes);
each twin is stepped with the simulated seconds since its own last step.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ditto_compat.seeding.progress import Progress
from ditto_compat.seeding.telemetry.signals import TwinModel
from ditto_compat.seeding.transports import Transport


@dataclass(frozen=True)
class Schedule:
    rate: float  # messages per second
    count: int | None = None  # stop after this many messages
    duration: float | None = None  # or after this many seconds (neither: until interrupted)
    speedup: float = 1.0


async def simulate(
    models: Sequence[TwinModel],
    transport: Transport,
    schedule: Schedule,
    progress: Progress | None = None,
    *,
    stop: asyncio.Event | None = None,
) -> None:
    """Sends updates until the count or duration is reached, or ``stop`` is set."""
    if not models:
        return
    loop = asyncio.get_running_loop()
    interval = 1.0 / schedule.rate
    start = loop.time()
    wall_start = datetime.now().astimezone()
    # Before its first step a twin is treated as last stepped one round ago.
    first_dt = len(models) * interval * schedule.speedup
    last_step: dict[int, float] = {}
    sent = 0
    while True:
        now = loop.time()
        if schedule.count is not None and sent >= schedule.count:
            break
        if schedule.duration is not None and now - start >= schedule.duration:
            break
        if stop is not None and stop.is_set():
            break
        index = sent % len(models)
        model = models[index]
        previous = last_step.get(index)
        dt = first_dt if previous is None else (now - previous) * schedule.speedup
        last_step[index] = now
        simulated_now = wall_start + timedelta(seconds=(now - start) * schedule.speedup)
        await transport.send(model.thing_id, model.step(simulated_now, dt))
        sent += 1
        if progress is not None:
            progress.tick()
        # Hold the rate against the schedule, not against the last send: a slow send is caught up.
        delay = start + sent * interval - loop.time()
        if delay > 0:
            if stop is None:
                await asyncio.sleep(delay)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
