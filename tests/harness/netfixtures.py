"""Real network parts on 127.0.0.1 for verify/doctor tests: a DNS server (dnslib) for one zone and an
HTTP server playing Kourier's gateway (routes by Host header, 404 for unknown hosts, as Envoy does)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dnslib import QTYPE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSServer

from hybrid_knative.dns.resolve import DnsClient
from hybrid_knative.system.http import HostProbes


class ZoneResolver(BaseResolver):  # type: ignore[misc]
    """Answers every name under ``zone`` with ``address`` (a wildcard, like our CoreDNS block); NXDOMAIN else."""

    def __init__(self, zone: str, address: str) -> None:
        self.zone = zone.rstrip(".")
        self.address = address
        self.queries: list[str] = []

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".")
        self.queries.append(qname)
        if qname == self.zone or qname.endswith("." + self.zone):
            if request.q.qtype == QTYPE.A:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(self.address), ttl=5))
        else:
            reply.header.rcode = 3  # NXDOMAIN
        return reply


@contextmanager
def dns_server(zone: str, address: str = "127.0.0.1") -> Iterator[tuple[str, ZoneResolver]]:
    resolver = ZoneResolver(zone, address)
    server = DNSServer(resolver, port=0, address="127.0.0.1", tcp=False)
    server.start_thread()
    port = server.server.server_address[1]
    try:
        yield f"127.0.0.1:{port}", resolver
    finally:
        server.stop()
        server.server.server_close()


class Gateway:
    """Host → (status, body); every request's Host header is kept in ``seen``."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, str]] = {}
        self.seen: list[str] = []


@contextmanager
def http_gateway() -> Iterator[tuple[int, Gateway]]:
    gateway = Gateway()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            host = (self.headers.get("Host") or "").split(":")[0]
            gateway.seen.append(host)
            status, body = gateway.routes.get(host, (404, ""))
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], gateway
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def probes_for(dns: str, http_port: int) -> HostProbes:
    client = DnsClient((dns,), timeout=1.0)
    return HostProbes(resolve=lambda name: list(client.addresses(name).addresses), http_port=http_port, timeout=2.0)
