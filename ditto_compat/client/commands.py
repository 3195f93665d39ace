"""``ditto-compat things|policies|connections ...``: registered on the CLI's sub-command parser."""

from __future__ import annotations

import argparse

from ditto_compat.client import connections, policies, things


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the management sub-commands; each sets ``handler`` (args -> exit code) as its default."""
    things.register(sub)
    policies.register(sub)
    connections.register(sub)
