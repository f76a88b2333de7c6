"""Webhook PKI without cert-manager: chain verification, real TLS handshake, rotation, doctor expiry."""

from __future__ import annotations

import base64
import datetime
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import DNSName
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from hybrid_knative.ml import pki

NOW = datetime.datetime(2027, 1, 1, tzinfo=datetime.timezone.utc)
LABELS = {"app.kubernetes.io/managed-by": "hybrid-knative", "hybrid-knative.dev/component": "kserve"}


def verify_chain(bundle: bytes, cert_pem: bytes, name: str, when: datetime.datetime) -> None:
    store = Store(x509.load_pem_x509_certificates(bundle))
    verifier = PolicyBuilder().store(store).time(when).build_server_verifier(DNSName(name))
    verifier.verify(x509.load_pem_x509_certificate(cert_pem), [])


@pytest.mark.parametrize("target", [pki.KSERVE, pki.TRAINING], ids=lambda t: t.component)
def test_issued_chain_verifies_for_the_service_name(target: pki.WebhookTarget) -> None:
    issued = pki.issue(target, now=NOW)
    verify_chain(issued.ca_bundle, issued.cert_pem, target.dns_names[0], NOW + datetime.timedelta(days=1))
    with pytest.raises(VerificationError):
        verify_chain(issued.ca_bundle, issued.cert_pem, "other.kserve.svc", NOW + datetime.timedelta(days=1))
    other = pki.issue(target, now=NOW)
    with pytest.raises(VerificationError):  # a different CA does not vouch for it
        verify_chain(other.ca_bundle, issued.cert_pem, target.dns_names[0], NOW + datetime.timedelta(days=1))
    assert pki.problems(issued, target, now=NOW) == []


def test_keys_never_in_repr() -> None:
    issued = pki.issue(pki.KSERVE, now=NOW)
    text = repr(issued)
    assert "PRIVATE KEY" not in text
    assert issued.key_pem.decode() not in text


def test_kserve_secrets_keep_the_ca_key_out_of_the_pod() -> None:
    issued = pki.issue(pki.KSERVE, now=NOW)
    serving, ca = issued.secrets(pki.KSERVE, LABELS)
    assert serving["metadata"]["name"] == "kserve-webhook-server-cert"
    assert serving["type"] == "kubernetes.io/tls"
    assert set(serving["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    assert ca["metadata"]["name"] == "kserve-webhook-ca"
    assert "ca.key" in ca["data"]
    assert pki.load(serving["data"], ca["data"]) == issued


def test_training_secret_carries_what_its_rotator_reads() -> None:
    issued = pki.issue(pki.TRAINING, now=NOW)
    (serving,) = issued.secrets(pki.TRAINING, LABELS)
    assert set(serving["data"]) == {"tls.crt", "tls.key", "ca.crt", "ca.key"}
    # the rotator re-issues when fewer than 90 days remain; ours always leaves more
    assert datetime.timedelta(days=90) < pki.ROTATE_BEFORE
    assert issued.not_after - NOW > datetime.timedelta(days=300)


def test_ca_bundle_on_every_webhook_of_the_target_only() -> None:
    issued = pki.issue(pki.KSERVE, now=NOW)
    objs = [
        {"kind": "ValidatingWebhookConfiguration", "webhooks": [
            {"name": "a",
             "clientConfig": {"service": {"name": "kserve-webhook-server-service", "namespace": "kserve"}}},
            {"name": "b", "clientConfig": {"service": {"name": "other", "namespace": "kserve"}}},
        ]},
        {"kind": "ConfigMap", "data": {}},
    ]
    out = pki.with_ca_bundle(objs, pki.KSERVE, issued.ca_bundle)
    hooks = out[0]["webhooks"]
    assert base64.b64decode(hooks[0]["clientConfig"]["caBundle"]) == issued.ca_cert_pem
    assert "caBundle" not in hooks[1]["clientConfig"]
    assert "caBundle" not in objs[0]["webhooks"][0]["clientConfig"]  # input untouched
    assert out[1] == objs[1]


def test_rerun_keeps_a_good_certificate_and_rotates_one_close_to_expiry() -> None:
    first, why = pki.ensure(pki.KSERVE, None, now=NOW)
    assert why == ["no certificate yet"]
    kept, why = pki.ensure(pki.KSERVE, first, now=NOW + datetime.timedelta(days=100))
    assert kept is first and why == []
    later = NOW + datetime.timedelta(days=300)  # 65 days left < 120
    rotated, why = pki.ensure(pki.KSERVE, first, now=later)
    assert any("expires in" in w for w in why)
    assert rotated.cert_pem != first.cert_pem and rotated.key_pem != first.key_pem
    assert rotated.ca_cert_pem == first.ca_cert_pem  # same CA: caBundle stays valid for both
    verify_chain(rotated.ca_bundle, rotated.cert_pem, pki.KSERVE.dns_names[0], later)
    assert rotated.not_after - later >= datetime.timedelta(days=364)


def test_forced_rotation_and_ca_replacement_keeps_the_old_ca_trusted() -> None:
    first = pki.issue(pki.KSERVE, now=NOW)
    forced, why = pki.ensure(pki.KSERVE, first, force=True, now=NOW)
    assert why == ["rotation requested"] and forced.cert_pem != first.cert_pem
    late = first.ca_not_after - datetime.timedelta(days=200)  # the CA itself is due
    renewed, why = pki.ensure(pki.KSERVE, first, now=late)
    assert any("CA expires" in w for w in why)
    assert renewed.ca_cert_pem != first.ca_cert_pem
    # the pod may still serve the old certificate for a minute: the bundle trusts both CAs
    verify_chain(renewed.ca_bundle, renewed.cert_pem, pki.KSERVE.dns_names[0], late)
    assert first.ca_cert_pem in renewed.ca_bundle
    verify_chain(renewed.ca_bundle, first.cert_pem, pki.KSERVE.dns_names[0], NOW + datetime.timedelta(days=1))


def test_tampered_secret_is_reissued() -> None:
    a = pki.issue(pki.KSERVE, now=NOW)
    b = pki.issue(pki.KSERVE, now=NOW)
    mixed = pki.WebhookPki(ca_cert_pem=a.ca_cert_pem, ca_key_pem=a.ca_key_pem, cert_pem=b.cert_pem, key_pem=a.key_pem)
    reasons = pki.problems(mixed, pki.KSERVE, now=NOW)
    assert "the serving certificate was not issued by the stored CA" in reasons
    assert "tls.key does not belong to tls.crt" in reasons
    assert pki.load({"tls.crt": "!!"}, {}) is None


def test_doctor_expiry_report() -> None:
    issued = pki.issue(pki.KSERVE, now=NOW)
    serving = issued.secrets(pki.KSERVE, LABELS)[0]["data"]
    assert pki.expiry_report(pki.KSERVE, serving, now=NOW).ok
    soon = pki.expiry_report(pki.KSERVE, serving, now=issued.not_after - datetime.timedelta(days=10))
    assert not soon.ok and "certs rotate" in soon.message and "10 days" in soon.message
    gone = pki.expiry_report(pki.KSERVE, serving, now=issued.not_after + datetime.timedelta(days=1))
    assert not gone.ok and "EXPIRED" in gone.message
    assert not pki.expiry_report(pki.KSERVE, None, now=NOW).ok


def test_real_tls_handshake_with_the_issued_certificate(tmp_path: Path) -> None:
    """A TLS server on 127.0.0.1 with the serving cert; a client trusting only the caBundle (as the API server)."""
    issued = pki.issue(pki.KSERVE)
    (tmp_path / "tls.crt").write_bytes(issued.cert_pem)
    key = tmp_path / "tls.key"
    key.write_bytes(issued.key_pem)
    key.chmod(0o600)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "tls.crt", key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"ok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cadata=issued.ca_bundle.decode())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            client_ctx.wrap_socket(raw, server_hostname=pki.KSERVE.dns_names[0]) as tls:
        assert tls.recv(2) == b"ok"
    thread.join(10)
    listener.close()
