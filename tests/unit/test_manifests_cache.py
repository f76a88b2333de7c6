"""Pinned upstream files are parsed once per process (each caller still gets objects of its own), and the
C YAML emitter writes what the loader reads back unchanged."""

from __future__ import annotations

import yaml

from hybrid_knative.catalog import load_catalog
from hybrid_knative.manifests import dump, dump_all, load_pinned
from hybrid_knative.manifests import load as load_mod
from hybrid_knative.upstream import UpstreamStore

TEXT = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n---\napiVersion: v1\nkind: Namespace\n" \
       "metadata:\n  name: b\n"


def test_parsed_once_per_sha256_and_copies_are_independent() -> None:
    load_mod.clear_parsed()
    reads: list[int] = []

    def read() -> str:
        reads.append(1)
        return TEXT

    first = load_pinned("0" * 64, read, source="test.yaml")
    first[0]["data"]["k"] = "changed by a transform"
    second = load_pinned("0" * 64, read, source="test.yaml")
    assert len(reads) == 1
    assert second[0]["data"] == {"k": "v"} and [o["kind"] for o in second] == ["ConfigMap", "Namespace"]
    load_pinned("1" * 64, read, source="other.yaml")
    assert len(reads) == 2  # another sha256 is another file
    load_mod.clear_parsed()


def test_the_store_records_every_file_render_opens() -> None:
    release = load_catalog().releases[-1]
    f = release.component("knative-serving").file("serving-crds.yaml")
    store = UpstreamStore()
    store.read_text(f)
    assert store.opened == [f]


def test_c_dumper_round_trips_the_upstream_crds() -> None:
    release = load_catalog().releases[-1]
    f = release.component("knative-serving").file("serving-crds.yaml")
    objs = list(yaml.safe_load_all(UpstreamStore().read_text(f)))
    objs = [o for o in objs if o]
    assert list(yaml.safe_load_all(dump_all(objs))) == objs
    assert yaml.safe_load(dump(objs[0])) == objs[0]
    assert dump({"b": 1, "a": [1, 2]}).startswith("b: 1\na:\n")  # keys in their order, block style
