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


TRICKY = ["yes", "No", "ON", "true", "null", "~", "", " lead", "trail ", "a: b", "a #b", "#x", "-", "- x", "@x",
          "*a", "&a", "!t", "%x", "`x`", "key:", "0x1F", "1e3", "1_000", "2021-01-01", ".5", ".inf", "=", "<<",
          "1:20", "+1", "multi\nline\n", "multi\nline", "two\n\n", "\nleading newline", "tab\tin\nlines",
          "trailing space \nnext", "ünïcödé", "quote \" and ' both", "back\\slash", "x" * 300,
          "ends with colon:", "a/b.c-d_e@f", "/path/to", "ctrl\x01char", "line\r\nbreak"]


def test_our_writer_round_trips_tricky_values_and_every_rendered_object() -> None:
    from hybrid_knative import addon
    from hybrid_knative.config import Config, KubeVersion
    from hybrid_knative.progress import Status

    data = {"strings": TRICKY, "keys": {t: t for t in TRICKY if t}, "numbers": [0, -1, 3.5, 1e300, True, False, None],
            "empty": {"map": {}, "list": []}, "nested": [[1, [2, {"a": [{}]}]], {"b": {"c": ["d"]}}]}
    assert yaml.safe_load(dump(data)) == data
    _, rendered = addon.render(Config(), KubeVersion.parse("1.34"), Status(verbosity=-1))
    objs = [o for r in rendered for o in r.objects]
    assert list(yaml.safe_load_all(dump_all(objs))) == objs
    assert yaml.safe_load(dump({"when": __import__("datetime").date(2026, 1, 2)})) == {
        "when": __import__("datetime").date(2026, 1, 2)}  # not ours to write: PyYAML does it


def test_parse_all_builds_what_safe_load_builds_for_every_vendored_file() -> None:
    from hybrid_knative.manifests.load import parse_all
    from hybrid_knative.upstream import PACKAGE_VENDOR_DIR

    files = sorted(p for p in PACKAGE_VENDOR_DIR.rglob("*") if p.suffix in (".yaml", ".yml"))
    assert len(files) >= 7
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert parse_all(text) == list(yaml.safe_load_all(text)), path


def test_parse_all_hands_the_rare_cases_to_safe_load() -> None:
    from hybrid_knative.manifests.load import parse_all

    text = ("base: &b {x: 1, y: [a, b]}\nmerged:\n  <<: *b\n  z: 0755\nalias: *b\nwhen: 2026-01-02\n"
            "f: 1.5e3\nhex: 0x1F\nneg: -12\nbools: [yes, Off, TRUE, n]\nnulls: [~, null, ]\nbin: !!binary aGk=\n"
            "quoted: ['1', \"true\", 'null']\n---\n- 1\n- [2, {k: v}]\n")
    assert parse_all(text) == list(yaml.safe_load_all(text))
    doc = parse_all(text)[0]
    assert doc["alias"] is doc["base"]  # an alias is the same object, as with SafeConstructor
