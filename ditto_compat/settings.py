"""One frozen Settings object, built once in the CLI from options and ``DITTO_COMPAT_<NAME>`` variables."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = "./data"
    mongo_uri: str | None = None
    mongo_database: str = "ditto"
    htpasswd: str | None = None
    pre_authenticated: bool = False
    devops_user: str = "devops"
    devops_password: str = "foobar"
    sqlite_synchronous: str = "NORMAL"
    log_level: str = "info"
    # journal entries kept per Thing/Policy for history (at-historical-*); 0 keeps all. The oldest kept entry
    # becomes a snapshot of the entity, so every kept revision stays retrievable (domain/history.py).
    journal_retention: int = 0
    # events waiting per WebSocket/SSE subscriber before it counts as overflowed (service/hub.py)
    event_queue_size: int = 1000
    # Ditto's POLICY_SUBJECT_EXPIRY_GRANULARITY: a subject's expiry is rounded up to a multiple of it (1 h);
    # whole seconds, so that tests can use expiries a few seconds ahead
    policy_subject_expiry_granularity_s: int = 3600
    # permessage-deflate on /ws/2. Off by default, as in Ditto (Akka HTTP never negotiates it): with many
    # subscribers, compressing every frame once per session is the largest per-frame cost.
    ws_compression: bool = False
    # HTTP push connections may get OAuth2 tokens from an http:// endpoint (Ditto's oauth2 enforce-https off)
    oauth2_allow_http: bool = False
    # seconds a process holds a connection's lease in MongoDB: how soon another process sharing the database takes
    # over the connections of one that died (connectivity/manager.py); SQLite has one process by construction
    connection_lease_s: float = 30.0

    @property
    def storage_name(self) -> str:
        return "mongodb" if self.mongo_uri else "sqlite"
