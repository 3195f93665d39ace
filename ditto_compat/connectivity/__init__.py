"""Connectivity (``connectivity-overview``): connections to MQTT, Kafka, AMQP 0.9.1 brokers and HTTP endpoints.

- ``model``: the connection definition; ``external``: a broker message; ``placeholders``: ``{{ ... }}`` templates;
- ``mapping``: payload mappers between broker messages and Ditto Protocol envelopes (pure, but for JavaScript);
- ``clients``: one adapter per connection type, owning the broker library and its reconnects;
- ``inbound`` / ``outbound``: a connection's sources into the dispatcher, the hub's events out to its targets;
- ``manager``: the persisted connections, opened at start-up, and what the HTTP API asks of them;
- ``monitor``: per-connection metrics and logs.
"""
