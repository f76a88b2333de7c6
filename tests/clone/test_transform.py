"""One test per transformation clone makes to a source object (pure functions, no cluster)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from hybrid_knative.clone import images
from hybrid_knative.clone.run import CloneOptions, target_pull_auth
from hybrid_knative.clone.select import is_platform, parse_selector, split_bridges
from hybrid_knative.clone.transform import (
    Plan,
    is_public_model,
    local_models,
    pin_images,
    replay_traffic,
    rewrite_domains,
    secret_refusal,
    strip_knative_bookkeeping,
    strip_server_fields,
    suffix_consumer_group,
    transform,
)
from hybrid_knative.errors import ConfigError
from hybrid_knative.system.image_registry import registry_host, split_reference

SERVING = "serving.knative.dev/v1"


def plan(**kw: Any) -> Plan:
    values: dict[str, Any] = {"source_zone": "hk.internal", "target_domain": "fns.acme.com", "cluster_suffix": "gke"}
    values.update(kw)
    return Plan(**values)


def ksvc(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": SERVING, "kind": "Service",
            "metadata": {"name": "hello", "namespace": "shop", "uid": "u-1", "resourceVersion": "42", "generation": 3,
                         "creationTimestamp": "2025-01-01T00:00:00Z", "managedFields": [{"manager": "kn"}],
                         "ownerReferences": [{"kind": "X", "name": "y", "uid": "z", "apiVersion": "v1"}],
                         "finalizers": ["x"],
                         "labels": {"app": "shop", "serving.knative.dev/serviceUID": "u-1",
                                    "serving.knative.dev/route": "hello"},
                         "annotations": {"serving.knative.dev/creator": "admin",
                                         "serving.knative.dev/lastModifier": "admin",
                                         "serving.knative.dev/routes": "hello", "team": "a"}},
            "spec": {"template": {"metadata": {"annotations": {"autoscaling.knative.dev/min-scale": "1",
                                                               "client.knative.dev/user-image": "localhost:32000/h:1"}},
                                  "spec": {"containers": [{"name": "user-container",
                                                           "image": "localhost:32000/hello:1"}]}}, **spec},
            "status": {"observedGeneration": 3, "url": "http://hello-shop.hk.internal",
                       "latestReadyRevisionName": "hello-00003"}}


def test_server_fields_are_stripped() -> None:
    out = strip_server_fields(ksvc())
    assert "status" not in out
    assert set(out["metadata"]) == {"name", "namespace", "labels", "annotations"}
    ns = strip_server_fields({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "uid": "1"},
                              "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
    assert ns == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    sa = strip_server_fields({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "r", "namespace": "s"},
                              "secrets": [{"name": "r-token"}]})
    assert "secrets" not in sa


def test_knative_annotations_and_uid_labels_are_dropped() -> None:
    out = strip_knative_bookkeeping(strip_server_fields(ksvc()))
    assert out["metadata"]["labels"] == {"app": "shop"}
    assert out["metadata"]["annotations"] == {"team": "a"}
    assert out["spec"]["template"]["metadata"]["annotations"] == {"autoscaling.knative.dev/min-scale": "1"}


def test_images_are_pinned_to_the_running_digest_in_the_target_registry() -> None:
    digest = "sha256:" + "ab" * 32
    revisions = {("shop", "hello-00003"): {"status": {"containerStatuses": [
        {"name": "user-container", "imageDigest": f"localhost:32000/hello@{digest}"}]}}}
    obj = ksvc()
    found = images.resolve([obj], revisions, lookup=lambda ref: pytest.fail("the registry is not asked"))
    key = ("Service", "shop", "hello", "template/user-container")
    assert found == {key: f"localhost:32000/hello@{digest}"}
    copies = images.plan_copies(found, "europe-docker.pkg.dev/acme/fns", images.source_tags([obj], found))
    item = copies[f"localhost:32000/hello@{digest}"]
    assert item.target == f"europe-docker.pkg.dev/acme/fns/hello@{digest}" and item.tag == "1"
    out = pin_images(obj, plan(pins=images.pins(found, copies)))
    assert out["spec"]["template"]["spec"]["containers"][0]["image"] == item.target


def test_an_image_without_a_running_revision_is_resolved_in_its_registry() -> None:
    obj = {"apiVersion": "sources.knative.dev/v1", "kind": "ContainerSource",
           "metadata": {"name": "t", "namespace": "s"},
           "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "docker.io/acme/tick:2"}]}}}}
    asked: list[str] = []
    found = images.resolve([obj], {}, lookup=lambda ref: asked.append(ref) or "sha256:" + "cd" * 32)
    assert asked == ["docker.io/acme/tick:2"]
    assert found == {("ContainerSource", "s", "t", "template/c"): "docker.io/acme/tick@sha256:" + "cd" * 32}
    assert images.target_reference("docker.io/acme/tick@sha256:" + "cd" * 32, "r.io/p") == \
        "r.io/p/acme/tick@sha256:" + "cd" * 32


@pytest.mark.parametrize(("before", "after"), [
    ("http://orders-shop.hk.internal/api", "http://orders-shop.fns.acme.com/api"),
    ("https://orders-shop.hk.internal", "https://orders-shop.fns.acme.com"),
    ("orders-shop.hk.internal", "orders-shop.fns.acme.com"),
    ("http://hello.shop.svc.cluster.local/x", "http://hello-shop.fns.acme.com/x"),  # a cloned public KService
    ("http://db.shop.svc.cluster.local:5432", "http://db.shop.svc.cluster.local:5432"),  # a plain Service: kept
    ("http://broker-ingress.knative-eventing.svc.cluster.local/shop/default",
     "http://broker-ingress.knative-eventing.svc.cluster.local/shop/default"),
    ("http://example.com/hk.internal", "http://example.com/hk.internal"),
    ("fast", "fast"),
])
def test_domains_are_rewritten_in_env_values(before: str, after: str) -> None:
    obj = ksvc()
    obj["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "X", "value": before}]
    out = rewrite_domains(obj, plan(public_services={("shop", "hello")}))
    assert out["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] == after


def test_domains_are_rewritten_in_sinks_subscribers_dead_letters_and_domain_mappings() -> None:
    p = plan(public_services={("shop", "hello")})
    trigger = {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
               "metadata": {"name": "t", "namespace": "shop"},
               "spec": {"broker": "default", "subscriber": {"uri": "http://hello.shop.svc.cluster.local"},
                        "delivery": {"deadLetterSink": {"uri": "http://dlq-shop.hk.internal"}}}}
    out = rewrite_domains(trigger, p)
    assert out["spec"]["subscriber"]["uri"] == "http://hello-shop.fns.acme.com"
    assert out["spec"]["delivery"]["deadLetterSink"]["uri"] == "http://dlq-shop.fns.acme.com"
    ping = {"apiVersion": "sources.knative.dev/v1", "kind": "PingSource",
            "metadata": {"name": "p", "namespace": "shop"},
            "spec": {"schedule": "* * * * *", "sink": {"uri": "http://hello-shop.hk.internal"}}}
    assert rewrite_domains(ping, p)["spec"]["sink"]["uri"] == "http://hello-shop.fns.acme.com"
    mapping = {"apiVersion": "serving.knative.dev/v1beta1", "kind": "DomainMapping",
               "metadata": {"name": "api.hk.internal", "namespace": "shop"},
               "spec": {"ref": {"apiVersion": SERVING, "kind": "Service", "name": "hello"}}}
    assert rewrite_domains(mapping, p)["metadata"]["name"] == "api.fns.acme.com"
    # a cluster-local KService stays cluster-local
    assert rewrite_domains(trigger, plan())["spec"]["subscriber"]["uri"] == "http://hello.shop.svc.cluster.local"


def test_traffic_to_byo_revision_names_is_replayed() -> None:
    obj = ksvc(traffic=[{"revisionName": "hello-v2", "percent": 100, "tag": "current"}])
    obj["spec"]["template"]["metadata"]["name"] = "hello-v2"
    p = plan()
    assert replay_traffic(obj, p) == obj and p.warnings == []


def test_traffic_to_generated_revisions_collapses_to_latest_with_a_warning() -> None:
    obj = ksvc(traffic=[{"revisionName": "hello-00002", "percent": 80}, {"latestRevision": True, "percent": 20}])
    p = plan()
    out = replay_traffic(obj, p)
    assert out["spec"]["traffic"] == [{"latestRevision": True, "percent": 100}]
    assert len(p.warnings) == 1 and "hello-00002" in p.warnings[0] and "collapsed" in p.warnings[0]


def test_kafka_consumer_groups_get_a_per_cluster_suffix() -> None:
    src = {"apiVersion": "sources.knative.dev/v1beta1", "kind": "KafkaSource",
           "metadata": {"name": "k", "namespace": "shop"},
           "spec": {"consumerGroup": "orders", "bootstrapServers": ["kafka:9092"], "topics": ["orders"]}}
    out = suffix_consumer_group(src, plan())
    assert out["spec"]["consumerGroup"] == "orders-gke"
    assert suffix_consumer_group(out, plan())["spec"]["consumerGroup"] == "orders-gke"  # never twice
    no_group = {**src, "spec": {"topics": ["orders"]}}
    assert suffix_consumer_group(no_group, plan()) == no_group  # Knative derives one from the (new) UID


def secret(name: str, type_: str = "Opaque", **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": type_,
            "metadata": {"name": name, "namespace": "shop", "uid": "1", **meta}, "data": {"k": "dg=="}}


def test_secrets_policy_skip_and_copy() -> None:
    skip = plan()
    assert transform(secret("db"), skip, pull_secrets=set()) is None
    assert "--secrets copy" in skip.skipped[0]
    copied = transform(secret("db"), plan(secrets="copy"), pull_secrets=set())
    assert copied == {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                      "metadata": {"name": "db", "namespace": "shop"}, "data": {"k": "dg=="}}


@pytest.mark.parametrize("obj", [
    secret("t", "kubernetes.io/service-account-token"),
    secret("t2", annotations={"kubernetes.io/service-account.name": "default"}),
    secret("route-tls", "kubernetes.io/tls", labels={"networking.internal.knative.dev/certificate-uid": "x"}),
    secret("kn-tls", "kubernetes.io/tls", ownerReferences=[
        {"apiVersion": "networking.internal.knative.dev/v1alpha1", "kind": "Certificate", "name": "c", "uid": "u"}]),
])
def test_tokens_and_knative_tls_are_never_copied(obj: dict[str, Any]) -> None:
    p = plan(secrets="copy")
    assert secret_refusal(obj) is not None
    assert transform(obj, p, pull_secrets=set()) is None and len(p.skipped) == 1


def test_pull_secrets_are_recreated_for_the_target_registry(tmp_path: Path) -> None:
    auth = base64.b64encode(b"u:p").decode()
    authfile = tmp_path / "auth.json"
    authfile.write_text(json.dumps({"auths": {"europe-docker.pkg.dev": {"auth": auth},
                                              "other.io": {"auth": "eDp5"}}}))
    p = plan(pull_secret=target_pull_auth(authfile, "europe-docker.pkg.dev/acme/fns"))
    out = transform(secret("regcred", "kubernetes.io/dockerconfigjson"), p, pull_secrets=set())
    assert out is not None and out["type"] == "kubernetes.io/dockerconfigjson"
    payload = json.loads(base64.b64decode(out["data"][".dockerconfigjson"]))
    assert payload == {"auths": {"europe-docker.pkg.dev": {"auth": auth}}}
    # without target credentials: not copied, and the references go (nodes need pull access of their own)
    bare = plan()
    assert transform(secret("regcred", "kubernetes.io/dockerconfigjson"), bare, pull_secrets=set()) is None
    obj = ksvc()
    obj["spec"]["template"]["spec"]["imagePullSecrets"] = [{"name": "regcred"}]
    cleaned = transform(obj, bare, pull_secrets={("shop", "regcred")})
    assert cleaned is not None and "imagePullSecrets" not in cleaned["spec"]["template"]["spec"]


def test_platform_objects_are_recognised_by_their_labels() -> None:
    assert is_platform({"metadata": {"labels": {"app.kubernetes.io/managed-by": "hybrid-knative"}}})
    assert not is_platform({"metadata": {"labels": {"hybrid-knative.dev/project": "shop"}}})


def test_selector_and_options_are_validated(tmp_path: Path) -> None:
    assert parse_selector("a=b, c==d") == {"a": "b", "c": "d"}
    for bad in ("a!=b", "a", "a in (b)"):
        with pytest.raises(ConfigError):
            parse_selector(bad)
    with pytest.raises(ConfigError, match="registry"):
        CloneOptions(registry="https://x.io/a")
    with pytest.raises(ConfigError, match="secrets"):
        CloneOptions(secrets="all")
    with pytest.raises(ConfigError, match="not found"):
        CloneOptions(registry_authfile=tmp_path / "missing.json")
    assert CloneOptions(registry="europe-docker.pkg.dev/acme/fns/").registry == "europe-docker.pkg.dev/acme/fns"


def test_image_references_are_split() -> None:
    assert split_reference("127.0.0.1:5000/shop/hello:1") == ("127.0.0.1:5000/shop/hello", "1", None)
    assert split_reference("localhost:32000/h@sha256:ab") == ("localhost:32000/h", None, "sha256:ab")
    assert registry_host("nginx:1") == "docker.io"
    assert registry_host("localhost/x") == "localhost"


# --- models (InferenceService storage) --------------------------------------------------------------

def isvc(uri: str, *, account: str | None = "hk-model-store", **predictor: Any) -> dict[str, Any]:
    pred: dict[str, Any] = {"model": {"modelFormat": {"name": "sklearn"}, "runtime": "kserve-sklearnserver",
                                      "storageUri": uri}, **predictor}
    if account:
        pred["serviceAccountName"] = account
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "iris", "namespace": "shop"}, "spec": {"predictor": pred}}


@pytest.mark.parametrize(("uri", "account", "why"), [
    ("s3://models/iris/", "hk-model-store", "local model store"),
    ("pvc://models-pvc/iris", None, "PersistentVolumeClaim"),
    ("gridfs://models/iris", None, "GridFS"),
])
def test_models_only_the_local_cluster_reads_are_found(uri: str, account: str | None, why: str) -> None:
    found = local_models(isvc(uri, account=account), plan())
    assert len(found) == 1 and uri in found[0] and why in found[0]


@pytest.mark.parametrize("uri", ["s3://acme-models/iris/", "gs://acme/iris", "hf://org/model",
                                 "oci://europe-docker.pkg.dev/acme/models/iris:1"])
def test_models_in_reachable_storage_are_kept_as_they_are(uri: str) -> None:
    obj = isvc(uri, account="cloud-reader" if uri.startswith("s3://") else None)
    assert local_models(obj, plan()) == []
    assert transform(obj, plan(), pull_secrets=set()) is not None
    out = transform(obj, plan(model_uris=(("s3://models/", "s3://x/"),)), pull_secrets=set())
    assert out is not None and out["spec"]["predictor"]["model"]["storageUri"] == uri


def test_oci_models_are_images_resolved_pinned_and_copied() -> None:
    obj = isvc("oci://localhost:32000/models/iris:1", account=None)
    assert local_models(obj, plan()) == []  # not refused: an image, copied to --registry like the others
    digest = "sha256:" + "c" * 64
    found = images.resolve([obj], {}, lambda ref: digest if ref == "localhost:32000/models/iris:1" else None)
    key = ("InferenceService", "shop", "iris", "predictor/model-uri-0")
    assert found == {key: f"localhost:32000/models/iris@{digest}"}
    copies = images.plan_copies(found, "europe-docker.pkg.dev/acme/fns", images.source_tags([obj], found))
    assert [c.tag for c in copies.values()] == ["1"]
    p = plan(pins=images.pins(found, copies))
    out = transform(obj, p, pull_secrets=set())
    assert out is not None
    assert out["spec"]["predictor"]["model"]["storageUri"] == f"oci://europe-docker.pkg.dev/acme/fns/models/iris@{digest}"


def test_model_uri_rewrite_moves_the_model_and_its_account() -> None:
    p = plan(model_uris=(("s3://models/", "s3://acme-models/serving/"),), model_service_account="cloud-models")
    obj = isvc("s3://models/iris/")
    assert local_models(obj, p) == []
    out = transform(obj, p, pull_secrets=set())
    assert out is not None
    assert out["spec"]["predictor"]["model"]["storageUri"] == "s3://acme-models/serving/iris/"
    assert out["spec"]["predictor"]["serviceAccountName"] == "cloud-models"
    assert obj["spec"]["predictor"]["model"]["storageUri"] == "s3://models/iris/"  # the source's is untouched


def test_model_uri_rewrite_without_an_account_drops_the_local_one_with_a_warning() -> None:
    p = plan(model_uris=(("s3://models/", "gs://acme-models/"),))
    out = transform(isvc("s3://models/iris/"), p, pull_secrets=set())
    assert out is not None and "serviceAccountName" not in out["spec"]["predictor"]
    assert any("default ServiceAccount" in w for w in p.warnings)


def test_model_uris_are_found_in_every_component_and_storage_uris() -> None:
    obj = isvc("s3://models/iris/")
    obj["spec"]["transformer"] = {"storageUris": [{"uri": "pvc://feat/x", "mountPath": "/mnt/x"}],
                                  "containers": [{"name": "t", "image": "r/t:1"}]}
    found = local_models(obj, plan())
    assert len(found) == 2 and any("pvc://feat/x" in f for f in found)


def test_clone_options_refuse_a_model_uri_rewrite_to_local_storage() -> None:
    with pytest.raises(ConfigError, match="not reachable from another cluster"):
        CloneOptions(model_uris=(("s3://models/", "pvc://other/"),))
    with pytest.raises(ConfigError, match="storage URI prefixes"):
        CloneOptions(model_uris=(("models", "s3://x/"),))


# --- ROS 2 bridges ----------------------------------------------------------------------------------

def bridge_objects() -> list[dict[str, Any]]:
    from hybrid_knative.ros2.objects import render_bridge, spec_from_events

    spec = spec_from_events([{"topic": "/chatter", "type": "std_msgs/msg/String", "reply_to": "/detections",
                              "reply_type": "std_msgs/msg/String"}],
                            image="localhost:32000/shop/detect-ros2-bridge:1", node="robot-1")
    return render_bridge("shop", "detect", spec, namespace="shop")


def test_bridge_parts_are_split_from_the_triggers_that_feed_functions() -> None:
    objs = bridge_objects()
    kept, bridges = split_bridges(objs)
    assert [(o["kind"], o["spec"]["subscriber"]["ref"]["kind"]) for o in kept] == [("Trigger", "Service")]
    assert kept[0]["spec"]["subscriber"]["ref"]["apiVersion"] == SERVING
    assert list(bridges) == ["shop/detect-ros2"]
    assert sorted(bridges["shop/detect-ros2"]) == ["ConfigMap detect-ros2-config", "Deployment detect-ros2",
                                                   "Service detect-ros2", "Trigger detect-ros2-reply"]


def test_a_plain_service_loses_the_source_clusters_addresses() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "detect-ros2", "namespace": "shop"},
           "spec": {"clusterIP": "10.152.183.7", "clusterIPs": ["10.152.183.7"], "ipFamilies": ["IPv4"],
                    "ipFamilyPolicy": "SingleStack", "type": "NodePort", "selector": {"a": "b"},
                    "ports": [{"port": 80, "targetPort": "http", "nodePort": 31000}]}}
    out = strip_server_fields(svc)
    assert out["spec"] == {"type": "NodePort", "selector": {"a": "b"}, "ports": [{"port": 80, "targetPort": "http"}]}


@pytest.mark.parametrize(("labels", "annotations", "public"), [
    ({}, {}, True),
    ({}, {"serving.kserve.io/deploymentMode": "Serverless"}, True),
    ({}, {"serving.kserve.io/deploymentMode": "Standard"}, False),  # an in-cluster URL only
    ({}, {"serving.kserve.io/deploymentMode": "RawDeployment"}, False),
    ({"networking.kserve.io/visibility": "cluster-local"}, {}, False),
])
def test_which_models_are_invoked_through_their_new_url(labels: dict[str, str], annotations: dict[str, str],
                                                        public: bool) -> None:
    obj = isvc("gs://acme/iris", account=None)
    obj["metadata"].update(labels=labels, annotations=annotations)
    assert is_public_model(obj) is public
    assert is_public_model(ksvc()) is False
