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
import numpy as np
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
    from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

    name, model_dir, port = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])

    class SKLearnModel(Model):  # type: ignore[misc]
        """Loads model.joblib from the model dir (what the kserve-sklearnserver runtime looks for)."""

        def load(self) -> bool:
            self._model = joblib.load(model_dir / "model.joblib")
            self.ready = True
            return True

        def predict(self, payload: Any, headers: Any = None, response_headers: Any = None) -> Any:
            if isinstance(payload, InferRequest):
                x = payload.inputs[0].as_numpy()
                y = np.asarray(self._model.predict(x), dtype=np.int64)
                out = InferOutput(name="output-0", shape=list(y.shape), datatype="INT64", data=y.tolist())
                return InferResponse(response_id=payload.id or "", model_name=self.name, infer_outputs=[out])
            return {"predictions": self._model.predict(np.asarray(payload["instances"])).tolist()}

    model = SKLearnModel(name)
    model.load()
    ModelServer(http_port=port, enable_grpc=False, workers=1).start([model])


if __name__ == "__main__":
    main()
