"""`disable` and users' objects of hybrid-knative's CRDs (KServices, Brokers, Triggers…): listed and
refused by default; --destroy-user-objects deletes them first (while their controllers run);
--keep-user-objects keeps them and the CRDs."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from hybrid_knative import addon
from hybrid_knative.cli.main import cli
from hybrid_knative.errors import ConfigError
from hybrid_knative.progress import Status
from hybrid_knative.system import marker
from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration
QUIET = Status(verbosity=-1)
SERVING = "serving.knative.dev/v1"
EVENTING = "eventing.knative.dev/v1"


def user_ksvc(name: str, namespace: str = "default", **labels: str) -> dict[str, Any]:
    return {"apiVersion": SERVING, "kind": "Service",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"hybrid-knative.dev/project": "shop", "hybrid-knative.dev/function": name,
                                    **labels}},
            "spec": {"template": {"spec": {"containers": [{"image": "ghcr.io/example/app@sha256:" + "1" * 64}]}}}}


def user_trigger(name: str) -> dict[str, Any]:
    return {"apiVersion": EVENTING, "kind": "Trigger", "metadata": {"name": name, "namespace": "default"},
            "spec": {"broker": "default", "subscriber": {"ref": {"apiVersion": SERVING, "kind": "Service",
                                                                 "name": "orders"}}}}


def enabled_with_users(cluster: Cluster) -> None:
    addon.enable(cluster.config(), QUIET)
    cluster.server.put_object(SERVING, "services", user_ksvc("orders"))
    cluster.server.put_object(EVENTING, "triggers", user_trigger("on-order"))


def test_disable_lists_users_objects_and_changes_nothing(cluster: Cluster) -> None:
    enabled_with_users(cluster)
    cluster.server.reset_requests()
    with pytest.raises(ConfigError) as err:
        addon.disable(cluster.config(), QUIET)
    assert "2 objects that are not hybrid-knative's" in err.value.brief
    assert "Service default/orders" in (err.value.details or "")
    assert "Trigger default/on-order" in (err.value.details or "")
    assert "hello" not in (err.value.details or "")  # the smoke service and default Broker are ours
    assert "--destroy-user-objects" in (err.value.resolution or "")
    assert "--keep-user-objects" in (err.value.resolution or "")
    assert cluster.server.writes() == []
    assert marker.read(cluster.marker) == marker.UNVERIFIED


def test_cli_refusal_is_a_clear_error(cluster: Cluster) -> None:
    enabled_with_users(cluster)
    result = CliRunner().invoke(cli, ["disable", *cluster.cli_args(install=False)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "Service default/orders" in result.output and "--keep-user-objects" in result.output


def test_destroy_deletes_users_objects_before_their_controllers(cluster: Cluster) -> None:
    enabled_with_users(cluster)
    cluster.server.reset_requests()
    addon.disable(cluster.config(), QUIET, user_objects="destroy")
    deletes = [w.path for w in cluster.server.writes() if w.method == "DELETE"]
    user = deletes.index("/apis/serving.knative.dev/v1/namespaces/default/services/orders")
    controller = deletes.index("/apis/apps/v1/namespaces/knative-serving/deployments/controller")
    assert user < controller
    assert any(p.endswith("/triggers/on-order") for p in deletes[:controller])
    assert cluster.server.get(SERVING, "services", "orders", "default") is None
    assert cluster.server.get("apiextensions.k8s.io/v1", "customresourcedefinitions",
                              "services.serving.knative.dev") is None
    assert not cluster.marker.exists()


def test_keep_keeps_the_crds_and_users_objects(cluster: Cluster) -> None:
    enabled_with_users(cluster)
    addon.disable(cluster.config(), QUIET, user_objects="keep")
    assert cluster.server.get(SERVING, "services", "orders", "default") is not None
    assert cluster.server.get("apiextensions.k8s.io/v1", "customresourcedefinitions",
                              "services.serving.knative.dev") is not None
    assert cluster.server.get("apps/v1", "deployments", "controller", "knative-serving") is None
    assert cluster.server.get("v1", "namespaces", "knative-serving") is None
    assert not cluster.marker.exists()
    # a later enable takes the kept CRDs back; a later destroy removes them
    addon.enable(cluster.config(), QUIET)
    addon.disable(cluster.config(), QUIET, user_objects="destroy")
    assert cluster.server.get("apiextensions.k8s.io/v1", "customresourcedefinitions",
                              "services.serving.knative.dev") is None


def test_objects_labelled_managed_by_hybrid_knative_are_not_users(cluster: Cluster) -> None:
    addon.enable(cluster.config(), QUIET)
    cluster.server.put_object(SERVING, "services", user_ksvc("platform-thing",
                                                             **{"app.kubernetes.io/managed-by": "hybrid-knative"}))
    addon.disable(cluster.config(), QUIET)  # no refusal
    assert not cluster.marker.exists()


def test_delete_user_models_is_the_same_as_destroy_user_objects(cluster: Cluster) -> None:
    """ml's older flag: one mechanism for users' objects of every component's CRDs."""
    enabled_with_users(cluster)
    result = CliRunner().invoke(cli, ["disable", "--delete-user-models", *cluster.cli_args(install=False)])
    assert result.exit_code == 0, result.output
    assert cluster.server.get(SERVING, "services", "orders", "default") is None
    assert cluster.server.get("apiextensions.k8s.io/v1", "customresourcedefinitions",
                              "services.serving.knative.dev") is None
    assert not cluster.marker.exists()
