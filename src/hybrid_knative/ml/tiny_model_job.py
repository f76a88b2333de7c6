"""Make the `--with ml` check model INSIDE the cluster and put it in the store (run by a Job).

The Job runs KServe's sklearn runtime image (``kserve/sklearnserver``: python, scikit-learn, joblib and,
through kserve-storage, boto3), so the pickle is written by the same scikit-learn version that serves it
— a model pickled by another scikit-learn version is a real failure mode. The script trains a 3-leaf
decision tree on 4 features (a few hundred bytes), uploads ``MODEL/model.joblib`` with its sha256 as
object metadata and then ``MODEL/hk-manifest.json`` (hybrid-knative's model manifest, written LAST, as
``model push`` does), removes files an earlier push left under the same name, and writes a one-line JSON
summary (digest, scikit-learn version) to the termination log, where the installer reads it.

Environment: ``S3_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (from the store's
Secret), ``AWS_DEFAULT_REGION``, ``HK_BUCKET``, ``HK_MODEL``; ``HK_TERMINATION_LOG`` (default
``/dev/termination-log``). The whole file is the Job's ``python -c`` program: keep it free of
hybrid_knative imports and runnable on Python 3.10.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import sys
from typing import Any

MANIFEST = "hk-manifest.json"
MANIFEST_FORMAT = "hybrid-knative/model-manifest/v1"
FEATURES = [[6.8, 2.8, 4.8, 1.4], [5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]]
LABELS = [1, 0, 2]


def model_bytes() -> tuple[bytes, str]:
    """The pickled tree (joblib) and the scikit-learn version that made it."""
    import joblib
    import sklearn
    from sklearn.tree import DecisionTreeClassifier

    buf = io.BytesIO()
    joblib.dump(DecisionTreeClassifier(random_state=0).fit(FEATURES, LABELS), buf)
    return buf.getvalue(), str(sklearn.__version__)


def manifest(name: str, files: dict[str, bytes], now: datetime.datetime) -> tuple[bytes, str]:
    """hybrid-knative's model manifest (the format ``models.ModelManifest`` reads) and its digest."""
    entries = [{"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
               for path, data in sorted(files.items())]
    lines = "".join(f"{e['sha256']}  {e['path']}\n" for e in entries)
    digest = hashlib.sha256(lines.encode()).hexdigest()
    doc = {"format": MANIFEST_FORMAT, "name": name, "created": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
           "digest": digest, "files": entries}
    return json.dumps(doc, indent=2).encode(), digest


def client(endpoint: str, region: str) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 5, "mode": "standard"},
                    s3={"addressing_style": "path"}, signature_version="s3v4")
    return boto3.client("s3", endpoint_url=endpoint, region_name=region, config=config,
                        verify=endpoint.startswith("https://"))


def upload(s3: Any, bucket: str, name: str, files: dict[str, bytes], now: datetime.datetime) -> str:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) not in ("404", "NoSuchBucket"):
            raise
        s3.create_bucket(Bucket=bucket)
    for path, data in sorted(files.items()):
        s3.put_object(Bucket=bucket, Key=f"{name}/{path}", Body=data,
                      Metadata={"sha256": hashlib.sha256(data).hexdigest()})
    keep = {f"{name}/{path}" for path in files} | {f"{name}/{MANIFEST}"}
    stale = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{name}/")
             for o in page.get("Contents") or [] if o["Key"] not in keep]
    if stale:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in stale], "Quiet": True})
    raw, digest = manifest(name, files, now)
    s3.put_object(Bucket=bucket, Key=f"{name}/{MANIFEST}", Body=raw, ContentType="application/json",
                  Metadata={"sha256": digest})
    return digest


def main() -> int:
    try:
        endpoint, bucket, name = os.environ["S3_ENDPOINT_URL"], os.environ["HK_BUCKET"], os.environ["HK_MODEL"]
    except KeyError as exc:
        print(f"missing environment variable {exc}", file=sys.stderr)
        return 2
    data, version = model_bytes()
    now = datetime.datetime.now(datetime.timezone.utc)
    digest = upload(client(endpoint, os.environ.get("AWS_DEFAULT_REGION", "us-east-1")), bucket, name,
                    {"model.joblib": data}, now)
    summary = json.dumps({"digest": digest, "sklearn": version, "bytes": len(data)}, sort_keys=True)
    print(summary)
    try:
        with open(os.environ.get("HK_TERMINATION_LOG", "/dev/termination-log"), "w", encoding="utf-8") as fh:
            fh.write(summary)
    except OSError as exc:  # not fatal: the model is in the store
        print(f"cannot write the termination log: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
