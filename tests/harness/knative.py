"""Knative controller behaviour for the API emulator, as FakeController hooks.

Writes the status the real Knative controllers write (field names, condition types, reasons):

* KService (serving.knative.dev/v1 Service) → a Configuration, a Revision ``NAME-00001`` and a Route,
  all Ready; the URL follows ``config-domain`` (first domain key, else ``svc.cluster.local``) and
  ``config-network``'s ``domain-template`` (default ``{{.Name}}.{{.Namespace}}.{{.Domain}}``), as
  Knative's route controller does. ``failing[name] = (reason, message)`` makes the Revision fail
  with that reason, and the KService report ``RevisionMissing`` like Knative does.
* The Revision's Deployment ``NAME-00001-deployment`` (user-container + queue-proxy, Knative's labels),
  scaled to zero like an idle Revision; a failing Revision (unless its image could not be resolved,
  when Knative creates no Deployment) keeps one pod whose queue-proxy readiness probe fails
  (the kubelet's ``Unhealthy`` event: "Readiness probe failed: HTTP probe failed with statuscode: 503").
* Broker (eventing.knative.dev/v1) → Ready with its ingress address once the MT broker and
  in-memory channel Deployments are Available.

Only objects whose ``status.observedGeneration`` differs from ``metadata.generation`` are reconciled,
so tests can seed failing statuses of their own that stay as written.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from tests.harness.emulator import FakeController, Store

SERVING = "serving.knative.dev/v1"
QUEUE_PROXY_IMAGE = "gcr.io/knative-releases/knative.dev/serving/cmd/queue:v1.23.0"
EVENTING = "eventing.knative.dev/v1"
BROKER_DEPLOYMENTS = ("mt-broker-controller", "mt-broker-ingress", "mt-broker-filter", "imc-controller",
                      "imc-dispatcher")
_T = "2025-01-01T00:00:00Z"


def _cond(type_: str, status: str = "True", reason: str | None = None, message: str | None = None) -> dict[str, Any]:
    cond: dict[str, Any] = {"type": type_, "status": status, "lastTransitionTime": _T}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def _available(store: Store, namespace: str, name: str) -> bool:
    dep = store.peek("apps/v1", "deployments", name, namespace)
    for cond in ((dep or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Available":
            return cond.get("status") == "True"
    return False


def _unprocessed(obj: dict[str, Any]) -> bool:
    return (obj.get("status") or {}).get("observedGeneration") != obj["metadata"].get("generation", 1)


def knative_url_host(store: Store, name: str, namespace: str) -> str:
    domain_cm = store.peek("v1", "configmaps", "config-domain", "knative-serving") or {}
    domains = [k for k in (domain_cm.get("data") or {}) if k != "_example"]
    domain = domains[0] if domains else "svc.cluster.local"
    network = store.peek("v1", "configmaps", "config-network", "knative-serving") or {}
    template = (network.get("data") or {}).get("domain-template") or "{{.Name}}.{{.Namespace}}.{{.Domain}}"
    values = {"Name": name, "Namespace": namespace, "Domain": domain}
    return re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: values.get(m.group(1), ""), template)


@dataclasses.dataclass
class KnativeBehaviour:
    failing: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    broker_never_ready: bool = False
    controller: FakeController | None = None  # set by with_knative: failing Revisions' pods never get ready

    def __call__(self, store: Store) -> None:
        if store.peek("apiextensions.k8s.io/v1", "customresourcedefinitions", "services.serving.knative.dev"):
            for ksvc in store.view(SERVING, "services"):
                if _unprocessed(ksvc):
                    self._reconcile_ksvc(store, ksvc)
        if store.peek("apiextensions.k8s.io/v1", "customresourcedefinitions", "brokers.eventing.knative.dev"):
            for broker in store.view(EVENTING, "brokers"):
                if _unprocessed(broker):
                    self._reconcile_broker(store, broker)

    def _reconcile_ksvc(self, store: Store, ksvc: dict[str, Any]) -> None:
        meta = ksvc["metadata"]
        name, namespace, generation = meta["name"], meta["namespace"], meta.get("generation", 1)
        revision = f"{name}-{generation:05d}"
        owner = [{"apiVersion": SERVING, "kind": "Service", "name": name, "uid": meta.get("uid", ""),
                  "controller": True, "blockOwnerDeletion": True}]
        host = knative_url_host(store, name, namespace)
        url = f"http://{host}"
        failure = self.failing.get(name)
        rev_conditions = ([_cond("Active", "Unknown", "Deploying"), _cond("ContainerHealthy", "False", *failure),
                           _cond("Ready", "False", *failure), _cond("ResourcesAvailable", "False", *failure)]
                          if failure else
                          [_cond("Active", "False", "NoTraffic", "The target is not receiving traffic."),
                           _cond("ContainerHealthy"), _cond("Ready"), _cond("ResourcesAvailable")])
        template = (ksvc.get("spec") or {}).get("template") or {}
        store.put(SERVING, "revisions", {
            "apiVersion": SERVING, "kind": "Revision",
            "metadata": {"name": revision, "namespace": namespace, "ownerReferences": owner,
                         "labels": {"serving.knative.dev/service": name, "serving.knative.dev/configuration": name}},
            "spec": template.get("spec") or {},
            "status": {"observedGeneration": 1, "conditions": rev_conditions,
                       **({} if failure else {"actualReplicas": 0, "desiredReplicas": 0})},
        })
        self._revision_deployment(store, ksvc, revision, template, failure)
        config_ready = ([_cond("Ready", "False", "RevisionFailed",
                               f'Revision "{revision}" failed with message: {failure[1]}.')]
                        if failure else [_cond("Ready")])
        store.put(SERVING, "configurations", {
            "apiVersion": SERVING, "kind": "Configuration",
            "metadata": {"name": name, "namespace": namespace, "ownerReferences": owner,
                         "labels": {"serving.knative.dev/service": name}},
            "spec": {"template": template},
            "status": {"observedGeneration": generation, "conditions": config_ready,
                       "latestCreatedRevisionName": revision,
                       **({} if failure else {"latestReadyRevisionName": revision})},
        })
        route_status: dict[str, Any] = {
            "observedGeneration": 1, "url": url,
            "address": {"url": f"http://{name}.{namespace}.svc.cluster.local"},
            "conditions": ([_cond("AllTrafficAssigned", "False", "RevisionMissing",
                                  f'Configuration "{name}" does not have any ready Revision.'),
                            _cond("Ready", "False", "RevisionMissing",
                                  f'Configuration "{name}" does not have any ready Revision.')]
                           if failure else
                           [_cond("AllTrafficAssigned"), _cond("CertificateProvisioned", "True", "HTTPDowngrade"),
                            _cond("IngressReady"), _cond("Ready")]),
        }
        store.put(SERVING, "routes", {
            "apiVersion": SERVING, "kind": "Route",
            "metadata": {"name": name, "namespace": namespace, "ownerReferences": owner,
                         "labels": {"serving.knative.dev/service": name}},
            "spec": {"traffic": [{"configurationName": name, "latestRevision": True, "percent": 100}]},
            "status": route_status,
        })
        if failure:
            message = f'Revision "{revision}" failed with message: {failure[1]}.'
            conditions = [_cond("ConfigurationsReady", "False", "RevisionFailed", message),
                          _cond("Ready", "False", "RevisionMissing",
                                f'Configuration "{name}" does not have any ready Revision.'),
                          _cond("RoutesReady", "False", "RevisionMissing",
                                f'Configuration "{name}" does not have any ready Revision.')]
            status: dict[str, Any] = {"observedGeneration": generation, "conditions": conditions, "url": url,
                                      "latestCreatedRevisionName": revision}
        else:
            status = {"observedGeneration": generation, "url": url,
                      "address": {"url": f"http://{name}.{namespace}.svc.cluster.local"},
                      "conditions": [_cond("ConfigurationsReady"), _cond("Ready"), _cond("RoutesReady")],
                      "latestCreatedRevisionName": revision, "latestReadyRevisionName": revision,
                      "traffic": [{"latestRevision": True, "percent": 100, "revisionName": revision}]}
        store.set_status(SERVING, "services", name, namespace, status)

    def _revision_deployment(self, store: Store, ksvc: dict[str, Any], revision: str, template: dict[str, Any],
                             failure: tuple[str, str] | None) -> None:
        if failure is not None and failure[0] == "ContainerMissing":
            return  # the image could not be resolved: Knative creates no Deployment
        meta = ksvc["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        rev = store.peek(SERVING, "revisions", revision, namespace) or {}
        owner = [{"apiVersion": SERVING, "kind": "Revision", "name": revision,
                  "uid": (rev.get("metadata") or {}).get("uid", ""), "controller": True, "blockOwnerDeletion": True}]
        labels = {"app": revision, "serving.knative.dev/configuration": name,
                  "serving.knative.dev/configurationGeneration": str(meta.get("generation", 1)),
                  "serving.knative.dev/revision": revision, "serving.knative.dev/revisionUID":
                  (rev.get("metadata") or {}).get("uid", ""), "serving.knative.dev/service": name}
        user = [{**c, "name": c.get("name") or "user-container"} for c in (template.get("spec") or {}).get(
            "containers") or [{"image": "unknown"}]]
        queue = {"name": "queue-proxy", "image": QUEUE_PROXY_IMAGE,
                 "ports": [{"name": "http-queueadm", "containerPort": 8022}, {"name": "http-usermetric",
                                                                               "containerPort": 9091}],
                 "readinessProbe": {"httpGet": {"port": 8012, "httpHeaders": [
                     {"name": "K-Network-Probe", "value": "queue"}]}, "periodSeconds": 1, "timeoutSeconds": 1}}
        deployment_name = f"{revision}-deployment"
        store.put("apps/v1", "deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": deployment_name, "namespace": namespace, "labels": labels, "ownerReferences": owner},
            "spec": {"replicas": 1 if failure else 0, "selector": {"matchLabels": {"serving.knative.dev/revisionUID":
                                                                                     labels["serving.knative.dev/revisionUID"]}},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [*user, queue]}}},
        })
        if failure is not None and self.controller is not None:
            self.controller.never_ready.add(deployment_name)

    def _reconcile_broker(self, store: Store, broker: dict[str, Any]) -> None:
        meta = broker["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        if self.broker_never_ready or not all(_available(store, "knative-eventing", d) for d in BROKER_DEPLOYMENTS):
            status: dict[str, Any] = {"observedGeneration": meta.get("generation", 1), "conditions": [
                _cond("Ready", "Unknown", "DeploymentUnavailable",
                      'The Deployment "mt-broker-ingress" is unavailable.')]}
        else:
            address = f"http://broker-ingress.knative-eventing.svc.cluster.local/{namespace}/{name}"
            status = {
                "observedGeneration": meta.get("generation", 1),
                "address": {"name": "http", "url": address},
                "addresses": [{"name": "http", "url": address}],
                "annotations": {"channelAPIVersion": "messaging.knative.dev/v1", "channelKind": "InMemoryChannel",
                                "channelName": f"{name}-kne-trigger"},
                "conditions": [_cond("Addressable"), _cond("DeadLetterSinkResolved", "True",
                                                           "DeadLetterSinkNotConfigured",
                                                           "No dead letter sink is configured."),
                               _cond("FilterReady"), _cond("IngressReady"), _cond("Ready"),
                               _cond("TriggerChannelReady")],
            }
        store.set_status(EVENTING, "brokers", name, namespace, status)


def with_knative(controller: FakeController, behaviour: KnativeBehaviour | None = None) -> FakeController:
    """Add the Knative behaviour to a FakeController (once)."""
    if not any(isinstance(h, KnativeBehaviour) for h in controller.hooks):
        controller.hooks.append(behaviour or KnativeBehaviour())
    for hook in controller.hooks:
        if isinstance(hook, KnativeBehaviour) and hook.controller is None:
            hook.controller = controller
    return controller
