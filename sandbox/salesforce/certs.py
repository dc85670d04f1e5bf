"""TLS material for the sandbox: a self-signed certificate for 127.0.0.1 and localhost.

simple-salesforce always builds ``https://`` URLs, so the sandbox must speak TLS. On first start
it writes ``cert.pem`` (the certificate clients trust through ``REQUESTS_CA_BUNDLE``) and
``key.pem`` (mode 0600) into the data dir, and on every start ``ca-bundle.pem``: the public CA
bundle (certifi, else the system bundle) plus the sandbox certificate, for processes that must
reach real HTTPS hosts too. Verification is never switched off anywhere.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

CERT_NAME = "cert.pem"
KEY_NAME = "key.pem"
BUNDLE_NAME = "ca-bundle.pem"


def _usable(cert_path: Path, hosts: tuple[str, ...]) -> bool:
    """True when the existing certificate is valid for at least a day and names every host."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    names = set(san.get_values_for_type(x509.DNSName))
    return (
        cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        and set(hosts) <= names
    )


def ensure_certificate(
    data_dir: str | os.PathLike[str], extra_hosts: tuple[str, ...] = ()
) -> tuple[Path, Path]:
    """Create ``cert.pem``/``key.pem`` if missing, expiring or not naming ``extra_hosts`` (DNS
    names other clients use, e.g. the compose service name); write ``ca-bundle.pem``."""
    d = Path(data_dir)
    d.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = d / CERT_NAME, d / KEY_NAME
    hosts = tuple(dict.fromkeys(("localhost", *extra_hosts)))
    if not (cert_path.exists() and key_path.exists() and _usable(cert_path, hosts)):
        _generate(cert_path, key_path, hosts)
        log.info("wrote a new self-signed certificate to %s", cert_path)
    _write_bundle(d / BUNDLE_NAME, cert_path)
    return cert_path, key_path


def _generate(cert_path: Path, key_path: Path, hosts: tuple[str, ...] = ("localhost",)) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Salesforce sandbox (127.0.0.1)"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "leadgen-salesforce-sync sandbox"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    *(x509.DNSName(h) for h in hosts),
                ]
            ),
            critical=False,
        )
        # A self-signed certificate that is its own trust anchor: CA:TRUE with cert signing,
        # and serverAuth so it can also be the server certificate.
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
            ),  # fmt: skip
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp_key = key_path.with_suffix(".tmp")
    fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_bytes)
    os.replace(tmp_key, key_path)
    tmp_cert = cert_path.with_suffix(".tmp")
    tmp_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp_cert, cert_path)


def _public_bundle() -> str:
    try:
        import certifi

        return Path(certifi.where()).read_text(encoding="utf-8")
    except (ImportError, OSError):
        cafile = ssl.get_default_verify_paths().cafile
        return Path(cafile).read_text(encoding="utf-8") if cafile and Path(cafile).exists() else ""


def _write_bundle(bundle_path: Path, cert_path: Path) -> None:
    text = (
        _public_bundle().rstrip("\n")
        + "\n\n# Salesforce sandbox\n"
        + cert_path.read_text(encoding="utf-8")
    )
    tmp = bundle_path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, bundle_path)
