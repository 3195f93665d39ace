"""Session fixtures for the http test service (see tests/services.py); filled in with the http client."""
