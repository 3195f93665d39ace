"""What every route needs, built once at start-up and kept on ``app.state.ctx``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ditto_compat.auth.authenticator import Authenticator
from ditto_compat.connectivity.manager import ConnectionManager
from ditto_compat.persistence.ports import Store
from ditto_compat.service.acks import AckRouter
from ditto_compat.service.dispatcher import Dispatcher
from ditto_compat.service.hub import EventHub
from ditto_compat.service.messages import MessageRouter
from ditto_compat.service.metrics import LiveCounts, RequestMetrics
from ditto_compat.service.policies import PolicyService
from ditto_compat.service.policy_announcements import PolicyAnnouncer
from ditto_compat.service.search import SearchService
from ditto_compat.settings import Settings


@dataclass(slots=True)
class AppContext:
    settings: Settings
    store: Store
    dispatcher: Dispatcher
    authenticator: Authenticator
    policies: PolicyService
    search: SearchService
    hub: EventHub
    messages: MessageRouter
    acks: AckRouter
    # /api/2/connections; started after the store opened, stopped before it closes
    connections: ConnectionManager
    # subject deletion announcements to /ws/2 sessions (START-SEND-POLICY-ANNOUNCEMENTS)
    announcements: PolicyAnnouncer
    ready: bool = False
    # /metrics: what the request middleware records, the cached entity counts, the time the server started
    http_metrics: RequestMetrics = field(default_factory=RequestMetrics)
    live_counts: LiveCounts = field(default_factory=LiveCounts)
    started_at: float = field(default_factory=time.time)
