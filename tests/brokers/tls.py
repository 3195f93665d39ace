"""Certificates for the TLS tests, made with the ``openssl`` command line tool (Debian's ``openssl`` package, on
every machine of ours): a CA, a server certificate for 127.0.0.1 and a client certificate signed by it, and a
second CA that signed nothing the servers use. EC P-256 keys, valid for two days."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests import services

OPENSSL = "openssl"
_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Certificates:
    directory: Path

    def path(self, name: str) -> Path:
        return self.directory / name

    def text(self, name: str) -> str:
        return self.path(name).read_text()

    @property
    def ca(self) -> str:
        return self.text("ca.crt")

    @property
    def other_ca(self) -> str:
        return self.text("other-ca.crt")

    def client_credentials(self, key: str = "client.key") -> dict[str, str]:
        """Ditto's ``credentials`` of type ``client-cert`` (``connectivity-tls-certificates``)."""
        return {"type": "client-cert", "cert": self.text("client.crt"), "key": self.text(key)}


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run([OPENSSL, *args], cwd=directory, check=True, capture_output=True)


def make_certificates(directory: Path) -> Certificates:
    """Writes ``ca.crt``, ``server.crt``/``server.key`` (SAN IP:127.0.0.1), ``client.crt``/``client.key`` (PKCS8),
    ``client-sec1.key`` (the same key in the traditional format Ditto refuses) and ``other-ca.crt``; raises
    ServiceUnavailable without the openssl tool."""
    if shutil.which(OPENSSL) is None:
        raise services.ServiceUnavailable("openssl not installed (apt-get install openssl)")
    directory.mkdir(parents=True, exist_ok=True)
    days = ["-days", "2"]
    for ca in ("ca", "other-ca"):
        _openssl(
            directory,
            "req",
            "-x509",
            *_EC,
            "-keyout",
            f"{ca}.key",
            "-out",
            f"{ca}.crt",
            *days,
            "-subj",
            f"/CN={ca}",
        )
    (directory / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, subject, extensions in (
        ("server", "/CN=127.0.0.1", ["-extfile", "server.ext"]),
        ("client", "/CN=ditto-compat", []),
    ):
        _openssl(directory, "req", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject)
        _openssl(
            directory,
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            *days,
            *extensions,
        )
    _openssl(directory, "ec", "-in", "client.key", "-out", "client-sec1.key")
    # a broker started as root reads its files after switching to its own user
    directory.chmod(0o755)
    for file in directory.iterdir():
        file.chmod(0o644)
    return Certificates(directory)
