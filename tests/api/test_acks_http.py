"""``requested-acks``, ``response-required`` and ``timeout`` on the Things HTTP API (``basic-acknowledgements``,
Ditto's ``RequestedAcksIT``): which combinations answer what."""

from __future__ import annotations

import httpx
import pytest

from ditto_compat.service.acks import TimeoutZeroWithResponse, ack_request
from tests.api.conftest import new_id


@pytest.mark.parametrize(
    ("requested", "channel", "response_required", "timeout_s", "labels", "required"),
    [
        # nothing set: the channel's implicit label and a response
        (None, "twin", None, 60.0, ("twin-persisted",), True),
        (None, "live", None, 60.0, ("live-response",), True),
        # a zero timeout, or no response wanted: nothing requested
        (None, "twin", None, 0.0, (), False),
        (None, "twin", False, 60.0, (), False),
        # explicit labels stay (the other channel's built-in ones are dropped) ...
        (("twin-persisted", "live-response", "a:b"), "twin", None, 60.0, ("twin-persisted", "a:b"), True),
        ((), "twin", None, 60.0, (), True),
        # ... and on the live channel response-required adds or removes live-response
        (("a:b", "twin-persisted"), "live", None, 60.0, ("a:b", "live-response"), True),
        (("a:b", "live-response"), "live", False, 60.0, ("a:b",), False),
        (("twin-persisted",), "twin", False, 60.0, ("twin-persisted",), False),
    ],
)
def test_defaults(
    requested: tuple[str, ...] | None,
    channel: str,
    response_required: bool | None,
    timeout_s: float,
    labels: tuple[str, ...],
    required: bool,
) -> None:
    request = ack_request(
        requested, channel=channel, response_required=response_required, timeout_s=timeout_s
    )
    assert (request.labels, request.response_required) == (labels, required)


@pytest.mark.parametrize(
    ("requested", "response_required"), [(("twin-persisted",), None), (None, True), (("a:b",), False)]
)
def test_zero_timeout_with_a_response_or_acks_is_a_client_error(
    requested: tuple[str, ...] | None, response_required: bool | None
) -> None:
    with pytest.raises(TimeoutZeroWithResponse) as raised:
        ack_request(requested, channel="twin", response_required=response_required, timeout_s=0.0)
    assert (raised.value.status, raised.value.error_code) == (400, "header.invalid")


async def test_zero_timeout(client: httpx.AsyncClient) -> None:
    thing_id = new_id()
    # with acknowledgements: 400, as a header or a query parameter, on PUT and POST
    r = await client.put(
        f"/api/2/things/{thing_id}", json={}, params={"requested-acks": "twin-persisted", "timeout": "0"}
    )
    assert (r.status_code, r.json()["error"]) == (400, "header.invalid")
    assert "must not be zero" in r.json()["message"]
    r = await client.post(
        "/api/2/things", json={}, headers={"requested-acks": "twin-persisted", "timeout": "0"}
    )
    assert r.status_code == 400
    r = await client.put(
        f"/api/2/things/{thing_id}", json={}, headers={"response-required": "true", "timeout": "0"}
    )
    assert r.status_code == 400
    assert (await client.get(f"/api/2/things/{thing_id}")).status_code == 404
    # alone: no response wanted, 202, and the change is applied
    r = await client.put(f"/api/2/things/{thing_id}", json={"attributes": {"a": 1}}, params={"timeout": "0"})
    assert r.status_code == 202
    assert (await client.get(f"/api/2/things/{thing_id}/attributes/a")).json() == 1


async def test_requested_acks_answers(client: httpx.AsyncClient) -> None:
    thing_id = new_id()
    # empty: the ordinary response; twin-persisted without response: 202
    r = await client.put(f"/api/2/things/{thing_id}", json={}, headers={"requested-acks": ""})
    assert r.status_code == 201
    r = await client.post(
        "/api/2/things", json={}, headers={"requested-acks": "twin-persisted", "response-required": "false"}
    )
    assert r.status_code == 202
    # only an unknown label: its own 408
    url = f"/api/2/things/{thing_id}/attributes/x"
    r = await client.put(url, json=1, params={"requested-acks": "unknown", "timeout": "1"})
    assert r.status_code == 408
    assert r.json()["error"] == "acknowledgement:request.timeout"
    # partly fulfilled: 424 with every label
    r = await client.put(
        url,
        json=2,
        params={
            "requested-acks": "twin-persisted,not-fulfilled",
            "timeout": "1s",
            "correlation-id": "partly",
        },
    )
    assert r.status_code == 424
    body = r.json()
    assert (body["twin-persisted"]["status"], body["twin-persisted"]["headers"]["correlation-id"]) == (
        204,
        "partly",
    )
    assert body["not-fulfilled"] == {
        "status": 408,
        "payload": {
            "status": 408,
            "error": "acknowledgement:request.timeout",
            "message": "The acknowledgement request reached the specified timeout of 1,000ms.",
            "description": "Try increasing the timeout and make sure that the requested acknowledgement is sent "
            "back in time.",
        },
        "headers": {"correlation-id": "partly"},
    }
    # no response wanted: 202 once the acknowledgements are settled
    r = await client.put(
        url, json=3, params={"requested-acks": "unknown", "timeout": "1", "response-required": "false"}
    )
    assert r.status_code == 202
    assert (await client.get(url)).json() == 3
