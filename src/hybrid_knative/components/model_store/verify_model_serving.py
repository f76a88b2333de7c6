"""End-to-end check of `--with ml`: a tiny scikit-learn model (made here, a few KB) is pushed to the store,
served by KServe, and must answer through its URL from this host; then the check's InferenceService is
removed (the model stays in the store as `hk-verify`).

The model is trained on this host, so the check needs scikit-learn here; without it the step says so
and skips (the rest of the install is unaffected).
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

from hybrid_knative.errors import TemporaryError
from hybrid_knative.kube.objects import Manifest, ref_of
from hybrid_knative.kube.wait import retry
from hybrid_knative.ml import cluster, models, runtimes, serve
from hybrid_knative.platform.component import platform_labels
from hybrid_knative.platform.context import Context, RenderContext

NAME = "verify_model_serving"
TITLE = "Prove a tiny model is served and answers from this host"
MODEL = "hk-verify"


def render(rc: RenderContext) -> list[Manifest]:
    return []


def make_tiny_model(folder: Path) -> bool:
    """A 3-leaf decision tree on 4 features, saved as model.joblib; False without scikit-learn."""
    try:
        import joblib
        from sklearn.tree import DecisionTreeClassifier
    except ImportError:
        return False
    x = [[6.8, 2.8, 4.8, 1.4], [5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]]
    joblib.dump(DecisionTreeClassifier(random_state=0).fit(x, [1, 0, 2]), folder / "model.joblib")
    return True


def run(ctx: Context, objs: list[Manifest]) -> None:
    with tempfile.TemporaryDirectory(prefix="hk-verify-") as tmp:
        if not make_tiny_model(Path(tmp)) or importlib.util.find_spec("boto3") is None:
            ctx.status.warn("skipping the model serving check: it needs scikit-learn and boto3 on this host "
                            "(`pip install 'hybrid-knative[ml]' scikit-learn`, then re-run enable)")
            return
        settings = cluster.store_settings(ctx.kube)
        manifest = retry(lambda: models.push(settings, Path(tmp), MODEL), policy=ctx.waits,
                         what="push the check model to the store", stats=ctx.stats)
    req = serve.ServeRequest(name=MODEL, namespace="default", runtime=runtimes.runtime("sklearn"),
                             storage_uri=models.storage_uri(settings, MODEL), digest=manifest.digest)
    isvc = cluster.apply_serving(ctx.kube, req, settings, labels=platform_labels("model-store"))
    url = cluster.wait_url(ctx.kube, isvc, ctx.waits, on_progress=ctx.status.note)

    def answers() -> None:
        answer = ctx.probes.get(f"{url}/v1/models/{MODEL}")
        if answer.status != 200:
            raise TemporaryError(f"{url}/v1/models/{MODEL} answered HTTP {answer.status}")

    retry(answers, policy=ctx.waits, what=f"{MODEL} answers at {url}", stats=ctx.stats)
    ctx.status.info(f"model serving works: {url}/v1/models/{MODEL}:predict")
    ctx.kube.delete(ref_of(isvc))
