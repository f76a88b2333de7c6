"""The hub's own CA and server certificate (created once, keys stored 0600) and certificate pinning."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import ipaddress
import ssl
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hybrid_knative.errors import PermanentError
from hybrid_knative.system.files import atomic_write

CA_DAYS = 3650
SERVER_DAYS = 825


@dataclasses.dataclass(frozen=True)
class HubPki:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    fingerprint: str  # SHA-256 of the CA certificate (DER), lowercase hex

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.server_cert, self.server_key)
        return ctx

    def ca_pem(self) -> bytes:
        return self.ca_cert.read_bytes()


def fingerprint_of_pem(pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def ensure_pki(folder: Path, *, cluster_name: str, addresses: Sequence[str] = ()) -> HubPki:
    """Load the hub's CA and server certificate from ``folder``; create what is missing.

    The CA is created once and kept (its fingerprint is in every enrolment string). The server
    certificate is re-issued by the same CA when it is missing or about to expire.
    """
    if not folder.parent.is_dir():  # the hub's state folder: private whatever the umask
        folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder.parent.chmod(0o700)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    ca_cert_path, ca_key_path = folder / "ca.crt", folder / "ca.key"
    cert_path, key_path = folder / "server.crt", folder / "server.key"
    try:
        if ca_cert_path.is_file() and ca_key_path.is_file():
            ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
            ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
            if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
                raise ValueError("the CA key is not an EC key")
        else:
            ca_key = ec.generate_private_key(ec.SECP256R1())
            ca_cert = _ca_certificate(ca_key, cluster_name)
            atomic_write(ca_key_path, _key_pem(ca_key), mode=0o600)
            atomic_write(ca_cert_path, ca_cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
            cert_path.unlink(missing_ok=True)
        if not _server_cert_usable(cert_path, key_path, ca_cert):
            key = ec.generate_private_key(ec.SECP256R1())
            cert = _server_certificate(key, ca_key, ca_cert, cluster_name, addresses)
            atomic_write(key_path, _key_pem(key), mode=0o600)
            atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    except (ValueError, TypeError) as exc:
        raise PermanentError(f"the hub's certificates in {folder} are unreadable: {exc}",
                             resolution="restore them from a backup; deleting them creates a new CA and "
                             "invalidates every enrolment string") from None
    fingerprint = hashlib.sha256(ca_cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return HubPki(ca_cert_path, cert_path, key_path, fingerprint)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _ca_certificate(key: ec.EllipticCurvePrivateKey, cluster_name: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"hybrid-knative hub CA ({cluster_name})"[:64])])
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _server_certificate(key: ec.EllipticCurvePrivateKey, ca_key: ec.EllipticCurvePrivateKey,
                        ca_cert: x509.Certificate, cluster_name: str,
                        addresses: Sequence[str]) -> x509.Certificate:
    sans: list[x509.GeneralName] = [x509.DNSName("hybrid-knative-hub")]
    for address in addresses:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            sans.append(x509.DNSName(address))
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hybrid-knative hub")]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _server_cert_usable(cert_path: Path, key_path: Path, ca_cert: x509.Certificate) -> bool:
    if not (cert_path.is_file() and key_path.is_file()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, Exception):
        return False
    return cert.not_valid_after_utc > _now() + datetime.timedelta(days=30)
