"""The smoke service and in-cluster probes: objects, and the image digest (pinned, or the node's own).

Used by the install's verify step and by `doctor`, so it depends on neither (only on config, system, data).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from typing import Any

import jinja2
import yaml

from hybrid_knative.catalog import COMPONENTS_DIR
from hybrid_knative.errors import HybridError, PermanentError
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.system import microk8s
from hybrid_knative.system.runner import Runner

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
SMOKE_DIR = COMPONENTS_DIR / "smoke"


@functools.lru_cache(maxsize=1)
def _jinja() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(SMOKE_DIR / "templates")),
                              undefined=jinja2.StrictUndefined, autoescape=False,  # noqa: S701 - YAML
                              keep_trailing_newline=True)


def template_objects(name: str, values: dict[str, Any]) -> list[Manifest]:
    try:
        text = _jinja().get_template(name).render(**values)
    except jinja2.TemplateError as exc:
        raise PermanentError(f"cannot render template smoke/{name}: {exc}") from None
    return [d for d in yaml.safe_load_all(text) if d]


@dataclasses.dataclass(frozen=True)
class SmokeData:
    image: str  # repository:tag, as MicroK8s lists it
    digest: str
    name: str
    namespace: str
    marker: str

    @property
    def repository(self) -> str:
        return self.image.rsplit(":", 1)[0]

    def by_digest(self, digest: str | None = None) -> str:
        return f"{self.repository}@{digest or self.digest}"


@functools.lru_cache(maxsize=1)
def smoke_data() -> SmokeData:
    doc: dict[str, Any] = yaml.safe_load((SMOKE_DIR / "smoke.yaml").read_text(encoding="utf-8"))
    data = SmokeData(**{k: str(doc[k]) for k in ("image", "digest", "name", "namespace", "marker")})
    if not _DIGEST.match(data.digest):
        raise ValueError(f"components/smoke/smoke.yaml: bad digest {data.digest!r}")
    return data


def parse_ctr_images(text: str) -> dict[str, str]:
    """``ctr images ls`` output → {ref: digest}. Columns: REF TYPE DIGEST SIZE PLATFORMS LABELS."""
    found: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3 and _DIGEST.match(fields[2]):
            found[fields[0]] = fields[2]
    return found


def node_image_digest(runner: Runner, image: str) -> str | None:
    """The digest of ``image`` in the node's containerd (k8s.io namespace), or None.

    Asked through MicroK8s's public `microk8s ctr`; any failure (not a MicroK8s node, containerd
    down, no microk8s command) means "unknown" and the pinned digest is used instead.
    """
    try:
        result = runner.run([microk8s.command(), "ctr", "-n", "k8s.io", "images", "ls"], check=False, timeout=60)
    except HybridError:
        return None
    if result.returncode != 0:
        return None
    return parse_ctr_images(result.stdout).get(image)


def choose_image(runner: Runner) -> tuple[str, str]:
    """(image by digest, where the digest came from). The node's digest first: an image the node
    already has runs with or without a registry; else the pinned one (pulled once, by digest)."""
    data = smoke_data()
    local = node_image_digest(runner, data.image)
    if local is not None:
        return data.by_digest(local), "the node's containerd"
    return data.by_digest(), "the pinned digest"


def service_objects(image: str | None = None) -> list[Manifest]:
    data = smoke_data()
    return template_objects("smoke-service.yaml.j2", {
        "name": data.name, "namespace": data.namespace, "image": image or data.by_digest(), "marker": data.marker})


def probe_job(*, component: str, namespace: str, target: str, check: str, deadline: int, image: str | None = None,
              salt: str = "") -> Manifest:
    """A one-shot busybox Job running ``check`` (a shell command over $TARGET and $MARKER)."""
    data = smoke_data()
    suffix = hashlib.sha256(f"{target}\0{check}\0{salt}".encode()).hexdigest()[:8]
    objs = template_objects("probe-job.yaml.j2", {
        "name": f"hk-{component}-{suffix}", "namespace": namespace, "component": component, "target": target,
        "check": check, "deadline": deadline, "image": image or data.by_digest(), "marker": data.marker})
    return objs[0]


HTTP_CHECK = 'wget -q -T 10 -O- "$TARGET" | grep -qF "$MARKER"'
DNS_CHECK = 'nslookup "$TARGET"'
