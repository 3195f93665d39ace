"""Session fixtures for the amqp test service (see tests/services.py); filled in with the amqp client."""
