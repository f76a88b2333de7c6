"""Validators of user input shared by Config and the layers above (pure, core layer)."""

from __future__ import annotations

import ipaddress
import re

from hybrid_knative.errors import ConfigError

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def validate_domain(text: str, *, what: str = "--domain") -> str:
    """An RFC 1123 domain name (lower-cased, without a trailing dot), or a ConfigError saying why not."""
    name = text.strip().lower().removesuffix(".")
    resolution = (f"pass {what} with a DNS name such as apps.example.com: labels of letters, digits and "
                  "hyphens (not at either end), 1-63 characters each, at least two labels, 253 characters at most")
    if not name:
        raise ConfigError(f"{what} is empty", resolution=resolution)
    if len(name) > 253:
        raise ConfigError(f"{what} {text!r} is longer than 253 characters", resolution=resolution)
    labels = name.split(".")
    if len(labels) < 2:
        raise ConfigError(f"{what} {text!r} has a single label; Knative needs a domain with at least two",
                          resolution=resolution)
    for label in labels:
        if not _LABEL.match(label):
            raise ConfigError(f"{what} {text!r} is not a valid domain name: label {label!r} breaks RFC 1123",
                              resolution=resolution)
    if labels[-1].isdigit():
        raise ConfigError(f"{what} {text!r} ends in a numeric label (an IP address is not a domain)",
                          resolution=resolution)
    return name


def parse_ip(text: str, *, what: str = "--ingress-ip") -> str:
    """An IPv4 or IPv6 address in canonical form, or a ConfigError."""
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        raise ConfigError(f"{what} {text!r} is not an IP address",
                          resolution=f"pass {what} with an IPv4 or IPv6 address of this node, "
                          "e.g. 192.168.1.20") from None
    if addr.is_unspecified or addr.is_multicast or addr.is_loopback:
        raise ConfigError(f"{what} {text!r} cannot carry traffic to the ingress (unspecified, loopback or multicast)",
                          resolution=f"pass {what} with an address other machines reach this node on")
    return str(addr)


def split_server(server: str) -> tuple[str, int]:
    """``IP``, ``IP:PORT`` or ``[IPv6]:PORT`` → (ip, port); ConfigError otherwise."""
    text = server.strip()
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = _port(rest.removeprefix(":"), server)
    elif text.count(":") == 1:
        host, _, rest = text.partition(":")
        port = _port(rest, server)
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        raise ConfigError(f"not a DNS server address: {server!r}", resolution="use IP or IP:PORT") from None


def _port(text: str, server: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigError(f"bad port in DNS server address {server!r}", resolution="use IP or IP:PORT")
    return int(text)
