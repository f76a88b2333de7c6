"""An in-process Kubernetes API emulator that speaks real HTTP on 127.0.0.1.

The project's real (synchronous) ``lightkube.Client`` runs unchanged against it::

    with ApiServer(controller=FakeController()) as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        client = lightkube.Client(config=lightkube.KubeConfig.from_file(kubeconfig), field_manager="x")
        client.apply(ConfigMap(metadata=ObjectMeta(name="cm", namespace="default"), data={"k": "v"}))
        assert api.get("v1", "configmaps", "cm", "default")["data"] == {"k": "v"}

Modules:

* ``server``: kmock's ``KubernetesEmulator`` (HTTP plumbing, response rendering, DSL reactions such
  as ``api.emulator["get /healthz"] << b"ok"``, discovery) with the CRUD verbs of a real apiserver,
  and ``ApiServer`` (a background thread with its own asyncio loop);
* ``store``: the indexed object storage and the write semantics: uid, resourceVersion (no-op writes
  keep it), generation, status subresources, finalizers, namespaces that must exist (404) and
  cannot take new objects while Terminating (403), the namespace controller, the CRD cleanup
  finalizer and background garbage collection by ownerReferences;
* ``fields``: server-side apply with ``managedFields``, conflicts (409 unless force) and removal of
  fields a manager stops applying;
* ``admission``: built-in validation of core kinds (422 Invalid with a Status body);
* ``selectors``: label and field selectors;
* ``controller``: ``FakeController``, which writes status like the real controllers (CRDs,
  Deployments, DaemonSets, Jobs, EndpointSlices, Pods and Events);
* ``proxy``: the API server's service proxy, resolved like kube-apiserver's and forwarded over real HTTP
  (host-network pods, whose IP is their Node's InternalIP);
* ``microk8s``: seeding like a fresh MicroK8s node (Node, CoreDNS, kube-dns).

``python -m tests.harness.serve`` serves it for people (docs/emulator.md).
"""

from tests.harness.emulator.common import K8sRequest, RecordedRequest
from tests.harness.emulator.controller import FakeController
from tests.harness.emulator.selectors import parse_label_selector
from tests.harness.emulator.server import DEFAULT_NAMESPACES, ApiServer, KubernetesApiEmulator
from tests.harness.emulator.store import Store

__all__ = [
    "DEFAULT_NAMESPACES",
    "ApiServer",
    "FakeController",
    "K8sRequest",
    "KubernetesApiEmulator",
    "RecordedRequest",
    "Store",
    "parse_label_selector",
]
