"""htpasswd entries as nginx reads them: apr1, bcrypt, {SHA} and {PLAIN}."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import bcrypt
import pytest

from ditto_compat.auth.authenticator import Authenticator, basic_credentials
from ditto_compat.auth.htpasswd import Htpasswd, apr1_hash, verify_hash
from ditto_compat.errors import AuthenticationFailed

# produced by `openssl passwd -apr1 -salt abcdefgh secret` (the same algorithm as `htpasswd -m`)
APR1_SECRET = "$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/"


def test_apr1_matches_openssl() -> None:
    assert apr1_hash("secret", "abcdefgh") == APR1_SECRET
    assert verify_hash("secret", APR1_SECRET)
    assert not verify_hash("Secret", APR1_SECRET)


@pytest.mark.parametrize("prefix", ["$2y$", "$2a$", "$2b$"])
def test_bcrypt_variants(prefix: str) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    stored = prefix + hashed[4:]
    assert verify_hash("pw", stored)
    assert not verify_hash("other", stored)


def test_sha_and_plain_and_unknown() -> None:
    sha = "{SHA}" + base64.b64encode(hashlib.sha1(b"pw").digest()).decode()
    assert verify_hash("pw", sha)
    assert not verify_hash("px", sha)
    assert verify_hash("pw", "{PLAIN}pw")
    assert not verify_hash("pw", "$6$unsupported$xyz")


def test_file_with_comments_and_verification_cache(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(f"# users\nalice:{APR1_SECRET}\n\nbob:{{PLAIN}}builder\n")
    users = Htpasswd.from_file(path)
    assert users.verify("alice", "secret")
    assert users.verify("alice", "secret")  # served from the cache the second time
    assert not users.verify("alice", "wrong")
    assert users.verify("bob", "builder")
    assert not users.verify("carol", "secret")


def test_authenticator_subjects() -> None:
    auth = Authenticator(Htpasswd.single("u", "p"), pre_authenticated=True, devops=Htpasswd.single("d", "f"))
    header = "Basic " + base64.b64encode(b"u:p").decode()
    assert auth.authenticate({"authorization": header}, {}).subjects == ("nginx:u",)
    pre = auth.authenticate({"x-ditto-pre-authenticated": "nginx:a, google:b"}, {})
    assert pre.subjects == ("nginx:a", "google:b")
    assert pre.default_subject == "nginx:a"
    assert auth.authenticate({}, {"x-ditto-pre-authenticated": "x:y"}).subjects == ("x:y",)
    with pytest.raises(AuthenticationFailed) as failed:
        auth.authenticate({}, {})
    assert failed.value.headers["www-authenticate"].startswith("Basic")
    assert basic_credentials("Basic !!!") is None
    assert basic_credentials("Basic " + base64.b64encode(b"nocolon").decode()) is None
