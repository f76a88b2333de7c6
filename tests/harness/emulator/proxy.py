"""The API server's service proxy, ``/api/v1/namespaces/NS/services/[SCHEME:]NAME[:PORT]/proxy/PATH``, resolved
the way kube-apiserver resolves it (pkg/registry/core/service/storage: ``ResourceLocation``), then forwarded
over real HTTP to the endpoint it picked:

* the id splits into scheme (``http``, ``https`` or empty), name and port; anything else is 400 BadRequest
  ``invalid service request "ID"``;
* a port *number* is mapped to the name of the Service port with that ``port`` (404 when the Service is
  missing; 503 ``no service port N found for service "NAME"`` when no port has it);
* the Service's ``Endpoints`` object is read (404 ``endpoints "NAME" not found``); no subsets is 503
  ``no endpoints available for service "NAME"``;
* within the subsets, an endpoint port whose *name* equals the requested port name (empty when none was
  given), and an address that is valid: it has a ``targetRef``, in the request's namespace, to a Pod that
  exists and lists the address among ``status.podIPs``; nothing valid is 503 ``no endpoints available for
  service "ID"``;
* a connection that fails is 503 ``error trying to reach service: dial tcp IP:PORT: ...`` (the proxy's
  error responder); otherwise the endpoint's status, body and Content-Type come back unchanged.

Subsets and addresses are tried in order (the apiserver starts at a random one: with one valid address
the outcome is the same). Only the emulator's own Endpoints carry ``targetRef``s for host-network pods
(controller.py), so the proxy reaches exactly those — a bridge on a robot's node, on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import kmock

from tests.harness.emulator.common import _error

_VALID_SCHEMES = ("", "http", "https")
_TIMEOUT = aiohttp.ClientTimeout(total=30)
# request headers a proxy does not pass on (hop-by-hop, and the API server's own credentials)
_DROPPED = {"authorization", "connection", "host", "keep-alive", "proxy-authorization", "te", "trailer",
            "transfer-encoding", "upgrade", "content-length"}

Lookup = Callable[[str, str, str], "dict[str, Any] | None"]  # (plural, namespace, name) -> object


def split_scheme_name_port(ident: str) -> tuple[str, str, str] | None:
    """``name``, ``name:port`` or ``scheme:name:port`` (apimachinery's SplitSchemeNamePort)."""
    parts = ident.split(":")
    if len(parts) == 1:
        scheme, name, port = "", parts[0], ""
    elif len(parts) == 2:
        scheme, name, port = "", parts[0], parts[1]
    elif len(parts) == 3:
        scheme, name, port = parts
    else:
        return None
    if not name or scheme not in _VALID_SCHEMES:
        return None
    return scheme, name, port


def _unavailable(message: str) -> kmock.KubernetesError:
    return _error(503, "ServiceUnavailable", message)


def _not_found(plural: str, name: str) -> kmock.KubernetesError:
    return _error(404, "NotFound", f'{plural} "{name}" not found', {"name": name, "kind": plural})


def _valid_address(address: Mapping[str, Any], namespace: str, lookup: Lookup) -> bool:
    ref = address.get("targetRef")
    if not ref or ref.get("namespace") != namespace:
        return False
    pod = lookup("pods", namespace, str(ref.get("name", "")))
    if pod is None:
        return False
    ips = [str(p.get("ip")) for p in (pod.get("status") or {}).get("podIPs") or []]
    return address.get("ip") in ips


def resolve(namespace: str, ident: str, lookup: Lookup) -> tuple[str, str, int]:
    """(scheme, ip, port) of the endpoint the API server would proxy ``ident`` to, or the error it answers."""
    split = split_scheme_name_port(ident)
    if split is None:
        raise _error(400, "BadRequest", f'invalid service request "{ident}"')
    scheme, name, port_name = split
    if port_name.isdigit():
        service = lookup("services", namespace, name)
        if service is None:
            raise _not_found("services", name)
        number = int(port_name)
        named = [p for p in (service.get("spec") or {}).get("ports") or [] if p.get("port") == number]
        if not named:
            raise _unavailable(f'no service port {number} found for service "{name}"')
        port_name = str(named[0].get("name", ""))
    endpoints = lookup("endpoints", namespace, name)
    if endpoints is None:
        raise _not_found("endpoints", name)
    subsets = endpoints.get("subsets") or []
    if not subsets:
        raise _unavailable(f'no endpoints available for service "{name}"')
    for subset in subsets:
        addresses = subset.get("addresses") or []
        if not addresses:
            continue
        for port in subset.get("ports") or []:
            if str(port.get("name", "")) != port_name:
                continue
            for address in addresses:
                if _valid_address(address, namespace, lookup):
                    return scheme or "http", str(address["ip"]), int(port["port"])
    raise _unavailable(f'no endpoints available for service "{ident}"')


async def forward(request: kmock.Request, scheme: str, ip: str, port: int, path: str) -> kmock.Response:
    """The request, to ``scheme://ip:port/path`` (query string kept); the endpoint's answer."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROPPED}
    url = f"{scheme}://{ip}:{port}/{path}"
    try:
        async with aiohttp.ClientSession(timeout=_TIMEOUT) as session, session.request(
                str(request.method.value), url, params=request.params, data=request.body, headers=headers,
                ssl=False, allow_redirects=False) as resp:
            body = await resp.read()
            out = {"Content-Type": resp.headers["Content-Type"]} if "Content-Type" in resp.headers else {}
            return kmock.Response(status=resp.status, payload=body, headers=out)
    except (aiohttp.ClientConnectionError, TimeoutError) as exc:
        why = "connect: connection refused" if isinstance(exc, aiohttp.ClientConnectorError) else str(exc)
        raise _unavailable(f"error trying to reach service: dial tcp {ip}:{port}: {why}") from None
