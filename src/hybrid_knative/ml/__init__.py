"""Kubeflow-lite: KServe serving, the model store, GridFS, training, webhook certificates."""
