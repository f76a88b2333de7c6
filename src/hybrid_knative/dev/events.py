"""Events: send a CloudEvent into a namespace's Broker, and tail what flows through it.

Sending from the host: the Broker's ingress (``broker-ingress.knative-eventing.svc.cluster.local/NS/BROKER``)
is a ClusterIP Service, not routed by Kourier. We reach it through the Kubernetes API server's service
proxy (``/api/v1/namespaces/knative-eventing/services/broker-ingress:http/proxy/NS/BROKER``): it works
from any machine with the kubeconfig (the same path ``kubectl proxy`` uses), needs no port-forward and
no extra Pod, and the API server passes the CloudEvent's ``ce-*`` headers through unchanged.

Tailing: a small event-display Knative Service (built from the package's template, deployed by digest)
subscribed with a Trigger to every event on the Broker; its log lines are the events.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from hybrid_knative.dev.invoke import cloudevent_headers, payload
from hybrid_knative.errors import ConfigError, PermanentError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import Manifest, ObjectRef
from hybrid_knative.kube.ready import condition, describe

EVENTING = "eventing.knative.dev/v1"
SERVING = "serving.knative.dev/v1"
TAIL_NAME = "hk-event-display"
TAIL_LABELS = {"hybrid-knative.dev/project": "hk-events", "hybrid-knative.dev/function": TAIL_NAME}


def broker_address(kube: KubeApi, namespace: str, broker: str) -> str:
    kube.register_kind(EVENTING, "Broker", "brokers", namespaced=True)
    obj = kube.get(ObjectRef(EVENTING, "Broker", namespace, broker))
    if obj is None:
        raise ConfigError(f"there is no Broker {namespace}/{broker}",
                          resolution=f"enable hybrid-knative with --broker-namespace {namespace} (it creates the "
                          "default Broker), or pass --broker")
    url = str(((obj.get("status") or {}).get("address") or {}).get("url") or "")
    if not url:
        raise PermanentError(f"Broker {namespace}/{broker} has no address yet "
                             f"({describe(condition(obj, 'Ready'), 'Ready')})",
                             resolution="wait for Knative Eventing to be ready (`hybrid-knative status`)")
    return url


def proxy_route(address: str) -> tuple[str, str, str]:
    """(namespace, service[:port], path) of a ``*.svc.cluster.local`` address, for the API server's proxy."""
    parts = urllib.parse.urlsplit(address)
    labels = (parts.hostname or "").split(".")
    if len(labels) < 3 or labels[2] != "svc":
        raise PermanentError(f"the Broker's address {address} is not a cluster Service address")
    service = labels[0]
    port = "https" if parts.scheme == "https" else "http"
    return labels[1], f"{service}:{port}", parts.path.lstrip("/")


def send(kube: KubeApi, namespace: str, *, type_: str, data: str | None, source: str = "hybrid-knative/cli",
         broker: str = "default", event_id: str | None = None,
         extensions: Mapping[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """POST one binary-mode CloudEvent to the Broker; return (the route used, the headers sent)."""
    address = broker_address(kube, namespace, broker)
    svc_ns, service, path = proxy_route(address)
    body, ctype = payload(data)
    headers = cloudevent_headers(type_=type_, source=source, event_id=event_id, content_type=ctype,
                                 extensions=extensions)
    status, answer = kube.service_proxy("POST", svc_ns, service, path, body=body, headers=headers)
    if status >= 300:
        raise PermanentError(f"the Broker {namespace}/{broker} refused the event (HTTP {status})",
                             details=answer.decode("utf-8", "replace")[:500] or None,
                             resolution="check `hybrid-knative status` (Eventing ready?) and the event's type")
    return f"{address} via the API server's service proxy", headers


def tail_objects(namespace: str, image: str, broker: str = "default",
                 filters: Mapping[str, str] | None = None) -> list[Manifest]:
    """The event-display Service (one warm pod, so no event waits for a cold start) and its Trigger."""
    ksvc: Manifest = {
        "apiVersion": SERVING, "kind": "Service",
        "metadata": {"name": TAIL_NAME, "namespace": namespace, "labels": dict(TAIL_LABELS)},
        "spec": {"template": {"metadata": {"annotations": {"autoscaling.knative.dev/min-scale": "1"}},
                              "spec": {"containers": [{"image": image}]}}},
    }
    trigger_spec: dict[str, Any] = {"broker": broker, "subscriber": {
        "ref": {"apiVersion": SERVING, "kind": "Service", "name": TAIL_NAME}}}
    if filters:
        trigger_spec["filter"] = {"attributes": dict(filters)}
    trigger: Manifest = {"apiVersion": EVENTING, "kind": "Trigger",
                         "metadata": {"name": TAIL_NAME, "namespace": namespace, "labels": dict(TAIL_LABELS)},
                         "spec": trigger_spec}
    return [ksvc, trigger]


def parse_display_line(text: str) -> dict[str, Any] | None:
    """An event from one event-display log line (``EVENT {json}``); None for other lines."""
    if not text.startswith("EVENT "):
        return None
    try:
        event = json.loads(text[6:])
    except ValueError:
        return None
    return event if isinstance(event, dict) else None
