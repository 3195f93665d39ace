"""Example twins (``seeds/``) loaded through the API, and a telemetry simulator that makes them change."""
