"""Subject deletion announcements to ``/ws/2`` sessions (``basic-policy`` "Subject deletion announcements",
``protocol-specification-policies`` "Announcements"; the rules are in domain/policy_announcements.py).

A session that sent ``START-SEND-POLICY-ANNOUNCEMENTS[?namespaces=..]`` receives
``<ns>/<name>/policies/announcements/subjectDeletion`` for the subjects it is authenticated with, of policies
in its namespaces. Announcements are not persisted (``basic-signals``): one that comes when no session listens
is gone, as in Ditto.

Timing. :class:`PolicyAnnouncer` keeps, per policy, the subjects that ask for announcements, and one heap (for
all policies) of what is due next (a ``beforeExpiry`` announcement, a subject's expiry); one task sleeps until
the earliest of them, so an idle server does no work, however many policies it has. A due entry whose subject
changed or went since it was planned is skipped when it comes up (no search through the heap on every write).

What it knows comes from the store: at start-up it reads every policy (:meth:`start`), after that the
Policies service and the Things dispatcher (a Thing's new default, inline or copied policy) tell it of each
committed write (:meth:`policy_written`). A restart therefore re-plans what
is pending; what was announced before it and is due again (a ``beforeExpiry`` moment that has passed while the
subject has not expired yet) is announced again, as Ditto's subject expiry actors do after a restart.

Limits: with several processes on one database, each one announces to its own sessions, and knows of the
policies stored when it started and of the writes it made itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from ditto_compat.domain.policy_announcements import (
    AnnouncedSubject,
    announced_subjects,
    live_subject_ids,
    subject_deletion,
)
from ditto_compat.model.headers import new_correlation_id
from ditto_compat.model.ids import namespace_of
from ditto_compat.persistence.ports import Store
from ditto_compat.protocol.envelope import Envelope
from ditto_compat.protocol.policies import policy_topic

log = logging.getLogger(__name__)

SCAN_PAGE = 500
# the heap is cleared of skipped entries when it has grown to this size (and then to twice what is left)
COMPACT_MIN = 1024
# the timer wakes up at least this often, so that a jump of the wall clock is noticed
MAX_SLEEP_S = 60.0

Deliver = Callable[[str], None]  # puts a frame into a receiver's bounded queue; raises asyncio.QueueFull


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False, slots=True)
class _Tracked:
    """One announced subject and whether it is done (announced, or gone without announcement)."""

    subject: AnnouncedSubject
    announced: bool = False
    cancelled: bool = False


@dataclass(eq=False, slots=True)
class _Receiver:
    subjects: frozenset[str]
    namespaces: frozenset[str] | None
    deliver: Deliver


@dataclass(slots=True)
class AnnouncementCounts:
    announced: int = 0  # announcements made (whether or not anybody listened)
    delivered: int = 0  # frames handed to sessions
    dropped: int = 0  # frames a session's full queue refused (logged)


@dataclass(eq=False)
class PolicyAnnouncer:
    store: Store
    clock: Callable[[], datetime] = _utc_now
    counts: AnnouncementCounts = field(default_factory=AnnouncementCounts)
    _tracked: dict[str, dict[str, _Tracked]] = field(default_factory=dict)
    # (due as POSIX seconds, tie breaker, kind, tracked); kind "before": the beforeExpiry announcement,
    # "expiry": the subject expires (whenDeleted announcement, then it is forgotten)
    _heap: list[tuple[float, int, str, _Tracked]] = field(default_factory=list)
    _sequence: itertools.count[int] = field(default_factory=itertools.count)
    _compact_at: int = COMPACT_MIN
    _receivers: dict[object, _Receiver] = field(default_factory=dict)
    _by_subject: dict[str, set[object]] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Plan the announcements of every stored policy, then start the timer."""
        after: str | None = None
        while True:
            page = await self.store.list_page("policies", after=after, limit=SCAN_PAGE)
            for state in page:
                self.policy_written(state.entity_id, state.doc)
            if len(page) < SCAN_PAGE:
                break
            after = page[-1].entity_id
        self._task = asyncio.create_task(self._run(), name="policy-announcements")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # ------------------------------------------------------------------------------------------ receivers
    def add(
        self, key: object, subjects: Sequence[str], namespaces: frozenset[str] | None, deliver: Deliver
    ) -> None:
        """``key`` (a session) receives announcements for ``subjects``, of policies in ``namespaces`` (all
        when ``None``); adding it again replaces its earlier subscription."""
        self.remove(key)
        receiver = _Receiver(frozenset(subjects), namespaces, deliver)
        self._receivers[key] = receiver
        for subject in receiver.subjects:
            self._by_subject.setdefault(subject, set()).add(key)

    def remove(self, key: object) -> None:
        receiver = self._receivers.pop(key, None)
        if receiver is None:
            return
        for subject in receiver.subjects:
            keys = self._by_subject.get(subject)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_subject[subject]

    @property
    def receivers(self) -> int:
        return len(self._receivers)

    # ------------------------------------------------------------------------------------------ planning
    def policy_written(self, policy_id: str, doc: Mapping[str, Any] | None) -> None:
        """The policy is now ``doc`` (``None``: deleted). Called in commit order of the policy (the Policies
        service calls it under the policy's lock)."""
        now = self.clock()
        current = announced_subjects(policy_id, doc, now)
        known = self._tracked.get(policy_id, {})
        live: set[str] | None = None
        for key, tracked in known.items():
            if key in current:
                continue
            tracked.cancelled = True  # its heap entries are skipped when they come up
            if tracked.announced or not tracked.subject.when_deleted:
                continue
            if live is None:
                live = live_subject_ids(doc, now)
            subject = tracked.subject
            if subject.subject_id in live and not subject.expired(now):
                continue  # changed, not deleted: the changed subject is planned afresh (as in Ditto)
            expiry = subject.expiry
            self._announce(tracked, expiry if expiry is not None and expiry <= now else now)
        planned = {key: known.get(key) or self._plan(subject, now) for key, subject in current.items()}
        if planned:
            self._tracked[policy_id] = planned
        else:
            self._tracked.pop(policy_id, None)

    def _plan(self, subject: AnnouncedSubject, now: datetime) -> _Tracked:
        tracked = _Tracked(subject)
        announce_at = subject.announce_at
        if announce_at is not None:
            self._push(max(announce_at, now), "before", tracked)
        if subject.expiry is not None:
            self._push(subject.expiry, "expiry", tracked)
        return tracked

    def _push(self, due: datetime, kind: str, tracked: _Tracked) -> None:
        at = due.timestamp()
        if not self._heap or at < self._heap[0][0]:
            self._wake.set()  # the timer sleeps until a later moment
        heapq.heappush(self._heap, (at, next(self._sequence), kind, tracked))
        if len(self._heap) >= self._compact_at:
            # entries of changed or deleted subjects wait for their moment otherwise, e.g. a token renewed
            # every hour with an expiry a day ahead would leave 24 of them per subject
            self._heap = [entry for entry in self._heap if not entry[3].cancelled]
            heapq.heapify(self._heap)
            self._compact_at = max(COMPACT_MIN, 2 * len(self._heap))

    # ------------------------------------------------------------------------------------------ timer
    async def _run(self) -> None:
        while True:
            self._wake.clear()
            delay = self._fire_due()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(delay, MAX_SLEEP_S))

    def _fire_due(self) -> float:
        """Make the announcements that are due; the seconds until the next one."""
        while self._heap:
            at, _seq, kind, tracked = self._heap[0]
            now = self.clock()
            if at > now.timestamp():
                return at - now.timestamp()
            heapq.heappop(self._heap)
            if tracked.cancelled:
                continue
            try:
                self._fire(kind, tracked)
            except Exception:  # one broken announcement must not stop the timer
                log.exception("policy announcement of %s failed", tracked.subject.policy_id)
        return MAX_SLEEP_S

    def _fire(self, kind: str, tracked: _Tracked) -> None:
        subject = tracked.subject
        if kind == "before":
            if not tracked.announced:
                assert subject.expiry is not None
                self._announce(tracked, subject.expiry)
            return
        # the subject expires: Ditto deletes it then, which announces it when asked to and not done before
        assert subject.expiry is not None
        if subject.when_deleted and not tracked.announced:
            self._announce(tracked, subject.expiry)
        tracked.cancelled = True
        policy = self._tracked.get(subject.policy_id)
        if policy is not None and policy.get(subject.key) is tracked:
            del policy[subject.key]
            if not policy:
                del self._tracked[subject.policy_id]

    # ------------------------------------------------------------------------------------------ delivery
    def _announce(self, tracked: _Tracked, delete_at: datetime) -> None:
        tracked.announced = True
        self.counts.announced += 1
        subject = tracked.subject
        keys = self._by_subject.get(subject.subject_id)
        if not keys:
            return
        namespace = namespace_of(subject.policy_id)
        envelope = Envelope(
            policy_topic(subject.policy_id, "announcements", "subjectDeletion"),
            {"correlation-id": new_correlation_id()},
            "/",
            subject_deletion(subject.policy_id, delete_at, [subject.subject_id]),
        )
        frame = orjson.dumps(envelope.to_json()).decode()
        for key in list(keys):
            receiver = self._receivers[key]
            if receiver.namespaces is not None and namespace not in receiver.namespaces:
                continue
            try:
                receiver.deliver(frame)
            except asyncio.QueueFull:
                self.counts.dropped += 1
                log.warning(
                    "subject deletion announcement of %s in %s dropped: the session's queue is full",
                    subject.subject_id,
                    subject.policy_id,
                )
                continue
            self.counts.delivered += 1
