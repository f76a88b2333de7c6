"""clone end to end: two API emulators, two real registries (the target behind htpasswd), real skopeo."""

from __future__ import annotations

from typing import Any

import pytest

from hybrid_knative.clone.run import CloneOptions, CloneReport, clone
from hybrid_knative.clone.transform import CHECKSUM
from hybrid_knative.errors import ConfigError, HybridError, PermanentError
from hybrid_knative.kube.api import KubeApi
from tests.clone.conftest import SOURCE_ZONE, TARGET_DOMAIN, World, validating
from tests.clone.parts import EVENTING, SERVING, manifest_digest

pytestmark = pytest.mark.integration


def run(world: World, applied: list[dict[str, Any]] | None = None, *, target: KubeApi | None = None,
        **options: Any) -> tuple[CloneReport, KubeApi]:
    source, tgt = world.kubes()
    target = target or tgt
    if applied is not None:
        validating(target, applied)
    values: dict[str, Any] = {"registry": world.registry, "registry_authfile": world.dst_registry.authfile,
                              "wait_timeout": 5, "poll_interval": 0.001}
    values.update(options)
    report = clone(source, target, CloneOptions(**values), world.status(), skopeo=world.skopeo(), installer=None,
                   probes=world.probes())
    return report, target


def test_clone_copies_the_shop_and_every_service_answers(world: World) -> None:
    applied: list[dict[str, Any]] = []
    report, _ = run(world, applied)
    t = world.target.server
    # objects: the user's, not the platform's, in dependency order
    kinds = [o["kind"] for o in applied]
    assert kinds.index("Broker") < kinds.index("Trigger")
    assert max(i for i, k in enumerate(kinds) if k == "Service") < kinds.index("PingSource")
    assert kinds.index("Namespace") == 0
    names = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in applied}
    assert ("Service", "hybrid-knative-smoke", "smoke") not in names
    assert ("Broker", "default", "default") not in names
    assert ("ConfigMap", "shop", "kube-root-ca.crt") not in names
    assert t.get(SERVING, "services", "smoke", "hybrid-knative-smoke") is None
    # every KService became Ready on the target and answers through its new URL
    assert [(a.name, a.status) for a in report.answers] == [("hello", 200), ("orders", 200)]
    assert {a.url for a in report.answers} == {f"http://hello-shop.{TARGET_DOMAIN}", f"http://orders-shop.{TARGET_DOMAIN}"}
    assert set(world.ingress.hits) >= {f"hello-shop.{TARGET_DOMAIN}", f"orders-shop.{TARGET_DOMAIN}"}
    # images: pinned to the digest that runs, which exists in the target registry under that digest
    for name in ("hello", "orders"):
        image = t.get(SERVING, "services", name, "shop")["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == f"{world.registry}/shop/{name}@{world.digests[name]}"
        assert manifest_digest(image, world.dst_registry.authfile) == world.digests[name]
    assert len(report.images.copied) == 3 and report.images.present == []
    # domains rewritten
    hello = t.get(SERVING, "services", "hello", "shop")
    env = {e["name"]: e["value"] for e in hello["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env == {"ORDERS": f"http://orders-shop.{TARGET_DOMAIN}/api", "MODE": "fast"}
    assert t.get("serving.knative.dev/v1beta1", "domainmappings", f"api.{TARGET_DOMAIN}", "shop") is not None
    greet = t.get(EVENTING, "triggers", "greet", "shop")
    assert greet["spec"]["subscriber"]["uri"] == f"http://hello-shop.{TARGET_DOMAIN}/greet"
    # secrets: skipped by default, never tokens or Knative TLS; the pull secret re-created for the target registry
    assert t.get("v1", "secrets", "db", "shop") is None
    assert t.get("v1", "secrets", "runner-token", "shop") is None
    assert t.get("v1", "secrets", "route-hello-tls", "shop") is None
    regcred = t.get("v1", "secrets", "regcred", "shop")
    import base64
    import json

    auths = json.loads(base64.b64decode(regcred["data"][".dockerconfigjson"]))["auths"]
    assert list(auths) == [world.dst_registry.host]
    assert "secrets" not in t.get("v1", "serviceaccounts", "runner", "shop")
    # server-side apply with our field manager, nothing else
    writes = world.target.server.writes()
    assert writes and all(w.method == "PATCH" and w.content_type == "application/apply-patch+yaml"
                          and "fieldManager=hybrid-knative" in w.query for w in writes)
    # the source was never written to
    assert world.source.server.writes() == []


def test_rerun_writes_nothing_and_copies_nothing(world: World) -> None:
    run(world)
    world.target.server.reset_requests()
    report, target = run(world)
    assert world.target.server.writes() == []
    assert target.counters.writes == 0
    assert report.images.copied == [] and len(report.images.present) == 3
    assert report.applied.created == report.applied.updated == 0
    assert report.applied.unchanged == len(report.objects)
    assert world.source.server.writes() == []


def test_a_change_on_the_source_is_synced_alone(world: World) -> None:
    run(world)
    s = world.source.server
    cm = s.get("v1", "configmaps", "settings", "shop")
    s.put_object("v1", "configmaps", {**cm, "data": {**cm["data"], "mode": "slow"}})
    world.target.server.reset_requests()
    report, _ = run(world)
    writes = world.target.server.writes()
    assert [w.path.rsplit("/", 1)[1] for w in writes] == ["settings"]
    assert report.applied.updated == 1 and report.images.copied == []
    assert world.target.server.get("v1", "configmaps", "settings", "shop")["data"]["mode"] == "slow"


def test_dry_run_shows_the_diff_and_writes_nothing(world: World) -> None:
    report, _ = run(world, dry_run=True)
    assert world.target.server.writes() == [] and world.source.server.writes() == []
    assert manifest_digest(f"{world.registry}/shop/hello@{world.digests['hello']}", world.dst_registry.authfile) is None
    assert len(report.images.copied) == 3  # would copy
    text = "\n".join(report.diffs)
    assert f"+  name: api.{TARGET_DOMAIN}" in text
    assert f"value: http://orders-shop.{TARGET_DOMAIN}/api" in text
    assert all(c.action == "create" for c in report.objects)
    # after a real run, a dry run reports nothing to change
    run(world)
    report, _ = run(world, dry_run=True)
    assert report.diffs == [] and all(c.action == "unchanged" for c in report.objects)


def test_interrupted_clone_resumes(world: World) -> None:
    world.target.behaviour.broker_never_ready = True
    with pytest.raises(HybridError, match="not ready"):
        run(world)
    t = world.target.server
    assert t.get(EVENTING, "brokers", "default", "shop") is not None
    assert t.get(SERVING, "services", "hello", "shop") is None  # stopped at the Ready gate: Triggers need the Broker
    world.target.behaviour.broker_never_ready = False
    t.put_object(EVENTING, "brokers", {**t.get(EVENTING, "brokers", "default", "shop"),
                                       "status": {"observedGeneration": 0}})  # the controller looks again
    report, _ = run(world)
    assert report.applied.unchanged >= 1 and report.applied.created > 0
    assert [a.status for a in report.answers] == [200, 200]


def test_secrets_copy_policy_still_never_copies_tokens_or_knative_tls(world: World) -> None:
    report, _ = run(world, secrets="copy")
    t = world.target.server
    assert t.get("v1", "secrets", "db", "shop")["data"] == {"password": "aHVudGVyMg=="}
    assert t.get("v1", "secrets", "runner-token", "shop") is None
    assert t.get("v1", "secrets", "route-hello-tls", "shop") is None
    assert any("runner-token" in s and "token" in s for s in report.skipped)


def test_existing_objects_not_made_by_clone_are_not_overwritten(world: World) -> None:
    t = world.target.server
    t.put_object("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    t.put_object("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": "settings", "namespace": "shop"}, "data": {"x": "1"}})
    t.reset_requests()
    with pytest.raises(ConfigError, match="not made by clone"):
        run(world)
    assert t.writes() == []
    run(world, overwrite=True)
    assert CHECKSUM in t.get("v1", "configmaps", "settings", "shop")["metadata"]["annotations"]


def test_unauthorised_registry_fails_before_any_write(world: World) -> None:
    world.dst_registry.authfile.write_text('{"auths": {}}')
    with pytest.raises(PermanentError, match="refused the credentials"):
        run(world)
    assert world.target.server.writes() == []


def test_unreachable_registry_fails_before_any_write(world: World) -> None:
    world.dst_registry.stop()
    with pytest.raises(HybridError, match="unreachable"):
        run(world)
    assert world.target.server.writes() == []
    world.dst_registry.proc = __import__("subprocess").Popen(["true"])  # already stopped: teardown no-op


def test_target_without_knative_and_no_install_is_refused(make_world: Any) -> None:
    world = make_world(target_knative=False)
    with pytest.raises(ConfigError, match="no Knative Serving, and --no-install"):
        run(world, install=False)
    assert world.target.server.writes() == []


def test_the_source_zone_is_read_from_the_source() -> None:
    assert SOURCE_ZONE == "hk.internal"


def test_target_without_knative_gets_it_installed_in_the_cloud_profile(make_world: Any) -> None:
    from hybrid_knative.cli.clone import make_installer

    world = make_world(target_knative=False)
    source, target = world.kubes()
    applied: list[dict[str, Any]] = []
    validating(target, applied)
    installer = make_installer(kubeconfig=world.target.kubeconfig, state_dir=world.tmp / "state", upstream_dirs=(),
                               offline=True, wait_timeout=10, poll_interval=0.001, dns_servers=("127.0.0.1:9",))
    options = CloneOptions(registry=world.registry, registry_authfile=world.dst_registry.authfile, domain=TARGET_DOMAIN,
                           wait_timeout=10, poll_interval=0.001)
    report = clone(source, target, options, world.status(), skopeo=world.skopeo(), installer=installer,
                   probes=world.probes())
    t = world.target.server
    assert report.installed and report.knative == "1.23" and report.domain == TARGET_DOMAIN
    # cloud profile: the load balancer's address, no externalIPs, the custom domain, no CoreDNS zone block
    kourier = t.get("v1", "services", "kourier", "kourier-system")
    assert "externalIPs" not in kourier["spec"]
    assert kourier["status"]["loadBalancer"]["ingress"] == [{"ip": "10.0.0.99"}]
    assert TARGET_DOMAIN in t.get("v1", "configmaps", "config-domain", "knative-serving")["data"]
    assert "hk.internal" not in t.get("v1", "configmaps", "coredns", "kube-system")["data"]["Corefile"]
    assert [(a.name, a.status) for a in report.answers] == [("hello", 200), ("orders", 200)]
    assert world.source.server.writes() == []


def test_target_kubernetes_too_old_for_knative_is_refused_before_any_write(make_world: Any) -> None:
    world = make_world(target_knative=False, target_version="1.30.4")
    with pytest.raises(PermanentError, match="cannot run Knative"):
        run(world)
    assert world.target.server.writes() == []


def test_target_with_an_older_knative_is_refused(world: World) -> None:
    t = world.target.server
    crd = t.get("apiextensions.k8s.io/v1", "customresourcedefinitions", "services.serving.knative.dev")
    crd["metadata"]["labels"]["app.kubernetes.io/version"] = "1.20.3"
    t.put_object("apiextensions.k8s.io/v1", "customresourcedefinitions", crd)
    t.reset_requests()
    with pytest.raises(PermanentError, match="older than the source"):
        run(world)
    assert t.writes() == []


def test_target_missing_a_kind_is_refused_before_any_write(world: World) -> None:
    t = world.target.server
    t.delete_object("apiextensions.k8s.io/v1", "customresourcedefinitions", "pingsources.sources.knative.dev")
    t.reset_requests()
    with pytest.raises(PermanentError, match="PingSource"):
        run(world)
    assert t.writes() == []


def test_a_platform_namespace_is_refused(world: World) -> None:
    with pytest.raises(ConfigError, match="belongs to Kubernetes or the platform"):
        run(world, namespaces=("knative-serving",))
    assert world.target.server.writes() == []
