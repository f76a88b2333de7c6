"""Set Knative's domain ourselves (never the upstream default-domain Job) and a flat domain-template.

``local``: a private zone (default hk.internal); ``magic``: <ingress-ip>.sslip.io, refused when
sslip.io cannot be resolved; ``custom``: the user's wildcard domain, whose record is printed and
checked. Only our keys are merge-patched into config-domain and config-network; a domain set by an
earlier run is taken out of config-domain.
"""

from __future__ import annotations

from typing import Any

from hybrid_knative.dns import ingress
from hybrid_knative.dns.names import DOMAIN_TEMPLATE, domain_for, wildcard_record
from hybrid_knative.dns.resolve import DnsClient, check_custom, check_magic
from hybrid_knative.errors import PermanentError
from hybrid_knative.kube.objects import Manifest, ObjectRef, ref_of
from hybrid_knative.kube.wait import retry
from hybrid_knative.platform.context import Context, RenderContext

NAME = "configure_domain"
TITLE = "Configure the Knative domain"
NAMESPACE = "knative-serving"


def objects(domain: str) -> list[Manifest]:
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config-domain", "namespace": NAMESPACE},
         "data": {domain: ""}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config-network", "namespace": NAMESPACE},
         "data": {"domain-template": DOMAIN_TEMPLATE}},
    ]


def render(rc: RenderContext) -> list[Manifest]:
    domain = domain_for(rc.config.domain_mode, domain=rc.config.domain, ingress_ip=rc.config.ingress_ip)
    return objects(domain) if domain else []  # magic mode without --ingress-ip: known at run time


def run(ctx: Context, objs: list[Manifest]) -> None:
    config = ctx.config
    ip = ingress.current(ctx.kube)
    if ip is None:
        raise PermanentError("the Kourier ingress has no address yet",
                             resolution="run `sudo hybrid-knative repair`: the ingress address step sets it")
    domain = domain_for(config.domain_mode, domain=config.domain, ingress_ip=ip)
    assert domain is not None
    client = DnsClient(config.dns_servers)
    if config.domain_mode == "magic":
        check = check_magic(client, ip)
        if not check.ok:
            raise PermanentError(f"magic DNS ({domain}) cannot work here", details=check.message,
                                 resolution="use the default offline mode (`--domain-mode local`), or your own "
                                 "domain (`--domain-mode custom --domain apps.example.com`)")
    elif config.domain_mode == "custom":
        ctx.status.info(f"DNS record for your domain: {wildcard_record(domain, ip)}")
        check = check_custom(client, domain, ip)
        (ctx.status.info if check.ok else ctx.status.warn)(check.message)
    for obj in objects(domain):
        _merge_data(ctx, ref_of(obj), obj["data"], prune=obj["metadata"]["name"] == "config-domain")
    ctx.status.info(f"Knative domain: {domain} (services: http://NAME-NAMESPACE.{domain})")


def _merge_data(ctx: Context, ref: ObjectRef, want: dict[str, str], *, prune: bool) -> None:
    live = ctx.kube.get(ref)
    if live is None:
        raise PermanentError(f"{ref} is missing", resolution="run `sudo hybrid-knative repair`: the core step "
                                 "creates it")
    have: dict[str, Any] = live.get("data") or {}
    patch: dict[str, Any] = {k: v for k, v in want.items() if have.get(k) != v}
    if prune:  # config-domain: one domain only; "_example" and other underscore keys are upstream docs
        patch.update({k: None for k in have if not k.startswith("_") and k not in want})
    if not patch:
        ctx.status.detail(f"unchanged {ref}")
        return
    retry(lambda: ctx.kube.merge_patch(ref, {"data": patch}), policy=ctx.waits, what=f"patch {ref}",
          stats=ctx.stats)
    ctx.status.detail(f"patched {ref}: {', '.join(patch)}")
