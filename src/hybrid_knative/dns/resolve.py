"""Asking real DNS servers: one resolver abstraction (the host's resolvers, or given servers), the
online check of magic mode and the record check of custom mode. Also used by `doctor`."""

from __future__ import annotations

import dataclasses
from typing import Literal

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from hybrid_knative.dns.names import MAGIC_SUFFIX, magic_domain, record_type, wildcard_record
from hybrid_knative.validate import split_server

__all__ = ["split_server"]  # re-exported (it moved to the core layer)

Outcome = Literal["ok", "nxdomain", "noanswer", "timeout", "error"]
#: The label asked for under a custom domain: any name works with a wildcard record.
PROBE_LABEL = "hybrid-knative-check"


@dataclasses.dataclass(frozen=True)
class Answer:
    name: str
    outcome: Outcome
    addresses: tuple[str, ...] = ()
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class DnsClient:
    """Where names are looked up: ``servers`` (``IP`` or ``IP:PORT``, IPv6 as ``[IP]:PORT``), or the
    host's own resolvers (/etc/resolv.conf) when empty. Tests point it at a local DNS server."""

    servers: tuple[str, ...] = ()
    timeout: float = 2.0

    def _resolver(self) -> dns.resolver.Resolver:
        if not self.servers:
            try:
                res = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                res = dns.resolver.Resolver(configure=False)
        else:
            res = dns.resolver.Resolver(configure=False)
            ports: dict[str, int] = {}
            for server in self.servers:
                host, port = split_server(server)
                ports[host] = port
            res.nameservers = list(ports)
            res.nameserver_ports = ports
        res.timeout = res.lifetime = self.timeout
        res.retry_servfail = False
        res.cache = None
        return res

    def lookup(self, name: str, rdtype: str = "A") -> Answer:
        res = self._resolver()
        if not res.nameservers:
            return Answer(name, "error", detail="no DNS server is configured on this host (/etc/resolv.conf)")
        try:
            answer = res.resolve(dns.name.from_text(name), dns.rdatatype.from_text(rdtype), search=False)
        except dns.resolver.NXDOMAIN:
            return Answer(name, "nxdomain", detail=f"{name} does not exist (NXDOMAIN)")
        except dns.resolver.NoAnswer:
            return Answer(name, "noanswer", detail=f"{name} exists but has no {rdtype} record")
        except dns.resolver.LifetimeTimeout:
            return Answer(name, "timeout", detail=f"no DNS server answered within {self.timeout:g}s")
        except (dns.resolver.NoNameservers, dns.exception.DNSException) as exc:
            return Answer(name, "error", detail=f"the DNS servers failed: {exc}")
        found = tuple(sorted(r.address for r in answer if hasattr(r, "address")))
        return Answer(name, "ok", found)

    def addresses(self, name: str) -> Answer:
        """A and AAAA records of ``name`` together (ok when either has any)."""
        v4 = self.lookup(name, "A")
        if v4.outcome in ("nxdomain", "timeout", "error"):
            return v4
        v6 = self.lookup(name, "AAAA")
        found = tuple(sorted({*v4.addresses, *v6.addresses}))
        if found:
            return Answer(name, "ok", found)
        return v6 if v6.outcome != "ok" else Answer(name, "noanswer", detail=f"{name} has no A or AAAA record")


def resolve(name: str, server: str, port: int = 53, *, timeout: float = 2.0) -> Answer:
    """Look ``name`` up (A and AAAA) on one DNS server."""
    host = f"[{server}]" if ":" in server else server
    return DnsClient((f"{host}:{port}",), timeout=timeout).addresses(name)


@dataclasses.dataclass(frozen=True)
class Check:
    """The result of a DNS check: ``ok`` and one sentence for the user."""

    ok: bool
    state: str  # present | missing | wrong | offline | filtered
    message: str


def check_magic(client: DnsClient, ingress_ip: str) -> Check:
    """Magic mode works only when sslip.io answers: ask it for the ingress address's own name."""
    name = magic_domain(ingress_ip)
    probe = f"{PROBE_LABEL}.{name}"
    answer = client.lookup(probe, record_type(ingress_ip))
    if answer.outcome == "ok" and ingress_ip in answer.addresses:
        return Check(True, "present", f"{probe} resolves to {ingress_ip}: {MAGIC_SUFFIX} is reachable")
    if answer.outcome in ("timeout", "error", "nxdomain"):
        return Check(False, "offline",
                     f"{MAGIC_SUFFIX} cannot be resolved from this host ({answer.detail}): magic DNS needs the "
                     "internet; this host looks offline or its DNS cannot reach public names")
    return Check(False, "filtered",
                 f"{probe} should resolve to {ingress_ip} but the DNS answered "
                 f"{', '.join(answer.addresses) or 'nothing'}: your resolver (often a router's DNS-rebinding "
                 "protection) drops public names that point at private addresses")


def check_custom(client: DnsClient, domain: str, ingress_ip: str) -> Check:
    """Does the wildcard record of a custom domain exist and point at the ingress address?"""
    probe = f"{PROBE_LABEL}.{domain}"
    record = wildcard_record(domain, ingress_ip)
    answer = client.addresses(probe)
    if answer.outcome == "ok":
        if ingress_ip in answer.addresses:
            return Check(True, "present", f"*.{domain} resolves to the ingress address {ingress_ip}")
        return Check(False, "wrong",
                     f"*.{domain} resolves to {', '.join(answer.addresses)}, not to the ingress address "
                     f"{ingress_ip}: change the record to `{record}`")
    if answer.outcome in ("nxdomain", "noanswer"):
        return Check(False, "missing", f"*.{domain} does not resolve ({answer.detail}): create the record `{record}`")
    return Check(False, "missing",
                 f"*.{domain} could not be checked ({answer.detail}); make sure the record `{record}` exists")
