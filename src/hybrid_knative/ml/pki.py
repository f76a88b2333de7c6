"""Webhook certificates without cert-manager: a CA and a serving certificate per webhook server.

KServe's controller reads ``tls.crt``/``tls.key`` from Secret ``kserve-webhook-server-cert`` (mounted
at ``/tmp/k8s-webhook-server/serving-certs``); the API server trusts it through the ``caBundle`` of
every webhook configuration. The Training Operator's own cert rotator (open-policy-agent's
cert-controller) also reads ``ca.crt``/``ca.key`` from its Secret and keeps a certificate that is
valid, issued by that CA and not within its 90-day look-ahead — so ours is accepted as is.

Lifetimes: CA 10 years, serving certificate 1 year, re-issued on a re-run (or ``certs rotate``) when
fewer than :data:`ROTATE_BEFORE` days remain. A CA that is itself close to expiry is replaced, and the
old CA stays in the ``caBundle`` until it expires, so the API server trusts the serving certificate
the pod still has while the kubelet refreshes the mounted Secret.

Private keys only ever go into Secret ``data``; the dataclasses hide them from ``repr``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hybrid_knative.errors import PermanentError

Manifest = dict[str, Any]

CA_DAYS = 3650
CERT_DAYS = 365
ROTATE_BEFORE = datetime.timedelta(days=120)  # > the training operator rotator's 90-day look-ahead
CA_ROTATE_BEFORE = datetime.timedelta(days=400)  # a new CA before it could outlive a serving cert
DOCTOR_WARN = datetime.timedelta(days=30)
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


@dataclasses.dataclass(frozen=True)
class WebhookTarget:
    """One webhook server: its Service (the certificate's DNS names) and the Secrets it reads."""

    component: str
    namespace: str
    service: str
    secret: str  # the serving certificate (what the pod mounts)
    ca_secret: str  # where the CA key is kept (may equal ``secret`` when the server wants ca.key too)

    @property
    def dns_names(self) -> tuple[str, ...]:
        base = f"{self.service}.{self.namespace}"
        return (f"{base}.svc", f"{base}.svc.cluster.local", base, self.service)

    @property
    def ca_key_in_serving_secret(self) -> bool:
        return self.ca_secret == self.secret


KSERVE = WebhookTarget(component="kserve", namespace="kserve", service="kserve-webhook-server-service",
                       secret="kserve-webhook-server-cert", ca_secret="kserve-webhook-ca")  # noqa: S106 - names
# the operator's rotator reads ca.crt + ca.key from the same Secret (overlay: training-operator-webhook-cert)
TRAINING = WebhookTarget(component="training-operator", namespace="kubeflow", service="training-operator",
                         secret="training-operator-webhook-cert",  # noqa: S106 - Secret names
                         ca_secret="training-operator-webhook-cert")  # noqa: S106
TARGETS = {t.component: t for t in (KSERVE, TRAINING)}


@dataclasses.dataclass(frozen=True)
class WebhookPki:
    """A CA, a serving certificate it issued, and the CA bundle webhooks trust."""

    ca_cert_pem: bytes
    cert_pem: bytes
    ca_key_pem: bytes = dataclasses.field(repr=False)
    key_pem: bytes = dataclasses.field(repr=False)
    bundle_pem: bytes = b""  # current CA + a still valid previous CA (during a CA change)

    @property
    def ca_bundle(self) -> bytes:
        return self.bundle_pem or self.ca_cert_pem

    @property
    def not_after(self) -> datetime.datetime:
        return x509.load_pem_x509_certificate(self.cert_pem).not_valid_after_utc

    @property
    def ca_not_after(self) -> datetime.datetime:
        return x509.load_pem_x509_certificate(self.ca_cert_pem).not_valid_after_utc

    def secrets(self, target: WebhookTarget, labels: Mapping[str, str]) -> list[Manifest]:
        """The Secret(s) to apply: the serving certificate, and the CA (separately unless the server wants it)."""
        serving: dict[str, bytes] = {"tls.crt": self.cert_pem, "tls.key": self.key_pem, "ca.crt": self.ca_cert_pem}
        out: list[Manifest] = []
        if target.ca_key_in_serving_secret:
            serving["ca.key"] = self.ca_key_pem
        else:
            out.append(_secret(target.ca_secret, target.namespace, labels, "Opaque", {
                "ca.crt": self.ca_cert_pem, "ca.key": self.ca_key_pem, "ca-bundle.crt": self.ca_bundle}))
        out.insert(0, _secret(target.secret, target.namespace, labels, "kubernetes.io/tls", serving))
        return out


def _secret(name: str, namespace: str, labels: Mapping[str, str], kind: str, data: Mapping[str, bytes]) -> Manifest:
    return {
        "apiVersion": "v1", "kind": "Secret", "type": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "data": {k: base64.b64encode(v).decode("ascii") for k, v in data.items()},
    }


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _new_ca(target: WebhookTarget, now: datetime.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"hybrid-knative {target.component} webhook CA"),
                      x509.NameAttribute(NameOID.SERIAL_NUMBER, str(x509.random_serial_number())[:32])])
    cert = (
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
    return key, cert


def _new_serving(target: WebhookTarget, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
                 now: datetime.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = min(now + datetime.timedelta(days=CERT_DAYS), ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, target.dns_names[0])]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                     crl_sign=False, content_commitment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in target.dns_names]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def issue(target: WebhookTarget, *, now: datetime.datetime | None = None) -> WebhookPki:
    """A brand-new CA and serving certificate."""
    now = now or _now()
    ca_key, ca_cert = _new_ca(target, now)
    key, cert = _new_serving(target, ca_key, ca_cert, now)
    return WebhookPki(ca_cert_pem=_pem(ca_cert), cert_pem=_pem(cert), ca_key_pem=_key_pem(ca_key),
                      key_pem=_key_pem(key), bundle_pem=_pem(ca_cert))


def _decode(data: Mapping[str, Any] | None, key: str) -> bytes | None:
    if not data or not isinstance(data.get(key), str):
        return None
    try:
        return base64.b64decode(data[key], validate=True)
    except ValueError:
        return None


def load(serving_data: Mapping[str, Any] | None, ca_data: Mapping[str, Any] | None) -> WebhookPki | None:
    """What the cluster holds (the ``data`` of the two Secrets, base64), or ``None`` when incomplete/unreadable."""
    ca_cert_pem, ca_key_pem = _decode(ca_data, "ca.crt"), _decode(ca_data, "ca.key")
    cert_pem, key_pem = _decode(serving_data, "tls.crt"), _decode(serving_data, "tls.key")
    if not (ca_cert_pem and ca_key_pem and cert_pem and key_pem):
        return None
    try:
        x509.load_pem_x509_certificate(ca_cert_pem)
        x509.load_pem_x509_certificate(cert_pem)
        serialization.load_pem_private_key(ca_key_pem, password=None)
        serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return None
    bundle = _decode(ca_data, "ca-bundle.crt") or ca_cert_pem
    return WebhookPki(ca_cert_pem=ca_cert_pem, cert_pem=cert_pem, ca_key_pem=ca_key_pem, key_pem=key_pem,
                      bundle_pem=bundle)


def problems(pki: WebhookPki, target: WebhookTarget, *, now: datetime.datetime | None = None,
             margin: datetime.timedelta = ROTATE_BEFORE) -> list[str]:
    """Why ``pki`` must be re-issued for ``target`` (empty: it is good for at least ``margin``)."""
    now = now or _now()
    out: list[str] = []
    ca = x509.load_pem_x509_certificate(pki.ca_cert_pem)
    cert = x509.load_pem_x509_certificate(pki.cert_pem)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, Exception):  # InvalidSignature is not a ValueError
        out.append("the serving certificate was not issued by the stored CA")
    key = serialization.load_pem_private_key(pki.key_pem, password=None)
    if key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
            cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        out.append("tls.key does not belong to tls.crt")
    try:
        sans = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                   .get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        sans = set()
    if target.dns_names[0] not in sans:
        out.append(f"the certificate is not valid for {target.dns_names[0]}")
    left = cert.not_valid_after_utc - now
    if left < margin:
        out.append(f"the certificate expires in {max(left.days, 0)} days ({cert.not_valid_after_utc:%Y-%m-%d})")
    if ca.not_valid_after_utc - now < CA_ROTATE_BEFORE:
        out.append(f"the CA expires on {ca.not_valid_after_utc:%Y-%m-%d}")
    return out


def ensure(target: WebhookTarget, current: WebhookPki | None, *, force: bool = False,
           now: datetime.datetime | None = None) -> tuple[WebhookPki, list[str]]:
    """Keep ``current`` when it is good, else re-issue; returns the PKI to apply and why it changed ([] = kept).

    The CA is kept when it has more than :data:`CA_ROTATE_BEFORE` left (so only the serving certificate
    changes); a replaced CA stays in the bundle while it is valid.
    """
    now = now or _now()
    if current is None:
        return issue(target, now=now), ["no certificate yet"]
    reasons = problems(current, target, now=now)
    if not reasons and not force:
        return current, []
    if force and not reasons:
        reasons = ["rotation requested"]
    ca_cert = x509.load_pem_x509_certificate(current.ca_cert_pem)
    ca_key = serialization.load_pem_private_key(current.ca_key_pem, password=None)
    if isinstance(ca_key, ec.EllipticCurvePrivateKey) and ca_cert.not_valid_after_utc - now >= CA_ROTATE_BEFORE:
        key, cert = _new_serving(target, ca_key, ca_cert, now)
        return WebhookPki(ca_cert_pem=current.ca_cert_pem, cert_pem=_pem(cert), ca_key_pem=current.ca_key_pem,
                          key_pem=_key_pem(key), bundle_pem=_still_valid(current.ca_bundle, now)), reasons
    fresh = issue(target, now=now)
    bundle = fresh.ca_cert_pem + _still_valid(current.ca_bundle, now)  # the old CA until it expires
    return dataclasses.replace(fresh, bundle_pem=bundle), reasons


def _still_valid(bundle: bytes, now: datetime.datetime) -> bytes:
    try:
        certs = x509.load_pem_x509_certificates(bundle)
    except ValueError:
        return b""
    return b"".join(_pem(c) for c in certs if c.not_valid_after_utc > now)


def with_ca_bundle(objs: Iterable[Manifest], target: WebhookTarget, ca_bundle: bytes) -> list[Manifest]:
    """Set ``caBundle`` on every webhook that calls ``target``'s Service (others are left alone)."""
    encoded = base64.b64encode(ca_bundle).decode("ascii")
    out: list[Manifest] = []
    for obj in objs:
        if obj.get("kind") in WEBHOOK_KINDS:
            obj = {**obj, "webhooks": [_with_bundle(w, target, encoded) for w in obj.get("webhooks") or []]}
        out.append(obj)
    return out


def _with_bundle(webhook: dict[str, Any], target: WebhookTarget, encoded: str) -> dict[str, Any]:
    service = (webhook.get("clientConfig") or {}).get("service") or {}
    if service.get("name") != target.service or service.get("namespace") != target.namespace:
        return webhook
    return {**webhook, "clientConfig": {**webhook["clientConfig"], "caBundle": encoded}}


@dataclasses.dataclass(frozen=True)
class ExpiryReport:
    component: str
    ok: bool
    message: str


def expiry_report(target: WebhookTarget, serving_data: Mapping[str, Any] | None, *,
                  now: datetime.datetime | None = None, warn: datetime.timedelta = DOCTOR_WARN) -> ExpiryReport:
    """For doctor: is the serving certificate there, readable and good for at least ``warn``?"""
    now = now or _now()
    pem = _decode(serving_data, "tls.crt")
    if pem is None:
        return ExpiryReport(target.component, False, f"Secret {target.namespace}/{target.secret} has no tls.crt")
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return ExpiryReport(target.component, False, f"Secret {target.namespace}/{target.secret}: unreadable tls.crt")
    left = cert.not_valid_after_utc - now
    when = f"{cert.not_valid_after_utc:%Y-%m-%d}"
    if left <= datetime.timedelta(0):
        return ExpiryReport(target.component, False, f"webhook certificate EXPIRED on {when}: "
                            "run `hybrid-knative certs rotate`")
    if left < warn:
        return ExpiryReport(target.component, False, f"webhook certificate expires in {left.days} days ({when}): "
                            "run `hybrid-knative certs rotate`")
    return ExpiryReport(target.component, True, f"webhook certificate valid until {when}")


def target(component: str) -> WebhookTarget:
    try:
        return TARGETS[component]
    except KeyError:
        raise PermanentError(f"no webhook certificate for {component!r}",
                             resolution=f"known: {', '.join(sorted(TARGETS))}") from None


# `plan` renders objects without a cluster: Secrets and caBundles are made at enable time, so the plan
# shows them empty (and never shows a key).
PLACEHOLDER = WebhookPki(ca_cert_pem=b"", cert_pem=b"", ca_key_pem=b"", key_pem=b"", bundle_pem=b"")
REDACTED = ""


def redacted(objs: Iterable[Manifest]) -> list[Manifest]:
    """Objects with every Secret's data emptied and every webhook's caBundle removed (for plan output)."""
    out: list[Manifest] = []
    for obj in objs:
        if obj.get("kind") == "Secret":
            obj = {**obj, "data": dict.fromkeys(obj.get("data") or {}, REDACTED)}
        elif obj.get("kind") in WEBHOOK_KINDS:
            hooks = []
            for hook in obj.get("webhooks") or []:
                cc = {k: v for k, v in (hook.get("clientConfig") or {}).items() if k != "caBundle"}
                hooks.append({**hook, "clientConfig": cc})
            obj = {**obj, "webhooks": hooks}
        out.append(obj)
    return out
