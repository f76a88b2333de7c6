"""DNS checks against REAL DNS servers on 127.0.0.1: dnsmasq (the daemon) and a dnslib server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dnslib import AAAA, QTYPE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSServer

from hybrid_knative.dns.resolve import DnsClient, check_custom, check_magic, resolve

pytestmark = pytest.mark.integration
TIMEOUT = 1.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def dnsmasq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    binary = shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if Path("/usr/sbin/dnsmasq").exists() else None)
    if binary is None:
        pytest.skip("dnsmasq is not installed (apt install dnsmasq)")
    folder = tmp_path_factory.mktemp("dnsmasq")
    folder.chmod(0o777)
    port = free_port()
    conf = folder / "dnsmasq.conf"
    conf.write_text("\n".join([
        f"port={port}", "listen-address=127.0.0.1", "bind-interfaces", "no-resolv", "no-hosts",
        f"pid-file={folder / 'dnsmasq.pid'}",
        "address=/apps.good.test/10.0.0.5",
        "address=/apps.wrong.test/10.0.0.9",
        "local=/apps.missing.test/",
        "address=/zone.test/10.0.0.5",
        "local=/zone.test/",
    ]) + "\n")
    proc = subprocess.Popen([binary, "--keep-in-foreground", f"--conf-file={conf}"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        for _ in range(200):  # bounded: ready in milliseconds
            if proc.poll() is not None:
                pytest.fail(f"dnsmasq exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            if resolve("x.zone.test", "127.0.0.1", port, timeout=0.2).outcome == "ok":
                break
            time.sleep(0.02)
        else:
            pytest.fail("dnsmasq did not answer")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class ZoneResolver(BaseResolver):  # type: ignore[misc]
    """Answers like sslip.io (``*.<ip>.sslip.io`` → ip), or like a rebinding-protecting router."""

    def __init__(self, *, strip_private: bool) -> None:
        self.strip_private = strip_private

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".")
        if not qname.endswith(".sslip.io"):
            reply.header.rcode = 3  # NXDOMAIN
            return reply
        labels = qname.removesuffix(".sslip.io").split(".")
        ip = ".".join(labels[-4:])
        if request.q.qtype == QTYPE.A and not self.strip_private:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(ip), ttl=60))
        elif request.q.qtype == QTYPE.AAAA and ":" in ip:
            reply.add_answer(RR(request.q.qname, QTYPE.AAAA, rdata=AAAA(ip), ttl=60))
        return reply


@pytest.fixture
def dnslib_server() -> Iterator[Callable[..., int]]:
    servers: list[DNSServer] = []

    def start(*, strip_private: bool = False) -> int:
        port = free_port()
        server = DNSServer(ZoneResolver(strip_private=strip_private), port=port, address="127.0.0.1")
        server.start_thread()
        servers.append(server)
        return port

    yield start
    for server in servers:
        server.stop()
        server.server.server_close()


def test_resolve_helper_against_dnsmasq(dnsmasq: int) -> None:
    answer = resolve("hello-default.zone.test", "127.0.0.1", dnsmasq, timeout=TIMEOUT)
    assert answer.outcome == "ok" and answer.addresses == ("10.0.0.5",)
    missing = resolve("hello.apps.missing.test", "127.0.0.1", dnsmasq, timeout=TIMEOUT)
    assert missing.outcome == "nxdomain" and "NXDOMAIN" in missing.detail


@pytest.mark.parametrize("domain, state, words", [
    ("apps.good.test", "present", "resolves to the ingress address 10.0.0.5"),
    ("apps.wrong.test", "wrong", "resolves to 10.0.0.9, not to the ingress address 10.0.0.5: change the record to "
                                 "`*.apps.wrong.test. IN A 10.0.0.5`"),
    ("apps.missing.test", "missing", "create the record `*.apps.missing.test. IN A 10.0.0.5`"),
])
def test_custom_domain_record_checks(dnsmasq: int, domain: str, state: str, words: str) -> None:
    check = check_custom(DnsClient((f"127.0.0.1:{dnsmasq}",), timeout=TIMEOUT), domain, "10.0.0.5")
    assert check.state == state
    assert check.ok is (state == "present")
    assert words in check.message


def test_custom_domain_check_when_no_server_answers() -> None:
    client = DnsClient((f"127.0.0.1:{free_port()}",), timeout=0.3)  # nothing listens there
    check = check_custom(client, "apps.example.com", "10.0.0.5")
    assert not check.ok and "`*.apps.example.com. IN A 10.0.0.5`" in check.message


def test_magic_mode_refused_offline_by_a_resolver_without_internet(dnsmasq: int) -> None:
    """dnsmasq with no upstream servers is an offline host's resolver: it cannot answer sslip.io."""
    check = check_magic(DnsClient((f"127.0.0.1:{dnsmasq}",), timeout=TIMEOUT), "10.0.0.5")
    assert not check.ok and check.state == "offline"
    assert "sslip.io cannot be resolved" in check.message and "offline" in check.message


def test_magic_mode_refused_when_no_resolver_answers() -> None:
    check = check_magic(DnsClient((f"127.0.0.1:{free_port()}",), timeout=0.3), "10.0.0.5")
    assert check.state == "offline" and "no DNS server answered" in check.message


def test_magic_mode_accepted_when_sslip_answers(dnslib_server: Callable[..., int]) -> None:
    port = dnslib_server()
    check = check_magic(DnsClient((f"127.0.0.1:{port}",), timeout=TIMEOUT), "10.0.0.5")
    assert check.ok and check.state == "present"


def test_magic_mode_refused_behind_rebinding_protection(dnslib_server: Callable[..., int]) -> None:
    port = dnslib_server(strip_private=True)
    check = check_magic(DnsClient((f"127.0.0.1:{port}",), timeout=TIMEOUT), "10.0.0.5")
    assert check.state == "filtered" and "rebinding" in check.message
