"""``ditto-compat seed`` and ``ditto-compat simulate``: registered on the CLI's sub-command parser."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``seed`` and ``simulate``; each sets ``handler`` (args -> exit code) as its default."""
