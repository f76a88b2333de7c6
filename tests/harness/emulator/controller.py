"""``FakeController``: the status the real Kubernetes controllers write, deterministically."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.harness.emulator.common import (
    _ENDPOINTSLICE_CONTROLLER,
    _LABEL_MANAGED_BY,
    _LABEL_SERVICE_NAME,
    K8sRequest,
    _condition,
    _suffix,
    _without,
)
from tests.harness.emulator.pods import reconcile_deployment_pods, reconcile_job_pods
from tests.harness.emulator.store import Store


def _pod_template_labels(workload: Mapping[str, Any]) -> dict[str, str]:
    template = (workload.get("spec") or {}).get("template") or {}
    return dict((template.get("metadata") or {}).get("labels") or {})


def _workload_ready(kind: str, obj: Mapping[str, Any]) -> bool:
    status = obj.get("status") or {}
    if kind == "deployments":
        return _condition(obj, "Available") == "True"
    desired = status.get("desiredNumberScheduled", 0)
    return bool(desired) and status.get("numberReady", 0) >= desired


_T = "2025-01-01T00:00:00Z"


@dataclass
class FakeController:
    """Writes status the way the real Kubernetes/Knative controllers would, deterministically.

    Invoked synchronously inside the emulator before each request is served:

    * CRDs become ``Established``/``NamesAccepted`` (``Established: False`` if never_ready; the
      emulator then does not serve their custom resources, like a real apiserver).
    * Deployments (and DaemonSets) become available once they have been read (GET by name,
      any namespace) ``ready_after_reads[name]`` times, i.e. the GET number N+1 sees them ready;
      never_ready ones end in ``ProgressDeadlineExceeded``. Jobs complete, or fail like the Job
      controller reports it (``BackoffLimitExceeded``) if named in ``failing_jobs`` (or never_ready).
    * With ``pods`` (the default), Deployments get a ReplicaSet and Pods, Jobs get Pods, and all of
      them the Events the controllers, the scheduler and the kubelet record (``pods.py``); the pods
      of a never_ready Deployment report the kubelet's readiness-probe failures.
    * Services with a selector get an EndpointSlice (and a v1 Endpoints) once a ready Deployment/
      DaemonSet in their namespace has matching pod template labels and ``endpoints_after_lists``
      EndpointSlice LIST requests have been served (i.e. the LIST number N+1 sees it).
    * ``hooks`` are extra callables ``(store) -> None`` run after the built-in behaviours;
      ``store.request`` is the request about to be served (or None).
    """

    never_ready: set[str] = field(default_factory=set)
    failing_jobs: set[str] = field(default_factory=set)
    pods: bool = True
    ready_after_reads: dict[str, int] = field(default_factory=dict)
    endpoints_after_lists: int = 0
    hooks: list[Callable[[Store], None]] = field(default_factory=list)

    # Observed traffic (requests already served when the controller runs).
    reads: dict[str, int] = field(default_factory=dict, init=False)
    endpointslice_lists: int = field(default=0, init=False)
    _addresses: dict[tuple[str, str], str] = field(default_factory=dict, init=False, repr=False)
    _fingerprint: tuple[Any, ...] = field(default=(), init=False, repr=False)

    def __call__(self, store: Store) -> None:
        fingerprint = (
            store.db.rv,
            tuple(sorted(self.reads.items())),
            self.endpointslice_lists,
            tuple(sorted(self.never_ready)),
            tuple(sorted(self.failing_jobs)),
            tuple(sorted(self.ready_after_reads.items())),
            self.endpoints_after_lists,
        )
        if fingerprint != self._fingerprint:  # nothing changed since the last run: nothing to do
            self.reconcile(store)
            self._fingerprint = (store.db.rv, *fingerprint[1:])
        for hook in list(self.hooks):
            hook(store)
        if store.request is not None:
            self.observe(store.request)

    def observe(self, request: K8sRequest) -> None:
        if request.verb == "get" and request.plural in ("deployments", "daemonsets") and request.name:
            self.reads[request.name] = self.reads.get(request.name, 0) + 1
        if request.verb == "list" and request.plural == "endpointslices":
            self.endpointslice_lists += 1

    def is_ready(self, name: str) -> bool:
        if name in self.never_ready:
            return False
        return self.reads.get(name, 0) >= self.ready_after_reads.get(name, 0)

    def reconcile(self, store: Store) -> None:
        self._reconcile_crds(store)
        self._reconcile_deployments(store)
        self._reconcile_daemonsets(store)
        self._reconcile_jobs(store)
        self._reconcile_endpoints(store)

    # -- CRDs ---------------------------------------------------------------------------------

    def _reconcile_crds(self, store: Store) -> None:
        for crd in store.view("apiextensions.k8s.io/v1", "customresourcedefinitions"):
            name = crd["metadata"]["name"]
            spec = crd.get("spec") or {}
            names = dict(spec.get("names") or {})
            kind = names.get("kind", "")
            accepted = {
                "kind": kind,
                "listKind": names.get("listKind") or f"{kind}List",
                "plural": names.get("plural", ""),
                "singular": names.get("singular") or kind.lower(),
                **{k: names[k] for k in ("shortNames", "categories") if names.get(k)},
            }
            stored = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
            if name in self.never_ready:
                conditions = [
                    {
                        "type": "Established",
                        "status": "False",
                        "reason": "Installing",
                        "message": "the initial names have not yet been accepted",
                    },
                    {
                        "type": "NamesAccepted",
                        "status": "True",
                        "reason": "NoConflicts",
                        "message": "no conflicts found",
                    },
                ]
            else:
                conditions = [
                    {
                        "type": "Established",
                        "status": "True",
                        "reason": "InitialNamesAccepted",
                        "message": "the initial names have been accepted",
                    },
                    {
                        "type": "NamesAccepted",
                        "status": "True",
                        "reason": "NoConflicts",
                        "message": "no conflicts found",
                    },
                ]
            status = {"acceptedNames": accepted, "conditions": conditions, "storedVersions": stored}
            if crd.get("status") != status:
                store.set_status("apiextensions.k8s.io/v1", "customresourcedefinitions", name, None, status)

    # -- workloads ----------------------------------------------------------------------------

    def _reconcile_deployments(self, store: Store) -> None:
        for deployment in store.view("apps/v1", "deployments"):
            meta = deployment["metadata"]
            name = meta["name"]
            replicas = int((deployment.get("spec") or {}).get("replicas", 1))
            generation = meta.get("generation", 1)
            rs = f'ReplicaSet "{name}-{_suffix(name, 10)}"'
            if self.is_ready(name):
                status: dict[str, Any] = {
                    "observedGeneration": generation,
                    "replicas": replicas,
                    "updatedReplicas": replicas,
                    "readyReplicas": replicas,
                    "availableReplicas": replicas,
                    "conditions": [
                        {
                            "type": "Available",
                            "status": "True",
                            "reason": "MinimumReplicasAvailable",
                            "message": "Deployment has minimum availability.",
                        },
                        {
                            "type": "Progressing",
                            "status": "True",
                            "reason": "NewReplicaSetAvailable",
                            "message": f"{rs} has successfully progressed.",
                        },
                    ],
                }
            else:
                progressing = (
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": f"{rs} has timed out progressing.",
                    }
                    if name in self.never_ready
                    else {
                        "type": "Progressing",
                        "status": "True",
                        "reason": "ReplicaSetUpdated",
                        "message": f"{rs} is progressing.",
                    }
                )
                status = {
                    "observedGeneration": generation,
                    "replicas": replicas,
                    "updatedReplicas": replicas,
                    "unavailableReplicas": replicas,
                    "conditions": [
                        {
                            "type": "Available",
                            "status": "False",
                            "reason": "MinimumReplicasUnavailable",
                            "message": "Deployment does not have minimum availability.",
                        },
                        progressing,
                    ],
                }
            if deployment.get("status") != status:
                store.set_status("apps/v1", "deployments", name, meta.get("namespace"), status)
            if self.pods:
                failing = name in self.never_ready
                reconcile_deployment_pods(store, deployment, ready=self.is_ready(name), failing=failing)

    def _reconcile_daemonsets(self, store: Store) -> None:
        for daemonset in store.view("apps/v1", "daemonsets"):
            meta = daemonset["metadata"]
            ready = self.is_ready(meta["name"])
            status = {
                "observedGeneration": meta.get("generation", 1),
                "currentNumberScheduled": 1,
                "desiredNumberScheduled": 1,
                "numberMisscheduled": 0,
                "updatedNumberScheduled": 1,
                **({"numberReady": 1, "numberAvailable": 1} if ready else {"numberReady": 0, "numberUnavailable": 1}),
            }
            if daemonset.get("status") != status:
                store.set_status("apps/v1", "daemonsets", meta["name"], meta.get("namespace"), status)

    def _reconcile_jobs(self, store: Store) -> None:
        for job in store.view("batch/v1", "jobs"):
            meta = job["metadata"]
            name = meta["name"]
            failed = name in self.failing_jobs or name in self.never_ready
            backoff_limit = int((job.get("spec") or {}).get("backoffLimit", 6))
            if failed:
                message = "Job has reached the specified backoff limit"
                status: dict[str, Any] = {
                    "startTime": _T,
                    "failed": backoff_limit + 1,
                    "ready": 0,
                    "terminating": 0,
                    "uncountedTerminatedPods": {},
                    "conditions": [
                        {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
                         "message": message, "lastProbeTime": _T, "lastTransitionTime": _T},
                        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                         "message": message, "lastProbeTime": _T, "lastTransitionTime": _T},
                    ],
                }
            else:
                message = "Reached expected number of succeeded pods"
                status = {
                    "startTime": _T,
                    "completionTime": _T,
                    "succeeded": 1,
                    "ready": 0,
                    "terminating": 0,
                    "uncountedTerminatedPods": {},
                    "conditions": [
                        {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                         "message": message, "lastProbeTime": _T, "lastTransitionTime": _T},
                        {"type": "Complete", "status": "True", "reason": "CompletionsReached",
                         "message": message, "lastProbeTime": _T, "lastTransitionTime": _T},
                    ],
                }
            if job.get("status") != status:
                store.set_status("batch/v1", "jobs", name, meta.get("namespace"), status)
            if self.pods:
                reconcile_job_pods(store, job, failed=failed, backoff_limit=backoff_limit)

    # -- endpoints ----------------------------------------------------------------------------

    def _address(self, namespace: str, name: str) -> str:
        key = (namespace, name)
        if key not in self._addresses:
            self._addresses[key] = f"10.1.0.{len(self._addresses) + 1}"
        return self._addresses[key]

    @staticmethod
    def _target_port(port: Mapping[str, Any], workloads: list[dict[str, Any]]) -> int:
        target = port.get("targetPort", port.get("port"))
        if isinstance(target, int):
            return target
        if isinstance(target, str) and target.isdigit():
            return int(target)
        for workload in workloads:
            template_spec = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
            for container in template_spec.get("containers") or []:
                for cport in container.get("ports") or []:
                    if cport.get("name") == target and "containerPort" in cport:
                        return int(cport["containerPort"])
        return int(port.get("port", 0))

    @staticmethod
    def _host_network_pods(store: Store, namespace: str, selector: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Endpoints addresses (ip, nodeName, targetRef) of the ready host-network pods the selector picks."""
        found = []
        for pod in sorted(store.view("v1", "pods", namespace), key=lambda p: str(p["metadata"]["name"])):
            meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
            labels = meta.get("labels") or {}
            if not spec.get("hostNetwork") or not status.get("podIP") or _condition(pod, "Ready") != "True":
                continue
            if all(labels.get(k) == v for k, v in selector.items()):
                found.append({"ip": status["podIP"], "nodeName": spec.get("nodeName", ""),
                              "targetRef": {"kind": "Pod", "namespace": namespace, "name": meta["name"],
                                            "uid": meta.get("uid", "")}})
        return found

    def _reconcile_endpoints(self, store: Store) -> None:
        services = store.view("v1", "services")
        workloads = [(kind, obj) for kind in ("deployments", "daemonsets") for obj in store.view("apps/v1", kind)]
        wanted: set[tuple[str, str]] = set()
        for service in services:
            meta, spec = service["metadata"], service.get("spec") or {}
            selector = spec.get("selector") or {}
            if not selector or spec.get("type") == "ExternalName":
                continue
            namespace, svc_name = meta.get("namespace", "default"), meta["name"]
            matching = [
                obj
                for kind, obj in workloads
                if obj["metadata"].get("namespace") == namespace
                and _workload_ready(kind, obj)
                and all(_pod_template_labels(obj).get(k) == v for k, v in selector.items())
            ]
            slice_name = f"{svc_name}-{_suffix(f'{namespace}/{svc_name}')}"
            wanted.add((namespace, slice_name))
            existing = store.peek("discovery.k8s.io/v1", "endpointslices", slice_name, namespace)
            if existing is None and (not matching or self.endpointslice_lists < self.endpoints_after_lists):
                continue
            address = self._address(namespace, svc_name)
            ports = [
                {
                    "name": port.get("name", ""),
                    "port": self._target_port(port, matching),
                    "protocol": port.get("protocol", "TCP"),
                    **({"appProtocol": port["appProtocol"]} if port.get("appProtocol") else {}),
                }
                for port in spec.get("ports") or []
            ]
            # Host-network pods are reached at their node's IP and named by targetRef (the API server's
            # service proxy needs both); pod-network pods keep a stand-in address per Service.
            host_pods = self._host_network_pods(store, namespace, selector) if matching else []
            conditions = {"ready": True, "serving": True, "terminating": False}
            if host_pods:
                endpoints = [{"addresses": [a["ip"]], "conditions": conditions, "nodeName": a["nodeName"],
                              "targetRef": a["targetRef"]} for a in host_pods]
            else:
                endpoints = [{"addresses": [address], "conditions": conditions}] if matching else []
            owner = {
                "apiVersion": "v1",
                "kind": "Service",
                "name": svc_name,
                "uid": meta.get("uid"),
                "controller": True,
                "blockOwnerDeletion": True,
            }
            endpoint_slice = {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": slice_name,
                    "namespace": namespace,
                    "generateName": f"{svc_name}-",
                    "labels": {_LABEL_SERVICE_NAME: svc_name, _LABEL_MANAGED_BY: _ENDPOINTSLICE_CONTROLLER},
                    "ownerReferences": [owner],
                },
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": ports,
            }
            self._put_if_changed(store, "discovery.k8s.io/v1", "endpointslices", existing, endpoint_slice)
            subsets = (
                [
                    {
                        "addresses": host_pods or [{"ip": address}],
                        "ports": [{k: v for k, v in p.items() if k != "name" or v} for p in ports],
                    }
                ]
                if matching
                else []
            )
            legacy = {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": svc_name, "namespace": namespace},
                "subsets": subsets,
            }
            self._put_if_changed(store, "v1", "endpoints", store.peek("v1", "endpoints", svc_name, namespace), legacy)
        # Garbage-collect the slices of deleted services (ownerReferences).
        for endpoint_slice in store.view("discovery.k8s.io/v1", "endpointslices"):
            meta = endpoint_slice["metadata"]
            labels = meta.get("labels") or {}
            if labels.get(_LABEL_MANAGED_BY) != _ENDPOINTSLICE_CONTROLLER:
                continue
            if (meta.get("namespace"), meta["name"]) not in wanted:
                store.delete("discovery.k8s.io/v1", "endpointslices", meta["name"], meta.get("namespace"))
                if store.peek("v1", "services", labels.get(_LABEL_SERVICE_NAME, ""), meta.get("namespace")) is None:
                    store.delete("v1", "endpoints", labels.get(_LABEL_SERVICE_NAME, ""), meta.get("namespace"))

    @staticmethod
    def _put_if_changed(
        store: Store, api_version: str, plural: str, existing: dict[str, Any] | None, desired: dict[str, Any]
    ) -> None:
        if existing is not None:
            merged = {**existing, **_without(desired, "metadata")}
            merged["metadata"] = {**existing["metadata"], **desired["metadata"]}
            if merged == existing:
                return
            desired = merged
        store.put(api_version, plural, desired)

