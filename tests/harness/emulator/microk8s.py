"""What a fresh MicroK8s node's API holds before hybrid-knative: the node, and the dns addon's CoreDNS
(ServiceAccount, ConfigMap with MicroK8s's Corefile, Deployment, the kube-dns Service on
10.152.183.10). MicroK8s applies its addons with ``kubectl apply``, so these objects are owned by the
``kubectl-client-side-apply`` field manager, as on a real node."""

from __future__ import annotations

from typing import Any

from tests.harness.emulator.server import ApiServer

NODE_IP = "10.0.0.5"
NODE_NAME = "node-1"
CLUSTER_DNS_IP = "10.152.183.10"
COREDNS_IMAGE = "coredns/coredns:1.10.1"
KUBECTL_MANAGER = "kubectl-client-side-apply"

# The Corefile `microk8s enable dns` writes (MicroK8s's dns addon, coredns.yaml)
STOCK_COREFILE = """\
.:53 {
    errors
    health {
      lameduck 5s
    }
    ready
    log . {
      class error
    }
    kubernetes cluster.local in-addr.arpa ip6.arpa {
      pods insecure
      fallthrough in-addr.arpa ip6.arpa
    }
    prometheus :9153
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
}
"""

_DNS_LABELS = {"k8s-app": "kube-dns"}


def node(node_ip: str = NODE_IP, name: str = NODE_NAME) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "microk8s.io/cluster": "true",
                "node.kubernetes.io/microk8s-controlplane": "microk8s-controlplane",
            },
        },
        "spec": {},
        "status": {
            "addresses": [{"type": "InternalIP", "address": node_ip}, {"type": "Hostname", "address": name}],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                }
            ],
            "nodeInfo": {  # every field is required (lightkube's models refuse a partial nodeInfo)
                "architecture": "amd64",
                "bootID": "6f5f3b9e-0c2d-4b8e-9a51-3c1f2f6f7a10",
                "containerRuntimeVersion": "containerd://1.7.28",
                "kernelVersion": "6.8.0-49-generic",
                "kubeProxyVersion": "v1.34.2",
                "kubeletVersion": "v1.34.2",
                "machineID": "3b0a6a1d2c4e4f6a8b9c0d1e2f3a4b5c",
                "operatingSystem": "linux",
                "osImage": "Ubuntu 24.04.1 LTS",
                "systemUUID": "3b0a6a1d-2c4e-4f6a-8b9c-0d1e2f3a4b5c",
            },
            "capacity": {"cpu": "2", "memory": "4025788Ki", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "3923388Ki", "pods": "110"},
        },
    }


def coredns_objects(corefile: str = STOCK_COREFILE) -> list[tuple[str, str, dict[str, Any]]]:
    """(apiVersion, plural, object) of the dns addon, in the order MicroK8s applies them."""
    meta = {"namespace": "kube-system", "labels": {**_DNS_LABELS, "kubernetes.io/name": "CoreDNS"}}
    return [
        ("v1", "serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                   "metadata": {"name": "coredns", "namespace": "kube-system"}}),
        ("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": "coredns", "namespace": "kube-system"},
                              "data": {"Corefile": corefile}}),
        ("apps/v1", "deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "coredns", **meta},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": dict(_DNS_LABELS)},
                "template": {
                    "metadata": {"labels": dict(_DNS_LABELS)},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "priorityClassName": "system-cluster-critical",
                        "dnsPolicy": "Default",
                        "containers": [{
                            "name": "coredns",
                            "image": COREDNS_IMAGE,
                            "args": ["-conf", "/etc/coredns/Corefile"],
                            "ports": [{"containerPort": 53, "name": "dns", "protocol": "UDP"},
                                      {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
                                      {"containerPort": 9153, "name": "metrics", "protocol": "TCP"}],
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181, "scheme": "HTTP"}},
                            "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": True}],
                        }],
                        "volumes": [{"name": "config-volume", "configMap": {
                            "name": "coredns", "items": [{"key": "Corefile", "path": "Corefile"}]}}],
                    },
                },
            },
        }),
        ("v1", "services", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-dns", **meta},
            "spec": {
                "selector": dict(_DNS_LABELS),
                "clusterIP": CLUSTER_DNS_IP,
                "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                          {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                          {"name": "metrics", "port": 9153, "protocol": "TCP"}],
            },
        }),
    ]


def seed_microk8s(server: ApiServer, *, node_ip: str = NODE_IP, corefile: str = STOCK_COREFILE) -> None:
    """Seed the objects of a fresh MicroK8s node with the dns addon enabled (the default namespaces
    exist already: the emulator creates them like a real apiserver)."""
    server.put_object("v1", "nodes", node(node_ip), manager="kubelet")
    for api_version, plural, obj in coredns_objects(corefile):
        server.put_object(api_version, plural, obj, manager=KUBECTL_MANAGER)
    server.reconcile()
