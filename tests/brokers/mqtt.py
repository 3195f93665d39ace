"""Session fixtures for the mqtt test service (see tests/services.py); filled in with the mqtt client."""
