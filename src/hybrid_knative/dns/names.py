"""Domain names: RFC 1123 validation, the three domain modes, service host names and URLs. Pure."""

from __future__ import annotations

import ipaddress
import re

from hybrid_knative.errors import ConfigError

DOMAIN_MODES = ("local", "magic", "custom")
DEFAULT_ZONE = "hk.internal"
MAGIC_SUFFIX = "sslip.io"
#: Knative's domain-template (config-network): one flat label per service, so one wildcard
#: record (and one wildcard certificate) covers every service.
DOMAIN_TEMPLATE = "{{.Name}}-{{.Namespace}}.{{.Domain}}"

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DNS1123_LABEL = _LABEL  # Kubernetes names of services and namespaces follow the same rule


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


def magic_domain(ingress_ip: str) -> str:
    """``<ip>.sslip.io``: sslip.io answers with the address written in the name (IPv6 with dashes)."""
    addr = ipaddress.ip_address(ingress_ip)
    text = str(addr) if addr.version == 4 else str(addr).replace(":", "-")
    return f"{text}.{MAGIC_SUFFIX}"


def record_type(ip: str) -> str:
    return "A" if ipaddress.ip_address(ip).version == 4 else "AAAA"


def wildcard_record(domain: str, ip: str) -> str:
    """The zone-file line a ``custom`` domain needs, e.g. ``*.apps.example.com. IN A 10.0.0.5``."""
    return f"*.{domain}. IN {record_type(ip)} {ip}"


def service_host(name: str, namespace: str, domain: str) -> str:
    """The host name Knative gives a service under our flat domain-template."""
    for value, what in ((name, "service name"), (namespace, "namespace")):
        if not _DNS1123_LABEL.match(value):
            raise ConfigError(f"invalid {what} {value!r}: it must be an RFC 1123 label")
    host = f"{name}-{namespace}.{validate_domain(domain, what='domain')}"
    if len(host.split(".")[0]) > 63:
        raise ConfigError(f"{name}-{namespace} is longer than 63 characters: Knative cannot make a host name of it",
                          resolution="use a shorter service or namespace name")
    return host


def service_url(name: str, namespace: str, domain: str, *, https: bool = False) -> str:
    return f"{'https' if https else 'http'}://{service_host(name, namespace, domain)}"


def domain_for(mode: str, *, domain: str | None, ingress_ip: str | None) -> str | None:
    """The Knative domain for a mode; None when magic mode does not know the ingress address yet."""
    if mode == "local":
        return domain or DEFAULT_ZONE
    if mode == "magic":
        return magic_domain(ingress_ip) if ingress_ip else None
    if mode == "custom":
        if not domain:
            raise ConfigError("--domain-mode custom needs --domain", resolution="pass --domain apps.example.com")
        return domain
    raise ConfigError(f"unknown domain mode {mode!r}", resolution=f"use one of: {', '.join(DOMAIN_MODES)}")
