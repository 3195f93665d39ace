"""Session fixtures for the kafka test service (see tests/services.py); filled in with the kafka client."""
