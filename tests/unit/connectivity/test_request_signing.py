"""HMAC request signing of HTTP push (``connectivity-hmac-signing``): AWS Signature Version 4 against AWS's own
published examples, Azure Monitor's SharedKey and Azure SAS tokens against their documented formulas."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote

import httpx
import pytest

from ditto_compat.connectivity.clients.request_signing import (
    AwsSigning,
    AzMonitorSigning,
    AzSaslSigning,
    SigningInvalid,
    request_signing,
)
from ditto_compat.connectivity.definition import connection_from_json

NOW = datetime(2015, 8, 30, 12, 36, 0, tzinfo=UTC)
AWS_EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def test_aws_get_vanilla_of_the_signature_v4_test_suite() -> None:
    signing = AwsSigning(
        "us-east-1", "service", "AKIDEXAMPLE", AWS_EXAMPLE_SECRET, canonical_headers=("host", "x-amz-date")
    )
    request = httpx.Request("GET", "https://example.amazonaws.com/")
    signing.sign(request, NOW)
    assert request.headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )
    assert request.headers["x-amz-date"] == "20150830T123600Z"
    assert "x-amz-content-sha256" not in request.headers  # EXCLUDED by default


def test_aws_iam_list_users_example_with_a_query_and_content_type() -> None:
    signing = AwsSigning(
        "us-east-1",
        "iam",
        "AKIDEXAMPLE",
        AWS_EXAMPLE_SECRET,
        canonical_headers=("Content-Type", "host", "x-amz-date"),
    )
    request = httpx.Request(
        "GET",
        "https://iam.amazonaws.com/?Version=2010-05-08&Action=ListUsers",  # canonical order is by name
        headers={"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    signing.sign(request, NOW)
    assert request.headers["authorization"].endswith(
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    )


def test_aws_payload_hash_path_and_query_canonicalisation() -> None:
    included = AwsSigning("eu-west-1", "s3", "AK", "SK", double_encode=False, x_amz_content_sha256="INCLUDED")
    request = httpx.Request("PUT", "https://bucket.s3.amazonaws.com/a%20b/c:1", content=b"payload")
    included.sign(request, NOW)
    assert request.headers["x-amz-content-sha256"] == hashlib.sha256(b"payload").hexdigest()
    assert "SignedHeaders=host;x-amz-content-sha256," in request.headers["authorization"]
    canonical = included.canonical_request(request, "20150830T123600Z", "h")
    assert canonical.split("\n")[1] == "/a%20b/c:1"  # S3: the path as sent

    twice = AwsSigning("eu-west-1", "sns", "AK", "SK")
    request = httpx.Request("GET", "https://sns.amazonaws.com/a%20b/c:1/?b=2&a=1&a=0&c=x%20y&d=%3D")
    lines = twice.canonical_request(request, "20150830T123600Z", "h").split("\n")
    assert lines[1] == "/a%2520b/c%253A1/"
    assert lines[2] == "a=0&a=1&b=2&c=x%20y&d=%3D"
    unsigned = AwsSigning("eu-west-1", "s3", "AK", "SK", x_amz_content_sha256="UNSIGNED")
    request = httpx.Request("PUT", "https://bucket.s3.amazonaws.com/x", content=b"payload")
    unsigned.sign(request, NOW)
    assert request.headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"


def test_azure_monitor_shared_key() -> None:
    key = base64.b64encode(b"workspace key bytes").decode()
    signing = AzMonitorSigning("workspace-1", base64.b64decode(key))
    body = b'[{"thing":"x"}]'
    request = httpx.Request(
        "POST",
        "https://workspace-1.ods.opinsights.azure.com/api/logs?api-version=2016-04-01",
        content=body,
        headers={"content-type": "application/json"},
    )
    signing.sign(request, NOW)
    assert request.headers["x-ms-date"] == "Sun, 30 Aug 2015 12:36:00 GMT"
    # the Data Collector API's string to sign: verb, length, type, x-ms-date, resource
    expected = "POST\n15\napplication/json\nx-ms-date:Sun, 30 Aug 2015 12:36:00 GMT\n/api/logs"
    digest = hmac.new(b"workspace key bytes", expected.encode(), hashlib.sha256).digest()
    assert request.headers["authorization"] == f"SharedKey workspace-1:{base64.b64encode(digest).decode()}"


def test_azure_shared_access_signature() -> None:
    signing = AzSaslSigning("iothubowner", b"hub key", "myHub.azure-devices.net", timedelta(minutes=10))
    request = httpx.Request("POST", "https://myHub.azure-devices.net/devices/d/messages/events")
    signing.sign(request, NOW)
    scheme, _, token = request.headers["authorization"].partition(" ")
    assert scheme == "SharedAccessSignature"
    fields = {k: v[0] for k, v in parse_qs(token).items()}
    expiry = int((NOW + timedelta(minutes=10)).timestamp())
    assert fields["sr"] == "myHub.azure-devices.net" and fields["skn"] == "iothubowner"
    assert fields["se"] == str(expiry)
    digest = hmac.new(
        b"hub key", f"{quote('myHub.azure-devices.net', safe='')}\n{expiry}".encode(), hashlib.sha256
    )
    assert fields["sig"] == base64.b64encode(digest.digest()).decode()


def hmac_connection(algorithm: str, parameters: dict[str, Any]) -> Any:
    doc = {
        "connectionType": "http-push",
        "connectionStatus": "closed",
        "uri": "https://example.com",
        "credentials": {"type": "hmac", "algorithm": algorithm, "parameters": parameters},
    }
    return connection_from_json(doc, "signing")


def test_signing_from_a_definition() -> None:
    aws = request_signing(
        hmac_connection(
            "aws4-hmac-sha256",
            {
                "region": "r",
                "service": "s",
                "accessKey": "a",
                "secretKey": "k",
                "doubleEncode": False,
                "canonicalHeaders": ["host", "x-amz-date"],
                "xAmzContentSha256": "included",
            },
        )
    )
    assert isinstance(aws, AwsSigning) and not aws.double_encode and aws.x_amz_content_sha256 == "INCLUDED"
    assert aws.signed_headers == ("host", "x-amz-content-sha256", "x-amz-date")
    sasl = request_signing(
        hmac_connection("az-sasl", {"sharedKeyName": "n", "sharedKey": "a2V5", "endpoint": "e", "ttl": "10m"})
    )
    assert isinstance(sasl, AzSaslSigning) and sasl.ttl == timedelta(minutes=10) and sasl.shared_key == b"key"
    with pytest.raises(SigningInvalid):
        request_signing(
            hmac_connection("az-monitor-2016-04-01", {"workspaceId": "w", "sharedKey": "not base64!"})
        )
