"""Every object `plan` renders validates strictly, for every supported Kubernetes version:
built-in kinds against that version's schemas, Knative kinds against the vendored CRD schemas."""

from __future__ import annotations

import pytest

from hybrid_knative.addon import render
from hybrid_knative.config import Config, KubeVersion
from hybrid_knative.platform.render import upstream_objects
from hybrid_knative.progress import Status
from tests.harness.validation import ManifestValidator, image_errors

KUBE_VERSIONS = ["1.32", "1.33", "1.34", "1.35", "1.36"]


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_every_rendered_object_validates(kube: str) -> None:
    release, rendered = render(Config(), KubeVersion.parse(kube), Status(verbosity=-1))
    objs = [o for r in rendered for o in r.objects]
    assert len(objs) > 60
    # CRD schemas straight from the vendored release files (not from our rendered output)
    from hybrid_knative.platform.context import RenderContext
    from hybrid_knative.upstream import UpstreamStore

    rc = RenderContext(config=Config(), release=release, kube_version=KubeVersion.parse(kube), store=UpstreamStore())
    crds = upstream_objects(rc, "knative-serving", "serving-crds.yaml")
    crds += upstream_objects(rc, "knative-eventing", "eventing-crds.yaml")  # Broker and friends
    crds += [o for o in upstream_objects(rc, "knative-eventing", "in-memory-channel.yaml")
             if o["kind"] == "CustomResourceDefinition"]
    validator = ManifestValidator(kube, crds)
    assert validator.validate_all(objs) == []
    pinned = [e for o in objs for e in image_errors(o)]
    assert pinned == [], "every image pinned by digest or an explicit tag"


def test_the_validator_rejects_a_broken_render() -> None:
    """The check above can fail: a typo in an object we render is caught."""
    _, rendered = render(Config(), KubeVersion.parse("1.34"), Status(verbosity=-1))
    objs = [o for r in rendered for o in r.objects]
    dep = next(o for o in objs if o["kind"] == "Deployment")
    broken = {**dep, "spec": {**dep["spec"], "replicaz": 1}}
    assert ManifestValidator("1.34").errors(broken)


@pytest.mark.parametrize("kube", ["1.32", "1.36"])
def test_edge_profile_objects_validate(kube: str) -> None:
    release, rendered = render(Config(profile="edge"), KubeVersion.parse(kube), Status(verbosity=-1))
    objs = [o for r in rendered for o in r.objects]
    from hybrid_knative.platform.context import RenderContext
    from hybrid_knative.upstream import UpstreamStore

    rc = RenderContext(config=Config(), release=release, kube_version=KubeVersion.parse(kube), store=UpstreamStore())
    crds = upstream_objects(rc, "knative-serving", "serving-crds.yaml")
    crds += upstream_objects(rc, "knative-eventing", "eventing-crds.yaml")
    assert ManifestValidator(kube, crds).validate_all(objs) == []
