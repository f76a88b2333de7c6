"""Ed25519 signatures of bundles: who made a bundle, checked against keys the site trusts.

A signature covers the exact bytes of ``bundle.json``, which holds the sha256 and size of every other
entry: a valid signature therefore vouches for every byte of the bundle. It is stored as the bundle's
second tar entry, ``bundle.sig`` (JSON: format, algorithm, key fingerprint, public key, signature).

Keys: ``bundle keygen`` writes a private key (PEM, PKCS#8, 0600) and its public key (``.pub``). A
private key readable by group or others is refused. Trusted keys: ``--trust FILE`` (repeatable), or
the colon-separated files in ``$HYBRID_KNATIVE_TRUSTED_KEYS`` (used by ``enable --bundle`` too).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hybrid_knative.errors import ConfigError, IntegrityError
from hybrid_knative.system.files import atomic_write

SIG_FORMAT = "hybrid-knative-bundle-signature/1"
MAX_KEY_FILE = 16 * 1024
ENV_TRUSTED = "HYBRID_KNATIVE_TRUSTED_KEYS"
PublicKey = Ed25519PublicKey
PrivateKey = Ed25519PrivateKey


def fingerprint(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror}") from None
    if len(data) > MAX_KEY_FILE:
        raise ConfigError(f"{path} is not a {what} (larger than {MAX_KEY_FILE} bytes)")
    return data


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """A signing key: an unencrypted Ed25519 PEM file that only its owner can read."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"signing key not found: {path} ({exc.strerror})",
                          resolution="create one with `hybrid-knative bundle keygen -o FILE`") from None
    if not stat.S_ISREG(mode):
        raise ConfigError(f"signing key {path} is not a regular file")
    if mode & 0o077:
        raise ConfigError(f"signing key {path} can be read by other users (mode {stat.S_IMODE(mode):o})",
                          resolution=f"chmod 600 {path}")
    data = _read_key_file(path, "signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{path} is not an unencrypted PEM private key",
                          resolution="create one with `hybrid-knative bundle keygen -o FILE`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 key", resolution="bundles are signed with Ed25519 keys")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    data = _read_key_file(path, "trusted key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise ConfigError(f"{path} is not a PEM public key",
                          resolution="pass the .pub file written by `hybrid-knative bundle keygen`") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} is not an Ed25519 public key")
    return key


def site_trusted_keys() -> list[Ed25519PublicKey]:
    value = os.environ.get(ENV_TRUSTED, "")
    return [load_public_key(Path(p)) for p in value.split(os.pathsep) if p.strip()]


def keygen(path: Path) -> str:
    """Write a new private key (0600) at ``path`` and its public key at ``path.pub``; return its fingerprint."""
    pub = path.with_name(path.name + ".pub")
    for target in (path, pub):
        if target.exists():
            raise ConfigError(f"{target} already exists", resolution="choose another file; keys are never overwritten")
    if not path.parent.is_dir():
        raise ConfigError(f"folder not found: {path.parent}")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    atomic_write(path, private.decode("ascii"), mode=0o600)
    atomic_write(pub, public.decode("ascii"), mode=0o644)
    return fingerprint(key.public_key())


def sign(manifest: bytes, key: Ed25519PrivateKey) -> bytes:
    public = key.public_key()
    doc = {"format": SIG_FORMAT, "algorithm": "ed25519", "key": fingerprint(public),
           "public_key": public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex(),
           "signature": key.sign(manifest).hex()}
    return json.dumps(doc, sort_keys=True).encode()


def check(manifest: bytes, signature: bytes | None, trusted: Sequence[Ed25519PublicKey], *, what: str) -> str | None:
    """The fingerprint of the key that signed ``manifest`` (None: unsigned). With ``trusted`` keys, the
    signature must exist and verify with one of them; without, it is only parsed (and proves nothing)."""
    if signature is None:
        if trusted:
            raise IntegrityError(f"{what} is not signed, and this site trusts only signed bundles",
                                 resolution="ask its maker for a bundle made with `bundle create --sign-key`")
        return None
    try:
        doc = json.loads(signature)
        ok = isinstance(doc, dict) and doc.get("format") == SIG_FORMAT and doc.get("algorithm") == "ed25519"
        key_id, sig = (str(doc["key"]), bytes.fromhex(str(doc["signature"]))) if ok else ("", b"")
    except (ValueError, KeyError, RecursionError):
        ok, key_id, sig = False, "", b""
    if not ok:
        raise IntegrityError(f"{what} has a malformed signature entry",
                             resolution="the bundle was modified; re-create it with `bundle create --sign-key`")
    if not trusted:
        return key_id
    for key in trusted:
        if fingerprint(key) != key_id:
            continue
        try:
            key.verify(sig, manifest)
        except InvalidSignature:
            break
        return key_id
    raise IntegrityError(f"{what}: its signature is not valid for any trusted key",
                         details=f"signed by key {key_id[:64]}; trusted: "
                         + ", ".join(fingerprint(k) for k in trusted),
                         resolution="the bundle was modified after signing, or signed by a key this site does "
                         "not trust; get a bundle signed by a trusted key")
