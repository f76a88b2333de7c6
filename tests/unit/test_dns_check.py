"""diagnose/dns_check.py: a service host from this host — a DNS timeout is reported as a timeout (a real UDP socket
on 127.0.0.1 that never answers), a missing name as a missing name (a real DNS server: dnspython)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from tests.harness.netfixtures import dns_server

from hybrid_knative.diagnose.dns_check import Lookup, host_resolves
from hybrid_knative.dns.resolve import DnsClient


@pytest.fixture
def silent_server() -> Iterator[str]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def lookup_via(server: str) -> Lookup:
    client = DnsClient((server,), timeout=0.5)

    def lookup(name: str) -> tuple[list[str], str]:
        answer = client.addresses(name)
        return list(answer.addresses), answer.outcome

    return lookup


def test_a_dns_timeout_is_reported_as_a_timeout(silent_server: str) -> None:
    check = host_resolves("hello-default.hk.internal", lookup_via(silent_server), "10.0.0.5")
    assert not check.ok and "timed out" in check.cause and "DNS timeout" in check.evidence
    assert "no A/AAAA answer" not in check.evidence


def test_a_missing_name_and_a_resolving_one() -> None:
    with dns_server("hk.internal") as (server, _resolver):
        lookup = lookup_via(server)
        ok = host_resolves("hello-default.hk.internal", lookup, None)
        assert ok.ok, ok
        missing = host_resolves("hello.other.zone", lookup, None)
        assert not missing.ok and "timed out" not in missing.cause
        manual = host_resolves("hello.other.zone", lookup, None, host_dns="manual")
        assert manual.ok and "nameserver" in manual.fix and "never" in manual.fix
