"""Calling a function: its URL through DNS when the host resolves it, else through Kourier's ingress address
with a Host header (works where host DNS is not set up). Always says which path it used."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import requests

from hybrid_knative.dns.ingress import KOURIER, load_balancer_ip, node_ip
from hybrid_knative.errors import ConfigError, PermanentError, TemporaryError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import ObjectRef
from hybrid_knative.kube.ready import condition, describe

SERVING = "serving.knative.dev/v1"
Resolver = Callable[[str], "str | None"]


@dataclasses.dataclass(frozen=True)
class Target:
    url: str  # what is requested
    host: str | None  # the Host header (None when the URL is used as is)
    how: str  # for the user: which path was used


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes
    target: Target


def dns_lookup(host: str, *, timeout: float = 2.0) -> str | None:
    """The host's resolver (whatever it is configured with), bounded in time; None when it does not resolve."""
    found: list[str] = []

    def look() -> None:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return
        if infos:
            found.append(str(infos[0][4][0]))

    worker = threading.Thread(target=look, daemon=True)
    worker.start()
    worker.join(timeout)
    return found[0] if found else None


def service_url(kube: KubeApi, name: str, namespace: str) -> str:
    ksvc = kube.get(ObjectRef(SERVING, "Service", namespace, name))
    if ksvc is None:
        raise ConfigError(f"there is no function (Knative Service) {namespace}/{name}",
                          resolution="deploy it first (`hybrid-knative deploy`), or check the name and --namespace")
    url = str((ksvc.get("status") or {}).get("url") or "")
    if not url:
        raise PermanentError(f"{namespace}/{name} has no URL yet ({describe(condition(ksvc, 'Ready'), 'Ready')})",
                             resolution=f"run `hybrid-knative doctor {name} -n {namespace}`")
    return url


def ingress_endpoint(kube: KubeApi, hostname: str | None = None) -> tuple[str, int, str]:
    """(address, port, source) of Kourier's gateway as reachable from this machine."""
    svc = kube.get(KOURIER)
    if svc is None:
        raise PermanentError("Kourier's Service kourier-system/kourier is missing, so there is no ingress to call",
                             resolution="run `hybrid-knative enable` (or `microk8s enable hybrid-knative`)")
    spec = svc.get("spec") or {}
    ports = spec.get("ports") or []
    http = next((p for p in ports if p.get("name") in ("http2", "http")), None) or next(
        (p for p in ports if p.get("port") == 80), None) or (ports[0] if ports else {})
    port = int(http.get("port") or 80)
    external = spec.get("externalIPs") or []
    if external:
        return str(external[0]), port, "externalIPs"
    balancer = load_balancer_ip(svc)
    if balancer:
        return balancer, port, "load balancer"
    node_port = http.get("nodePort")
    address = node_ip(kube.list("v1", "Node"), socket.gethostname())
    if address and node_port:
        return address, int(node_port), "NodePort"
    raise PermanentError("Kourier's Service has no externalIPs, no load balancer address and no NodePort this "
                         "machine can use", resolution="re-run enable, or pass --ingress-ip to it")


def target_for(kube: KubeApi, url: str, *, resolver: Resolver = dns_lookup) -> Target:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if not host:
        raise ConfigError(f"not a URL: {url!r}")
    address = resolver(host)
    if address is not None:
        return Target(url, None, f"DNS ({host} → {address})")
    ip, port, source = ingress_endpoint(kube)
    netloc = f"[{ip}]" if ":" in ip else ip
    if port != 80:
        netloc += f":{port}"
    direct = urllib.parse.urlunsplit(("http", netloc, parts.path or "/", parts.query, ""))
    return Target(direct, host, f"ingress {ip}:{port} ({source}) with Host: {host} — {host} does not resolve here")


def cloudevent_headers(*, type_: str, source: str, event_id: str | None = None,
                       content_type: str = "application/json", extensions: Mapping[str, str] | None = None
                       ) -> dict[str, str]:
    """Binary-mode CloudEvent (spec 1.0) HTTP headers."""
    if not type_:
        raise ConfigError("a CloudEvent needs a type", resolution="pass --type, e.g. --type greeting")
    headers = {"ce-specversion": "1.0", "ce-id": event_id or str(uuid.uuid4()), "ce-source": source,
               "ce-type": type_, "content-type": content_type}
    for key, value in (extensions or {}).items():
        if not key.isalnum() or not key.islower():
            raise ConfigError(f"invalid CloudEvent extension name {key!r}",
                              resolution="extension names are lower-case letters and digits")
        headers[f"ce-{key}"] = value
    return headers


def payload(data: str | None) -> tuple[bytes, str]:
    """(body, content type) for --data: JSON when it parses as JSON, else plain text."""
    if data is None:
        return b"", "application/json"
    try:
        json.loads(data)
    except ValueError:
        return data.encode(), "text/plain"
    return data.encode(), "application/json"


def send(target: Target, *, method: str = "POST", body: bytes = b"", headers: Mapping[str, str] | None = None,
         timeout: float = 30.0) -> Reply:
    sent = dict(headers or {})
    if target.host:
        sent["Host"] = target.host
    try:
        resp = requests.request(method, target.url, data=body or None, headers=sent, timeout=timeout,
                                allow_redirects=False)
    except requests.RequestException as exc:
        raise TemporaryError(f"no answer from {target.url} via {target.how}", details=str(exc),
                             resolution="check `hybrid-knative doctor NAME` (cold starts can take seconds)") from exc
    return Reply(resp.status_code, dict(resp.headers), resp.content, target)


def answered(reply: Reply) -> bool:
    """The function itself answered (not the gateway saying there is no route yet or no endpoint)."""
    if reply.status in (502, 503, 504):
        return False
    server = str({k.lower(): v for k, v in reply.headers.items()}.get("server", ""))
    return not (reply.status == 404 and server == "envoy" and not reply.body)


def invoke(kube: KubeApi, name: str, namespace: str, *, method: str | None = None, data: str | None = None,
           cloudevent: dict[str, Any] | None = None, resolver: Resolver = dns_lookup, timeout: float = 30.0,
           path: str = "") -> Reply:
    url = service_url(kube, name, namespace)
    if path:
        url = url.rstrip("/") + "/" + path.lstrip("/")
    target = target_for(kube, url, resolver=resolver)
    body, ctype = payload(data)
    headers: dict[str, str] = {"content-type": ctype} if body else {}
    if cloudevent is not None:
        headers = cloudevent_headers(type_=str(cloudevent.get("type") or ""),
                                     source=str(cloudevent.get("source") or "hybrid-knative/invoke"),
                                     event_id=cloudevent.get("id"), content_type=ctype,
                                     extensions=cloudevent.get("extensions"))
    verb = method or ("POST" if body or cloudevent is not None else "GET")
    return send(target, method=verb, body=body, headers=headers, timeout=timeout)
