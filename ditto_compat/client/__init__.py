"""The management commands of the CLI (``ditto-compat things|policies|connections ...``): a small client of any
Ditto-compatible HTTP API."""
