"""Domain names: RFC 1123 validation, the three domain modes, service host names and URLs. Pure."""

from __future__ import annotations

import ipaddress
import re

from hybrid_knative.errors import ConfigError
from hybrid_knative.options import DOMAIN_MODES
from hybrid_knative.validate import parse_ip, validate_domain

__all__ = ["DOMAIN_MODES", "parse_ip", "validate_domain"]  # re-exported (they moved to the core layer)

DEFAULT_ZONE = "hk.internal"
MAGIC_SUFFIX = "sslip.io"
#: Knative's domain-template (config-network): one flat label per service, so one wildcard
#: record (and one wildcard certificate) covers every service.
DOMAIN_TEMPLATE = "{{.Name}}-{{.Namespace}}.{{.Domain}}"

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DNS1123_LABEL = _LABEL  # Kubernetes names of services and namespaces follow the same rule


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
