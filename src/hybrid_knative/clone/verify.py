"""Finish a clone by invoking every cloned public KService through its URL on the target."""

from __future__ import annotations

import dataclasses

from hybrid_knative.errors import HybridError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import ObjectRef
from hybrid_knative.kube.wait import WaitPolicy, retry
from hybrid_knative.system.http import HostProbes


@dataclasses.dataclass(frozen=True)
class Answer:
    namespace: str
    name: str
    url: str | None
    status: int | None  # HTTP status, None when it did not answer
    detail: str

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 400


def invoke(kube: KubeApi, services: list[ObjectRef], probes: HostProbes, policy: WaitPolicy) -> list[Answer]:
    answers = []
    for svc in services:
        live = kube.get(svc) or {}
        url = (live.get("status") or {}).get("url")
        if not url:
            answers.append(Answer(str(svc.namespace), svc.name, None, None, "no URL on the target yet"))
            continue
        try:
            got = retry(lambda u=url: probes.get(str(u)), policy=policy, what=f"GET {url}")  # type: ignore[misc]
        except HybridError as exc:
            answers.append(Answer(str(svc.namespace), svc.name, str(url), None, exc.brief))
            continue
        answers.append(Answer(str(svc.namespace), svc.name, str(url), got.status,
                              f"answers {got.status} (via {got.address})"))
    return answers
