"""Prove the platform works before marking it enabled: a smoke Knative Service must become Ready and
answer HTTP 200 (with its marker) through its public URL from this host and from a pod.

The image is busybox (MicroK8s already needs it) by digest: the node's own digest when containerd
has it, else the pinned one, so it also works air-gapped. The smoke service is recorded (disable
removes it); the pod-side probe Job is left to the TTL controller.
"""

from __future__ import annotations

import datetime
import urllib.parse

from hybrid_knative import smoke
from hybrid_knative.dns import hostdns, ingress
from hybrid_knative.errors import DeadlineExceeded, PermanentError, TemporaryError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.knative import SERVING, job_complete, knative_ready
from hybrid_knative.kube.objects import Manifest, ObjectRef, ref_of
from hybrid_knative.kube.wait import retry, wait_all
from hybrid_knative.manifests import with_labels
from hybrid_knative.platform.apply import apply_objects
from hybrid_knative.platform.component import platform_labels
from hybrid_knative.platform.context import Context, RenderContext
from hybrid_knative.platform.preview import Change, as_yaml

NAME = "verify_smoke_service"
TITLE = "Verify a smoke service answers from the host and from a pod"
UNREACHABLE_DOMAINS = ("svc.cluster.local", "example.com")  # Knative's defaults: no URL a user can open


def _doctor() -> str:
    return f"run `hybrid-knative doctor {smoke.smoke_data().name} -n {smoke.smoke_data().namespace}`"


def render(rc: RenderContext) -> list[Manifest]:
    return smoke.service_objects()


def ksvc_ref() -> ObjectRef:
    data = smoke.smoke_data()
    return ObjectRef(SERVING, "Service", data.namespace, data.name)


def smoke_url(kube: KubeApi) -> str | None:
    obj = kube.get(ksvc_ref())
    url = ((obj or {}).get("status") or {}).get("url")
    return str(url) if url else None


def _check_not_foreign(ctx: Context) -> None:
    ref = ksvc_ref()
    if ctx.record.get(ref) is not None:
        return
    live = ctx.kube.get(ref)
    labels = ((live or {}).get("metadata") or {}).get("labels") or {}
    if live is not None and labels.get("app.kubernetes.io/managed-by") != "hybrid-knative":
        raise PermanentError(f"a Knative Service {ref.namespace}/{ref.name} exists and is not hybrid-knative's smoke "
                             "service", resolution="rename or delete it, or pass --no-verify to skip the smoke test")


def unchanged_since_verified(ctx: Context) -> bool:
    """Nothing written by this enable, the last change was verified, and --verify was not given."""
    return (ctx.record.verified and not ctx.config.verify_always and ctx.kube.counters.writes == ctx.writes_before
            and ctx.record.get(ksvc_ref()) is not None)


def run(ctx: Context, objs: list[Manifest]) -> None:
    if unchanged_since_verified(ctx):
        ctx.status.info("Nothing changed since the last verified enable: smoke test skipped (--verify runs it)")
        return
    ctx.record.verified = False  # until the probes below pass (saved with the step, also on failure)
    _check_not_foreign(ctx)
    image, source = smoke.choose_image(ctx.runner)
    ctx.status.detail(f"smoke image {image} (digest from {source})")
    objs = smoke.service_objects(image)
    apply_objects(ctx, NAME, objs)
    ref = ref_of(objs[0])
    try:
        wait_all({str(ref): knative_ready(ctx.kube, ref)}, policy=ctx.waits, stats=ctx.stats,
                 on_progress=ctx.status.note, resolution=_doctor())
    except DeadlineExceeded as exc:
        raise DeadlineExceeded(f"the smoke service {ref.namespace}/{ref.name} did not become Ready",
                               details=exc.details, resolution=f"{_doctor()} to see why") from None
    url = smoke_url(ctx.kube)
    if not url:
        raise PermanentError(f"the smoke service {ref.namespace}/{ref.name} is Ready but has no URL",
                             resolution=_doctor())
    host = urllib.parse.urlsplit(url).hostname or ""
    if any(host == d or host.endswith("." + d) for d in UNREACHABLE_DOMAINS):
        raise PermanentError(f"the smoke service got the URL {url}, which no one outside the cluster can open",
                             details="config-domain in knative-serving has no reachable domain",
                             resolution="run `sudo hybrid-knative repair` (it configures the domain), then "
                             + _doctor())
    _probe_from_host(ctx, url)
    _probe_from_pod(ctx, url, image)
    ctx.record.verified = True
    ctx.status.info(f"Smoke service answers: {url}")


def _host_cannot_resolve(ctx: Context) -> str | None:
    """The ingress address to probe through when this host's resolver cannot be pointed at the zone
    (hybrid-knative/host: hostdns mode ``manual``, a plain resolv.conf); None to probe by name."""
    if ctx.config.domain_mode != "local":
        return None
    if hostdns.detect(ctx.config.host_root).mode != "manual":
        return None
    return ingress.current(ctx.kube)


def _probe_from_host(ctx: Context, url: str) -> None:
    marker = smoke.smoke_data().marker
    via = _host_cannot_resolve(ctx)
    if via:
        ctx.status.detail(f"this host cannot resolve the zone: GET {url} through the ingress address {via}")

    def attempt() -> None:
        answer = ctx.probes.get(url, via=via)
        if answer.status != 200 or marker not in answer.body:
            raise TemporaryError(f"GET {url} from this host answered HTTP {answer.status} (via {answer.address})"
                                 + ("" if answer.status != 200 else ", without the smoke page"))

    try:
        retry(attempt, policy=ctx.waits, what=f"GET {url} from this host", stats=ctx.stats)
    except DeadlineExceeded as exc:
        raise PermanentError(f"the smoke service does not answer from this host: {url}", details=exc.details,
                             resolution=f"{_doctor()} (it checks the host's DNS and the ingress)") from None


def _probe_from_pod(ctx: Context, url: str, image: str) -> None:
    data = smoke.smoke_data()
    stamp = datetime.datetime.now(tz=datetime.timezone.utc).isoformat()
    job = smoke.probe_job(component="smoke-probe", namespace=data.namespace, target=url, check=smoke.HTTP_CHECK,
                          deadline=max(30, int(ctx.waits.timeout)), image=image, salt=stamp)
    job = with_labels(job, platform_labels(ctx.component or "smoke"))  # a platform object (the TTL removes it)
    ref = ref_of(job)
    retry(lambda: ctx.kube.apply(job), policy=ctx.waits, what=f"create {ref}", stats=ctx.stats)
    resolution = (f"{_doctor()} (it checks DNS from a pod); "
                  f"see `microk8s kubectl -n {ref.namespace} logs job/{ref.name}`")
    try:
        wait_all({f"GET {url} from a pod": job_complete(ctx.kube, ref.namespace or "", ref.name,
                                                         what=f"GET {url} from a pod", resolution=resolution)},
                 policy=ctx.waits, stats=ctx.stats, on_progress=ctx.status.note, resolution=resolution)
    except PermanentError as exc:
        raise PermanentError(f"the smoke service does not answer from a pod: {url}", details=exc.details or exc.brief,
                             resolution=resolution) from None


def preview(rc: RenderContext, kube: KubeApi | None) -> list[Change]:
    """The probe Job (created at verify time, removed by the TTL controller) and the GET from this host."""
    data = smoke.smoke_data()
    job = smoke.probe_job(component="smoke-probe", namespace=data.namespace, target="<the smoke service URL>",
                          check=smoke.HTTP_CHECK, deadline=max(30, int(rc.config.wait_timeout)), salt="plan")
    return [Change("object", f"{ref_of(job)} (name varies per run; removed by the TTL controller)", as_yaml(job),
                   "create" if kube is not None else ""),
            Change("command", "GET the smoke service URL from this host", "GET <the smoke service URL> "
                   "(expects HTTP 200 and the smoke page)", "run")]
