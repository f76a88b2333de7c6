"""Enrolment strings (``hk1:…``) and tokens: strict parsing, never a partial result.

An enrolment string carries everything a device needs to join, like kubeadm's token + discovery hash::

    hk1:<token-id>.<secret>@<host:port>[,<host:port>…]/<ca-sha256>

* ``token-id``: 16 lowercase hex characters (public; names the token in lists and logs);
* ``secret``: 40 lowercase hex characters (160 random bits; only its SHA-256 is stored by the hub);
* hub addresses: IPv4 ``a.b.c.d:port``, IPv6 ``[addr]:port`` or a DNS name ``name:port`` (1–8 of them);
* ``ca-sha256``: 64 lowercase hex characters, the SHA-256 of the hub CA certificate (DER). The device
  refuses any hub whose CA does not match it.

This module is imported by the snap's ``configure`` hook (``parse_enrolment``): stdlib only.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re

from hybrid_knative.errors import ConfigError

PREFIX = "hk1:"
MAX_LENGTH = 1024
MAX_HUBS = 8
TOKEN_ID_HEX = 16
SECRET_HEX = 40

_TOKEN_ID = re.compile(r"[0-9a-f]{16}")
_SECRET = re.compile(r"[0-9a-f]{40}")
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_TOKEN = re.compile(r"([0-9a-f]{16})\.([0-9a-f]{40})")
_DNS_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")

_RESOLUTION = ("copy the whole string printed by `hybrid-knative token create` on the hub "
               "(it starts with hk1: and has no spaces)")


@dataclasses.dataclass(frozen=True, order=True)
class HubAddress:
    host: str  # an IPv4/IPv6 address (no brackets) or a DNS name
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclasses.dataclass(frozen=True)
class Token:
    """A join token ``<id>.<secret>``; the secret never appears in repr()."""

    token_id: str
    secret: str = dataclasses.field(repr=False)

    def __str__(self) -> str:
        return f"{self.token_id}.{self.secret}"


@dataclasses.dataclass(frozen=True)
class Enrolment:
    token: Token
    hubs: tuple[HubAddress, ...]
    ca_fingerprint: str

    def __str__(self) -> str:
        return format_enrolment(self)


def parse_token(text: str) -> Token:
    """``<16 hex>.<40 hex>``; raises ConfigError (which never echoes the secret)."""
    if not isinstance(text, str):
        raise ConfigError("a join token must be text")
    match = _TOKEN.fullmatch(text.strip())
    if not match:
        raise ConfigError("not a join token (expected 16 hex characters, a dot, 40 hex characters)",
                          resolution="copy the token printed by `hybrid-knative token create`")
    return Token(match[1], match[2])


def parse_fingerprint(text: str) -> str:
    value = text.strip().lower()
    if value.startswith("sha256:"):
        value = value[len("sha256:"):]
    if not _FINGERPRINT.fullmatch(value):
        raise ConfigError(f"not a CA fingerprint: {text[:80]!r}", resolution="use the 64 hex characters of a SHA-256")
    return value


def parse_hub_address(text: str) -> HubAddress:
    """``a.b.c.d:port``, ``[v6]:port`` or ``name:port``."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ConfigError(f"bad hub address {text[:80]!r}: IPv6 needs the form [address]:port")
        try:
            ip6 = ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"bad hub address {text[:80]!r}: not an IPv6 address") from None
        host = str(ip6)
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise ConfigError(f"bad hub address {text[:80]!r}: expected host:port")
        try:
            host = str(ipaddress.IPv4Address(host))
        except ValueError:
            if not _valid_dns_name(host):
                raise ConfigError(f"bad hub address {text[:80]!r}: not an IPv4 address or DNS name") from None
            host = host.lower()
    if not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535:
        raise ConfigError(f"bad hub address {text[:80]!r}: the port must be 1-65535")
    return HubAddress(host, int(port))


def _valid_dns_name(name: str) -> bool:
    if len(name) > 253 or name.endswith("."):
        return False
    labels = name.split(".")
    if all(label.isdigit() for label in labels):
        return False  # looks like a (bad) IPv4 address
    return all(_DNS_LABEL.fullmatch(label) for label in labels)


def parse_enrolment(s: str) -> Enrolment:
    """Parse an ``hk1:`` enrolment string; raises ConfigError with a clear, secret-free message."""
    if not isinstance(s, str):
        raise ConfigError("an enrolment string must be text", resolution=_RESOLUTION)
    text = s.strip()
    if len(text) > MAX_LENGTH:
        raise ConfigError(f"enrolment string too long ({len(text)} characters, at most {MAX_LENGTH})",
                          resolution=_RESOLUTION)
    if not text.startswith(PREFIX):
        raise ConfigError("not an enrolment string (it must start with hk1:)", resolution=_RESOLUTION)
    if not text.isascii() or any(c.isspace() or not c.isprintable() for c in text):
        raise ConfigError("enrolment string contains spaces or non-ASCII characters", resolution=_RESOLUTION)
    body = text[len(PREFIX):]
    token_part, at, rest = body.partition("@")
    if not at:
        raise ConfigError("enrolment string has no hub address (missing @)", resolution=_RESOLUTION)
    token = parse_token(token_part)
    hubs_part, slash, fingerprint = rest.rpartition("/")
    if not slash:
        raise ConfigError("enrolment string has no CA fingerprint (missing /)", resolution=_RESOLUTION)
    if not _FINGERPRINT.fullmatch(fingerprint):
        raise ConfigError("enrolment string has a malformed CA fingerprint (expected 64 lowercase hex characters)",
                          resolution=_RESOLUTION)
    items = hubs_part.split(",")
    if not 1 <= len(items) <= MAX_HUBS or any(not item for item in items):
        raise ConfigError(f"enrolment string must list 1-{MAX_HUBS} hub addresses separated by commas",
                          resolution=_RESOLUTION)
    hubs = tuple(parse_hub_address(item) for item in items)
    if len(set(hubs)) != len(hubs):
        raise ConfigError("enrolment string lists a hub address twice", resolution=_RESOLUTION)
    return Enrolment(token, hubs, fingerprint)


def format_enrolment(enrolment: Enrolment) -> str:
    hubs = ",".join(str(h) for h in enrolment.hubs)
    return f"{PREFIX}{enrolment.token}@{hubs}/{enrolment.ca_fingerprint}"
