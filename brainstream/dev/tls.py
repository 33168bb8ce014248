"""Certificates of the secure dev profile, made with ``cryptography`` (no hand-rolled crypto).

One throw-away CA per dev dir signs a server certificate for the brokers (``CN=broker``; SAN
``127.0.0.1``, ``::1`` and ``localhost``, so clients verify the host name as librdkafka does by
default). The brokers present it on every listener and use it as their client certificate
between themselves (mutual TLS on the inter-broker and controller listeners, principal
``User:broker``). Keys are P-256 ECDSA, written ``0600``; nothing here is ever logged.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 825
"""The longest validity browsers and Apple's TLS policy accept for a server certificate."""


@dataclass(frozen=True)
class Certificates:
    directory: Path

    @property
    def ca(self) -> Path:
        """The CA certificate (PEM): clients' ``ssl.ca.location``, the brokers' truststore."""
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def broker_cert(self) -> Path:
        return self.directory / "broker.crt"

    @property
    def broker_key(self) -> Path:
        return self.directory / "broker.key"

    @property
    def broker_keystore(self) -> Path:
        """Key and certificate chain in one PEM file: a Kafka ``ssl.keystore.type=PEM``."""
        return self.directory / "broker.pem"

    def complete(self) -> bool:
        files = (self.ca, self.ca_key, self.broker_cert, self.broker_key, self.broker_keystore)
        return all(f.is_file() for f in files)


def ensure_certificates(directory: Path) -> Certificates:
    """The CA and the broker certificate under ``directory``, generated on first use."""
    certs = Certificates(directory)
    if certs.complete():
        return certs
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "brainstream dev CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
        x509.DNSName("localhost"),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "broker")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ca_key_pem = ca_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(certs.ca_key, ca_key_pem, 0o600)
    _write(certs.broker_key, key_pem, 0o600)
    _write(certs.broker_cert, cert.public_bytes(pem) + ca.public_bytes(pem), 0o644)
    _write(certs.broker_keystore, key_pem + cert.public_bytes(pem) + ca.public_bytes(pem), 0o600)
    _write(certs.ca, ca.public_bytes(pem), 0o644)  # last: marks the set complete
    return certs


def _write(path: Path, data: bytes, mode: int) -> None:
    staged = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    staged.replace(path)
