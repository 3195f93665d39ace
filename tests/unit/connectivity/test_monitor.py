"""The ``/metrics`` and ``/logs`` bodies of a connection (OpenAPI ``ConnectionMetrics``, ``ConnectionLogs``)."""

from __future__ import annotations

from ditto_compat.connectivity.monitor import INBOUND_KINDS, OUTBOUND_KINDS, ConnectionMonitor

T0 = 1_700_000_000.0  # a minute boundary plus 20 s: 1_699_999_980 is divisible by 60


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def test_counts_fall_out_of_their_windows_as_time_passes() -> None:
    clock = Clock()
    monitor = ConnectionMonitor("c1", clock=clock)
    monitor.record("inbound", "consumed", True, "topic/a", count=2)
    clock.now += 120  # two minutes later: gone from PT1M, still in PT1H
    monitor.record("inbound", "consumed", True, "topic/a")
    monitor.record("inbound", "consumed", False, "topic/b")
    body = monitor.metrics_json()
    overall = body["connectionMetrics"]["inbound"]["consumed"]
    assert overall["success"]["PT1M"] == 1
    assert overall["success"]["PT1H"] == 3
    assert overall["success"]["PT24H"] == 3
    assert overall["success"]["lastMessageAt"] == "2023-11-14T22:15:20.000Z"
    assert overall["failure"]["PT1M"] == 1
    assert body["sourceMetrics"]["addressMetrics"]["topic/a"]["consumed"]["success"]["PT1H"] == 3
    assert body["sourceMetrics"]["addressMetrics"]["topic/b"]["consumed"]["failure"]["PT24H"] == 1
    assert body["containsFailures"] is True
    clock.now += 2 * 3600
    later = monitor.metrics_json()["connectionMetrics"]["inbound"]["consumed"]["success"]
    assert (later["PT1M"], later["PT1H"], later["PT24H"]) == (0, 0, 3)
    clock.now += 86400
    assert monitor.metrics_json()["connectionMetrics"]["inbound"]["consumed"]["success"]["PT24H"] == 0
    assert monitor.metrics_json()["containsFailures"] is False
    # the totals the pipelines read stay as they were
    assert monitor.counts[("inbound", "consumed", True, "topic/a")] == 3


def test_the_body_lists_dittos_metric_types_even_when_nothing_was_recorded() -> None:
    body = ConnectionMonitor("c1", clock=Clock()).metrics_json()
    assert body["connectionId"] == "c1"
    assert body["containsFailures"] is False
    assert list(body["connectionMetrics"]["inbound"]) == list(INBOUND_KINDS)
    assert list(body["connectionMetrics"]["outbound"]) == list(OUTBOUND_KINDS)
    assert body["connectionMetrics"]["outbound"]["published"] == {
        "success": {"PT1M": 0, "PT1H": 0, "PT24H": 0},
        "failure": {"PT1M": 0, "PT1H": 0, "PT24H": 0},
    }
    assert body["sourceMetrics"] == {"addressMetrics": {}}
    assert body["targetMetrics"] == {"addressMetrics": {}}


def test_outbound_counts_go_to_the_target_metrics_and_reset_clears_all() -> None:
    monitor = ConnectionMonitor("c1", clock=Clock())
    monitor.record("outbound", "published", True, "events/out", count=5)
    monitor.record("outbound", "throttled", True, "events/out")  # a kind outside the list still shows
    body = monitor.metrics_json()
    assert body["targetMetrics"]["addressMetrics"]["events/out"]["published"]["success"]["PT1M"] == 5
    assert body["connectionMetrics"]["outbound"]["throttled"]["success"]["PT1M"] == 1
    monitor.reset_metrics()
    assert monitor.counts == {}
    assert monitor.metrics_json()["targetMetrics"] == {"addressMetrics": {}}


def test_logs_are_kept_while_enabled_and_rendered_as_ditto_log_entries() -> None:
    clock = Clock()
    monitor = ConnectionMonitor("c1", log_capacity=2, clock=clock)
    monitor.log(
        "source",
        "consumed",
        "success",
        "m1",
        timestamp="t1",
        address="a",
        correlation_id="c",
        entity_id="ns:x",
    )
    monitor.log("target", "published", "failure", "m2", timestamp="t2")
    monitor.log("target", "published", "success", "m3", timestamp="t3")
    body = monitor.logs_json()
    assert body["connectionId"] == "c1"
    assert body["enabledSince"] == "2023-11-14T22:13:20.000Z"
    assert body["enabledUntil"] == "2023-11-15T22:13:20.000Z"
    # bounded: the oldest entry made room
    assert body["connectionLogs"] == [
        {
            "correlationId": "<not-provided>",
            "timestamp": "t2",
            "category": "target",
            "type": "published",
            "level": "failure",
            "message": "m2",
        },
        {
            "correlationId": "<not-provided>",
            "timestamp": "t3",
            "category": "target",
            "type": "published",
            "level": "success",
            "message": "m3",
        },
    ]
    monitor.reset_logs()
    monitor.log(
        "source",
        "consumed",
        "success",
        "m4",
        timestamp="t4",
        address="a",
        correlation_id="c",
        entity_id="ns:x",
    )
    assert monitor.logs_json()["connectionLogs"] == [
        {
            "correlationId": "c",
            "timestamp": "t4",
            "category": "source",
            "type": "consumed",
            "level": "success",
            "message": "m4",
            "address": "a",
            "entityId": "ns:x",
        }
    ]


def test_logging_ends_after_24_hours_until_enabled_again() -> None:
    clock = Clock()
    monitor = ConnectionMonitor("c1", clock=clock)
    clock.now += 86400
    monitor.log("source", "consumed", "success", "late", timestamp="t")
    body = monitor.logs_json()
    assert body["connectionLogs"] == []
    assert "enabledSince" not in body and "enabledUntil" not in body
    monitor.enable_logs()
    monitor.log("source", "consumed", "success", "again", timestamp="t")
    assert [e["message"] for e in monitor.logs_json()["connectionLogs"]] == ["again"]
    assert monitor.logs_json()["enabledSince"] == "2023-11-15T22:13:20.000Z"
