"""KServe's model server (PyPI `kserve`) serving a scikit-learn model dir, as the sklearn runtime does.

Run as a script: ``python sklearn_server.py MODEL_NAME MODEL_DIR PORT``. KServe's REST server binds
0.0.0.0 unconditionally; tests must only listen on loopback, so uvicorn's Config is pinned to
127.0.0.1 before the server starts (the only change to KServe's own code path).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import joblib
import uvicorn

_Config = uvicorn.Config


class LoopbackConfig(_Config):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["host"] = "127.0.0.1"
        super().__init__(*args, **kwargs)


def main() -> None:
    import kserve.protocol.rest.server as rest_server

    rest_server.uvicorn.Config = LoopbackConfig
    from kserve import Model, ModelServer

    name, model_dir, port = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])

    class SKLearnModel(Model):  # type: ignore[misc]
        """What KServe v0.20.0's sklearnserver does (python/sklearnserver/sklearnserver/model.py): the one
        .joblib/.pkl/.pickle file in the model dir, and kserve's own get_predict_input/get_predict_response
        for the v1 and v2 payloads."""

        def load(self) -> bool:
            found = [p for p in model_dir.iterdir() if p.is_file() and p.suffix in (".joblib", ".pkl", ".pickle")]
            if len(found) != 1:
                raise RuntimeError(f"expected exactly one model file in {model_dir}, found {found}")
            self._model = joblib.load(found[0])
            self.ready = True
            return True

        def predict(self, payload: Any, headers: Any = None, response_headers: Any = None) -> Any:
            from kserve.utils.utils import get_predict_input, get_predict_response

            return get_predict_response(payload, self._model.predict(get_predict_input(payload)), self.name)

    model = SKLearnModel(name)
    model.load()
    ModelServer(http_port=port, enable_grpc=False, workers=1).start([model])


if __name__ == "__main__":
    main()
