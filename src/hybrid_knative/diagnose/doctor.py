"""`doctor`: why a Knative Service does not come up, or what is wrong with the platform.

Walks KService → Configuration → Revision → Deployment → Pods/Events and maps what the controllers
wrote (reasons and messages of Knative, the Deployment controller, the scheduler and the kubelet) to
one cause, its evidence and its fix — one sentence each. For a Ready service it checks that its host
name resolves from this host and from a pod. Without a service it checks the platform.

Read-only, except for the pod-side DNS probe (a busybox Job the TTL controller removes).
"""

from __future__ import annotations

import dataclasses
import datetime
import urllib.parse
from collections.abc import Callable
from typing import Any

from hybrid_knative import components, smoke
from hybrid_knative.catalog import load_catalog
from hybrid_knative.diagnose.dns_check import DnsCheck
from hybrid_knative.dns import ingress
from hybrid_knative.errors import HybridError, PermanentError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.knative import SERVING, job_complete
from hybrid_knative.kube.objects import ObjectRef, ref_of
from hybrid_knative.kube.ready import condition, deployment_available, describe, service_endpoints_ready
from hybrid_knative.kube.wait import WaitPolicy, retry, wait_all
from hybrid_knative.system.http import HostProbes

KOURIER_CLASS = "kourier.ingress.networking.knative.dev"
SKIP_TAG_KEY = "registries-skipping-tag-resolving"
UNREACHABLE_DOMAINS = ("svc.cluster.local", "example.com")


@dataclasses.dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    cause: str
    evidence: str
    fix: str = ""
    info: bool = False  # not a check that passed: nothing here to check (shown as "–")


@dataclasses.dataclass(frozen=True)
class Report:
    subject: str
    findings: tuple[Finding, ...]

    @property
    def healthy(self) -> bool:
        return all(f.ok for f in self.findings)


def _register(kube: KubeApi) -> None:
    for kind, plural in (("Service", "services"), ("Configuration", "configurations"), ("Revision", "revisions"),
                         ("Route", "routes")):
        kube.register_kind(SERVING, kind, plural, namespaced=True)


def _first_line(text: str) -> str:
    return " ".join(text.split())[:400]


# --- the walk -----------------------------------------------------------------------------------

@dataclasses.dataclass
class _Evidence:
    """Everything the controllers wrote about one service, gathered once."""

    ksvc: dict[str, Any]
    configuration: dict[str, Any] | None = None
    revision: dict[str, Any] | None = None
    route: dict[str, Any] | None = None
    deployment: dict[str, Any] | None = None
    pods: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def conditions(self) -> list[tuple[str, dict[str, Any]]]:
        found = []
        for what, obj in (("Revision", self.revision), ("Configuration", self.configuration),
                          ("Route", self.route), ("Service", self.ksvc)):
            for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
                if cond.get("status") != "True":
                    found.append((what, cond))
        return found

    def waiting(self) -> list[tuple[str, str, str]]:
        """(pod, reason, message) of every waiting container."""
        found = []
        for pod in self.pods:
            for cs in (pod.get("status") or {}).get("containerStatuses") or []:
                waiting = (cs.get("state") or {}).get("waiting") or {}
                if waiting.get("reason"):
                    found.append((pod["metadata"]["name"], str(waiting["reason"]), str(waiting.get("message", ""))))
        return found


def _gather(kube: KubeApi, ksvc: dict[str, Any]) -> _Evidence:
    meta, status = ksvc["metadata"], ksvc.get("status") or {}
    namespace, name = meta["namespace"], meta["name"]
    ev = _Evidence(ksvc)
    ev.configuration = kube.get(ObjectRef(SERVING, "Configuration", namespace, name))
    ev.route = kube.get(ObjectRef(SERVING, "Route", namespace, name))
    revision = ((ev.configuration or {}).get("status") or {}).get("latestCreatedRevisionName") \
        or status.get("latestCreatedRevisionName")
    related = {name}
    if revision:
        related |= {revision, f"{revision}-deployment"}
        ev.revision = kube.get(ObjectRef(SERVING, "Revision", namespace, revision))
        ev.deployment = kube.get(ObjectRef("apps/v1", "Deployment", namespace, f"{revision}-deployment"))
        ev.pods = kube.list("v1", "Pod", namespace=namespace, labels={"serving.knative.dev/revision": revision})
        related |= {p["metadata"]["name"] for p in ev.pods}
    events = kube.list("v1", "Event", namespace=namespace)
    prefixes = tuple(sorted(related))
    ev.events = [e for e in events if str((e.get("involvedObject") or {}).get("name", "")).startswith(prefixes)]
    return ev


def _event(ev: _Evidence, reasons: tuple[str, ...], *needles: str) -> dict[str, Any] | None:
    for e in ev.events:
        message = str(e.get("message", ""))
        if e.get("reason") in reasons and all(n.lower() in message.lower() for n in needles):
            return e
    return None


def _cond_with(ev: _Evidence, *needles: str, reasons: tuple[str, ...] = ()) -> tuple[str, dict[str, Any]] | None:
    for what, cond in ev.conditions():
        message = str(cond.get("message", "")).lower()
        if (reasons and cond.get("reason") in reasons) or (needles and all(n.lower() in message for n in needles)):
            return what, cond
    return None


def _image(ev: _Evidence) -> str:
    spec = ((ev.ksvc.get("spec") or {}).get("template") or {}).get("spec") or {}
    images = [str(c.get("image", "")) for c in spec.get("containers") or []]
    return images[0] if images else "?"


Rule = Callable[[_Evidence], "Finding | None"]


def _webhook(ev: _Evidence) -> Finding | None:
    hit = _cond_with(ev, "failed calling webhook")
    if hit is None:
        return None
    return Finding("webhook", False, "A Knative admission webhook did not answer, so the change was rejected.",
                   f"{hit[0]} {describe(hit[1], str(hit[1].get('type')))}",
                   "Wait for the webhook pods to be Ready (`microk8s kubectl -n knative-serving get pods`) "
                   "and retry; `hybrid-knative doctor` without a service checks them.")


def _tag_to_digest(ev: _Evidence) -> Finding | None:
    hit = _cond_with(ev, "failed to resolve image to digest") or _cond_with(ev, "unable to fetch image")
    if hit is None:
        return None
    image = _image(ev)
    local = image.startswith(("localhost:32000/", "127.0.0.1:32000/"))
    fix = (f"Add `localhost:32000,127.0.0.1:32000` to `{SKIP_TAG_KEY}` in config-deployment (enable does this) "
           "or deploy the image by digest." if local else
           "Deploy the image by digest (image@sha256:…), or make its registry reachable from the Knative "
           f"controller pod, or add the registry to `{SKIP_TAG_KEY}` in config-deployment.")
    return Finding("tag-to-digest", False,
                   f"Knative could not resolve the tag of {image} to a digest (it asks the registry from inside "
                   "its controller pod).", f"{hit[0]} {describe(hit[1], str(hit[1].get('type')))}", fix)


def _image_pull(ev: _Evidence) -> Finding | None:
    for pod, reason, message in ev.waiting():
        if reason in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"):
            evidence = f"pod {pod}: {reason}" + (f": {_first_line(message)}" if message else "")
            break
    else:
        event = _event(ev, ("Failed",), "failed to pull image") or _event(ev, ("BackOff",), "back-off pulling image")
        if event is None:
            return None
        evidence = f"event {event.get('reason')}: {_first_line(str(event.get('message', '')))}"
    return Finding("image-pull", False, f"The node cannot pull the image {_image(ev)}.", evidence,
                   "Check the image name and tag, give the namespace an imagePullSecret for a private registry, "
                   "and make sure the image has a variant for this node's architecture.")


def _quota(ev: _Evidence) -> Finding | None:
    event = _event(ev, ("FailedCreate",), "exceeded quota")
    if event is None:
        return None
    return Finding("quota", False, "A ResourceQuota in the namespace forbids creating the service's pods.",
                   f"event FailedCreate: {_first_line(str(event.get('message', '')))}",
                   "Raise the quota (`microk8s kubectl describe resourcequota -n NS`) or lower the service's "
                   "resource requests.")


def _unschedulable(ev: _Evidence) -> Finding | None:
    event = _event(ev, ("FailedScheduling",), "insufficient")
    if event is None:
        for pod in ev.pods:
            cond = condition(pod, "PodScheduled")
            if cond is not None and cond.get("reason") == "Unschedulable":
                event = {"message": cond.get("message", "")}
                break
    if event is None:
        return None
    return Finding("unschedulable", False, "No node has room for the service's pods (their requests do not fit).",
                   f"FailedScheduling: {_first_line(str(event.get('message', '')))}",
                   "Lower the service's CPU/memory requests, free resources, add a node, or enable with "
                   "`--profile edge` to shrink the platform's own requests.")


def _crash_loop(ev: _Evidence) -> Finding | None:
    for pod, reason, message in ev.waiting():
        if reason == "CrashLoopBackOff":
            return Finding("crash-loop", False, "The service's container keeps crashing after it starts.",
                           f"pod {pod}: CrashLoopBackOff" + (f": {_first_line(message)}" if message else ""),
                           f"Read its logs (`microk8s kubectl logs {pod} -c user-container --previous`) and fix "
                           "the crash.")
    hit = _cond_with(ev, reasons=tuple(f"ExitCode{i}" for i in range(1, 256)))
    if hit is None:
        return None
    return Finding("crash-loop", False, "The service's container exits right after it starts.",
                   f"{hit[0]} {describe(hit[1], str(hit[1].get('type')))}",
                   "Read the container's logs (`microk8s kubectl logs -l serving.knative.dev/service=NAME "
                   "-c user-container`) and fix the crash.")


def _not_listening(ev: _Evidence) -> Finding | None:
    """The container runs but nothing listens on $PORT. Knative's kubelet probe goes to queue-proxy, which
    probes the container and answers 503 until it accepts connections: the real event reads "Readiness probe
    failed: HTTP probe failed with statuscode: 503" on spec.containers{queue-proxy} (hybrid-knative/host).
    A user-defined TCP/HTTP probe on the container itself reads "connection refused"."""
    event = None
    for e in ev.events:
        if e.get("reason") != "Unhealthy":
            continue
        message = str(e.get("message", "")).lower()
        field = str((e.get("involvedObject") or {}).get("fieldPath", ""))
        if "statuscode: 503" in message and ("queue-proxy" in field or not field):
            event = e
            break
        if "connection refused" in message and "user-container" in field:
            event = e
            break
    if event is None:
        return None
    return Finding("port", False, "The container runs but does not listen on $PORT (8080), so it never becomes "
                   "ready.", f"event Unhealthy: {_first_line(str(event.get('message', '')))}",
                   "Make the app listen on the port in the PORT environment variable (8080), or set "
                   "`ports: [{containerPort: N}]` in the service to the port it uses.")


def _progress_deadline(ev: _Evidence) -> Finding | None:
    hit = _cond_with(ev, reasons=("ProgressDeadlineExceeded",))
    evidence = f"{hit[0]} {describe(hit[1], str(hit[1].get('type')))}" if hit else None
    if evidence is None and ev.deployment is not None:
        cond = condition(ev.deployment, "Progressing")
        if cond is not None and cond.get("reason") == "ProgressDeadlineExceeded":
            evidence = f"Deployment {ev.deployment['metadata']['name']} {describe(cond, 'Progressing')}"
    if evidence is None:
        return None
    return Finding("progress-deadline", False, "The revision did not become ready within Knative's progress "
                   "deadline (600 s by default; large images pull slowly).", evidence,
                   "Pre-pull the image, or raise the deadline: annotation `serving.knative.dev/progress-deadline` "
                   "on the revision template, or `progress-deadline` in config-deployment.")


def _ingress(ev: _Evidence) -> Finding | None:
    hit = _cond_with(ev, reasons=("IngressNotConfigured", "IngressNotReady", "ReconcileIngressFailed"))
    if hit is None:
        routes = condition(ev.ksvc, "RoutesReady")
        configs = condition(ev.ksvc, "ConfigurationsReady")
        if not (routes is not None and routes.get("status") != "True" and configs is not None
                and configs.get("status") == "True"):
            return None
        hit = ("Service", routes)
    return Finding("ingress", False, "The revision is ready but the networking layer (Kourier) has not "
                   "programmed its route.", f"{hit[0]} {describe(hit[1], str(hit[1].get('type')))}",
                   f"Check that config-network has `ingress-class: {KOURIER_CLASS}` and that Kourier is running "
                   "(`hybrid-knative doctor` without a service), then run `sudo hybrid-knative repair`.")


RULES: tuple[Rule, ...] = (_webhook, _tag_to_digest, _image_pull, _quota, _unschedulable, _crash_loop,
                           _not_listening, _progress_deadline, _ingress)


def _unknown(ev: _Evidence) -> Finding:
    ready = condition(ev.ksvc, "Ready")
    return Finding("unknown", False, "The service is not Ready, and no known cause matches what the controllers "
                   "report.", f"Service {describe(ready, 'Ready')}",
                   "See `microk8s kubectl describe ksvc NAME` and `microk8s kubectl get events -n NS "
                   "--sort-by=.lastTimestamp`.")


# --- DNS from the host and from a pod -------------------------------------------------------------

def _lookup_outcome(probes: HostProbes, host: str) -> str:
    """Why a name gave no address: a timeout is reported as a timeout (hybrid-knative/host)."""
    outcome = probes.outcome(host) if probes.outcome is not None else "noanswer"
    return {"timeout": f"DNS timeout: no DNS server answered for {host}", "nxdomain": "NXDOMAIN: the name does not "
            "exist"}.get(outcome, "no A/AAAA answer")


def _dns_from_host(host: str, probes: HostProbes, ingress_ip: str | None) -> Finding:
    try:
        addresses = probes.resolve(host)
    except HybridError as exc:
        addresses, error = [], exc.brief
    else:
        error = ""
    if not addresses:
        return Finding("dns-host", False, f"{host} does not resolve on this host.",
                       error or _lookup_outcome(probes, host),
                       "Set up split DNS for the Knative domain (enable does it with systemd-resolved; see "
                       "docs/troubleshooting.md for the fallback) or use `--domain-mode magic`.")
    if ingress_ip is not None and ingress_ip not in addresses:
        return Finding("dns-host", False, f"{host} resolves on this host, but not to the ingress address.",
                       f"answers {', '.join(addresses)}; the ingress is {ingress_ip}",
                       "Fix the DNS record (custom domain) or run `sudo hybrid-knative repair` to rewrite the zone.")
    return Finding("dns-host", True, f"{host} resolves on this host.", f"answers {', '.join(addresses)}")


def _dns_from_pod(kube: KubeApi, host: str, namespace: str, waits: WaitPolicy) -> Finding:
    stamp = datetime.datetime.now(tz=datetime.timezone.utc).isoformat()
    job = smoke.probe_job(component="doctor-dns", namespace=namespace, target=host, check=smoke.DNS_CHECK,
                          deadline=max(30, int(waits.timeout)), salt=stamp)
    ref = ref_of(job)
    try:
        retry(lambda: kube.apply(job), policy=waits, what=f"create {ref}")
        wait_all({f"nslookup {host} in a pod": job_complete(kube, namespace, ref.name, what=f"nslookup {host}",
                                                            resolution="")},
                 policy=waits, resolution="")
    except HybridError as exc:
        return Finding("dns-pod", False, f"{host} does not resolve inside the cluster.",
                       _first_line(exc.details or exc.brief),
                       "Check that CoreDNS has the Knative zone (`microk8s kubectl -n kube-system get cm coredns "
                       "-o yaml`) and run `sudo hybrid-knative repair`; `microk8s enable dns` must be on.")
    return Finding("dns-pod", True, f"{host} resolves inside the cluster.", f"Job {ref.name} completed")


# --- entry points -----------------------------------------------------------------------------------

def diagnose_service(kube: KubeApi, name: str, namespace: str, *, probes: HostProbes, waits: WaitPolicy,
                     pod_check: bool = True) -> Report:
    _register(kube)
    subject = f"Knative Service {namespace}/{name}"
    ksvc = kube.get(ObjectRef(SERVING, "Service", namespace, name))
    if ksvc is None:
        return Report(subject, (Finding("exists", False, f"There is no Knative Service {namespace}/{name}.",
                                        "the API server answered 404 Not Found",
                                        "Check the name and namespace (`microk8s kubectl get ksvc -A`)."),))
    findings: list[Finding] = [*_version_skew(kube)]
    ready = condition(ksvc, "Ready")
    if ready is None or ready.get("status") != "True":
        ev = _gather(kube, ksvc)
        cause = next((f for f in (rule(ev) for rule in RULES) if f is not None), None)
        findings.append(cause or _unknown(ev))
        return Report(subject, tuple(findings))
    url = str((ksvc.get("status") or {}).get("url") or "")
    findings.append(Finding("ready", True, "The service is Ready.", f"URL {url or '(none)'}"))
    host = urllib.parse.urlsplit(url).hostname or ""
    if not host or any(host == d or host.endswith("." + d) for d in UNREACHABLE_DOMAINS):
        findings.append(Finding("domain", False, "Knative has no reachable domain, so the URL only works inside "
                                "the cluster.", f"URL {url or '(none)'}",
                                "Run `sudo hybrid-knative repair` (it configures the domain), or set one: "
                                "`--domain-mode local|magic|custom`."))
        return Report(subject, tuple(findings))
    findings.append(_dns_from_host(host, probes, _ingress_ip(kube)))
    if pod_check:
        findings.append(_dns_from_pod(kube, host, namespace, waits))
    return Report(subject, tuple(findings))


def _ingress_ip(kube: KubeApi) -> str | None:
    try:
        return ingress.current(kube)
    except HybridError:
        return None


def _version_skew(kube: KubeApi) -> list[Finding]:
    server = kube.server_version()
    ns = kube.get(ObjectRef("v1", "Namespace", None, "knative-serving"))
    version = str((((ns or {}).get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/version", ""))
    if not version:
        return []
    for release in load_catalog().releases:
        comp = release.components.get("knative-serving")
        if comp is not None and comp.version == version.lstrip("v"):
            if (server.major, server.minor) < (release.min_kubernetes.major, release.min_kubernetes.minor):
                return [Finding("version-skew", False, f"Knative {release.line} needs Kubernetes ≥ "
                                f"{release.min_kubernetes.minor_version}, but the cluster runs {server.minor_version}.",
                                f"knative-serving is labelled app.kubernetes.io/version={version}",
                                "Upgrade MicroK8s (`sudo snap refresh microk8s --channel=1.34/stable`) or run "
                                "`sudo hybrid-knative repair`, which picks the Knative release the cluster supports.")]
            return []
    return []


def diagnose_platform(kube: KubeApi) -> Report:
    """No service named: are the components healthy, the ingress class set, the domain configured?"""
    findings: list[Finding] = [*_version_skew(kube)]
    registered = components.ordered(components.all_components())  # their namespaces and webhooks
    for check in (n for c in registered for n in c.namespaces):
        namespace, title = check.namespace, check.title
        deployments = kube.list("apps/v1", "Deployment", namespace=namespace)
        if not deployments:
            if check.required:
                findings.append(Finding(f"{namespace}", False, f"{title} is not installed.",
                                        f"no Deployments in namespace {namespace}",
                                        "Run `sudo microk8s enable hybrid-knative`."))
            continue
        bad = []
        for dep in deployments:
            reason = deployment_available(kube, namespace, dep["metadata"]["name"])()
            if reason is not None:
                bad.append(f"{dep['metadata']['name']}: {reason}")
        findings.append(Finding(namespace, not bad, f"{title}: {len(deployments) - len(bad)}/{len(deployments)} "
                                "Deployments Available.", "; ".join(bad) or "all Available",
                                "" if not bad else f"See `microk8s kubectl -n {namespace} get pods` and describe the "
                                "failing pods (image pulls, resources)."))
    for namespace, service in ((w.namespace, w.service) for c in registered for w in c.webhooks):
        if kube.get(ObjectRef("v1", "Service", namespace, service)) is None:
            continue
        reason = service_endpoints_ready(kube, namespace, service)()
        findings.append(Finding(f"webhook {namespace}", reason is None, f"The {namespace} webhook "
                                f"{'answers' if reason is None else 'has no ready endpoint'}.", reason or "ready",
                                "" if reason is None else
                                f"See `microk8s kubectl -n {namespace} logs deploy/{service}`."))
    network = kube.get(ObjectRef("v1", "ConfigMap", "knative-serving", "config-network"))
    if network is not None:
        ingress_class = str((network.get("data") or {}).get("ingress-class", ""))
        ok = ingress_class == KOURIER_CLASS
        findings.append(Finding("ingress-class", ok, "The ingress class is Kourier." if ok else
                                "The ingress class is not Kourier, so routes never become ready.",
                                f"config-network ingress-class={ingress_class or '(unset: Istio)'}",
                                "" if ok else "Run `sudo hybrid-knative repair` (it sets it)."))
    domain_cm = kube.get(ObjectRef("v1", "ConfigMap", "knative-serving", "config-domain"))
    if domain_cm is not None:
        domains = [k for k in (domain_cm.get("data") or {}) if k != "_example"]
        ok = bool(domains) and not any(d in UNREACHABLE_DOMAINS for d in domains)
        findings.append(Finding("domain", ok, f"The Knative domain is {domains[0]}." if ok else
                                "No reachable Knative domain is configured (services get svc.cluster.local URLs).",
                                f"config-domain keys: {', '.join(domains) or '(none)'}",
                                "" if ok else "Run `sudo hybrid-knative repair --domain-mode local|magic|custom`."))
    if not findings:
        raise PermanentError("nothing to check: hybrid-knative is not installed on this cluster",
                             resolution="run `sudo microk8s enable hybrid-knative`")
    return Report("platform", tuple(findings))


def with_dns(report: Report, checks: list[DnsCheck], kube: KubeApi, *, waits: WaitPolicy,
             pod_check: bool) -> Report:
    """hybrid-knative/host: the platform report plus DNS — the CoreDNS block, a service host from this host
    (a timeout reported as a timeout) and, unless told not to, from a pod."""
    findings = [*report.findings, *(Finding(c.name, c.ok, c.cause, c.evidence, c.fix, c.info) for c in checks)]
    host = next((c.cause.split()[0] for c in checks if c.name == "dns-host"), None)
    if pod_check and host is not None:
        findings.append(_dns_from_pod(kube, host, "default", waits))
    return Report(report.subject, tuple(findings))


def is_label(name: str) -> bool:
    """An RFC 1123 label (Kubernetes names of namespaces and Knative Services)."""
    return 0 < len(name) <= 63 and name.replace("-", "a").isalnum() and name.isascii() and name == name.lower() \
        and name[0] != "-" and name[-1] != "-"
