"""Telemetry models of the seeded twins: plain, deterministic (a seeded ``random.Random`` per twin) and
bounded. A model is built from a thing's current JSON and, on each ``step(now, dt)``, returns the feature
properties that changed, as ``{featureId: {property: value}}`` (a merge into ``features``)."""
