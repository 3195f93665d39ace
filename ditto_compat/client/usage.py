"""The error of a command line that cannot be carried out as given."""

from __future__ import annotations


class UsageError(Exception):
    """Exit code 2, like argparse's own errors: a bad body, an unreadable file, a malformed URL."""
