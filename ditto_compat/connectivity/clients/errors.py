"""Why a client adapter could not publish a message; the outbound path logs the failure and goes on."""

from __future__ import annotations

from collections.abc import Mapping


class PublishFailed(Exception):
    """The broker or endpoint did not accept the message (negative acknowledgement, no connection, timeout)."""


class HttpPushFailed(PublishFailed):
    """An HTTP endpoint answered a pushed message with a status other than 2xx; the answer is kept so that it
    can be reported (Ditto maps it into an acknowledgement when the target issues one)."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes, url: str) -> None:
        super().__init__(f"HTTP {status} from {url}")
        self.status = status
        self.headers = dict(headers)
        self.body = body
        self.url = url
