"""Host-side network probes: resolve a name through the host's DNS, GET a URL from this host.

Injectable (tests give a resolver that asks a real DNS server on 127.0.0.1 and an HTTP port of a
real server on 127.0.0.1); the defaults use the host's resolver (systemd-resolved's split DNS, if
set up) and port 80 of whatever address the name resolves to.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import urllib.parse
from collections.abc import Callable

import requests

from hybrid_knative.errors import PermanentError, TemporaryError


@dataclasses.dataclass(frozen=True)
class HttpAnswer:
    url: str
    address: str
    status: int
    body: str


def system_resolve(host: str) -> list[str]:
    """The addresses the host's resolver gives for ``host``; [] when the name does not resolve."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    seen: list[str] = []
    for info in infos:
        addr = str(info[4][0])
        if addr not in seen:
            seen.append(addr)
    return seen


@dataclasses.dataclass(frozen=True)
class HostProbes:
    resolve: Callable[[str], list[str]] = system_resolve
    http_port: int | None = None  # None: the URL's port (80 for http)
    timeout: float = 10.0
    outcome: Callable[[str], str] | None = None  # why a name gave no address: timeout, nxdomain, … (doctor)

    def get(self, url: str, *, via: str | None = None) -> HttpAnswer:
        """GET ``url`` from this host: resolve its name ourselves (when it does not resolve and ``via``
        is given — the ingress address, on hosts whose DNS cannot know the zone — connect to ``via``),
        then connect with the Host header.

        Raises TemporaryError when the name does not resolve or nothing answers (worth retrying
        while routes settle), PermanentError for a URL we cannot probe.
        """
        return self._request("GET", url, via=via)

    def post_json(self, url: str, body: object, *, via: str | None = None) -> HttpAnswer:
        """POST ``body`` as JSON to ``url`` from this host (same resolution and errors as :meth:`get`)."""
        return self._request("POST", url, via=via, body=body)

    def _request(self, method: str, url: str, *, via: str | None, body: object = None) -> HttpAnswer:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        if parts.scheme != "http" or not host:
            raise PermanentError(f"cannot probe {url!r}: only http:// URLs with a host name are probed")
        addresses = self.resolve(host) or ([via] if via else [])
        if not addresses:
            raise TemporaryError(f"{host} does not resolve from this host",
                                 resolution="check the host's DNS for the Knative domain "
                                 "(`resolvectl query HOST`, or `hybrid-knative doctor`)")
        port = self.http_port or parts.port or 80
        address = addresses[0]
        literal = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
        target = urllib.parse.urlunsplit(("http", f"{literal}:{port}", parts.path or "/", parts.query, ""))
        with requests.Session() as session:
            session.trust_env = False  # no proxies: the point is to reach the node's ingress directly
            try:
                resp = session.request(method, target, headers={"Host": parts.netloc}, timeout=self.timeout,
                                       allow_redirects=False, json=body if method == "POST" else None)
            except requests.RequestException as exc:
                raise TemporaryError(f"no HTTP answer from {host} ({address}:{port}): {type(exc).__name__}") from None
        return HttpAnswer(url=url, address=address, status=resp.status_code, body=resp.text[:4096])
