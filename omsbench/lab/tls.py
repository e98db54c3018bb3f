"""Certificates for the private servers, so TLS is on by default and tested like the rest.

A production server has its own; an endpoint's ``ssl`` (pymysql's options: ``ca``, ``cert``,
``key``, ``check_hostname``) verifies it the same way.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_VALID = datetime.timedelta(days=3650)


def ensure(folder: Path, address: str = "127.0.0.1") -> None:
    """Issue the certificates once: a server keeps its CA across restarts, so clients keep trusting it."""
    if not (folder / "server-cert.pem").exists():
        issue(folder, address)


def issue(folder: Path, address: str) -> None:
    """Write ``ca.pem`` and a server certificate for ``address`` signed by it (``server-cert.pem``,
    ``server-key.pem``: the names OceanBase looks for in its wallet, and MariaDB is told)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "omsbench private CA")])
    ca = _certificate(ca_name, ca_name, ca_key.public_key(), ca=True).sign(ca_key, hashes.SHA256())
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)])
    server = (
        _certificate(name, ca_name, key.public_key(), ca=False)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "server-key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (folder / "server-key.pem").chmod(0o600)
    (folder / "server-cert.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))


def _certificate(subject, issuer, public_key, ca: bool) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
