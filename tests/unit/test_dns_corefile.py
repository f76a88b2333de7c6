"""The Corefile editor: structural parse, our block added/replaced/removed, the rest byte-identical."""

from __future__ import annotations

import pytest
from tests.integration.conftest import STOCK_COREFILE

from hybrid_knative.dns import corefile
from hybrid_knative.dns.corefile import CorefileError, Directive, ensure, parse, without_ours

ZONE = "hk.internal"

CUSTOMISED = """\
# site tweaks
.:53 {
    errors
    forward . 192.168.1.1 9.9.9.9   # our router first
    cache 30
    reload
}
lab.example:53 {
    hosts {
        10.1.2.3 nas.lab.example
        fallthrough
    }
    template IN TXT lab.example {
        answer "{{ .Name }} 60 IN TXT \\"quoted } brace {\\""
    }
}"""


def test_parses_the_stock_microk8s_corefile() -> None:
    core = parse(STOCK_COREFILE)
    assert [b.keys for b in core.blocks] == [(".:53",)]
    block = core.blocks[0]
    assert [d.name for d in block.directives] == ["errors", "health", "ready", "log", "kubernetes", "prometheus",
                                                  "forward", "cache", "loop", "reload", "loadbalance"]
    assert block.find("health")[0].block == (Directive("lameduck", ("5s",)),)
    kube = block.find("kubernetes")[0]
    assert kube.args == ("cluster.local", "in-addr.arpa", "ip6.arpa")
    assert kube.find("fallthrough")[0].args == ("in-addr.arpa", "ip6.arpa")
    assert block.find("forward")[0].args == (".", "/etc/resolv.conf")
    assert block.zones == [(".", 53)] and not core.ours


def test_our_block_structure() -> None:
    text = ensure(STOCK_COREFILE, ZONE, "10.0.0.5")
    core = parse(text)
    assert [b.keys for b in core.blocks] == [(".:53",), (f"{ZONE}:53",)]
    ours = core.ours
    assert len(ours) == 1 and ours[0].zones == [(ZONE, 53)]
    templates = ours[0].find("template")
    assert templates[0].args == ("IN", "A", ZONE)
    assert templates[0].block == (Directive("answer", ("{{ .Name }} 60 IN A 10.0.0.5",)),)
    assert templates[1].args == ("ANY", "ANY", ZONE)
    assert templates[1].block == (Directive("rcode", ("NOERROR",)),)
    assert text.startswith(STOCK_COREFILE)  # the rest is byte-identical


def test_ipv6_ingress_answers_aaaa() -> None:
    ours = parse(ensure(STOCK_COREFILE, ZONE, "fd00::5")).ours[0]
    assert ours.find("template")[0].args == ("IN", "AAAA", ZONE)
    assert ours.find("template")[0].block == (Directive("answer", ("{{ .Name }} 60 IN AAAA fd00::5",)),)


@pytest.mark.parametrize("original", [STOCK_COREFILE, CUSTOMISED, "", STOCK_COREFILE + "\n\n"])
def test_idempotent_and_removed_cleanly(original: str) -> None:
    once = ensure(original, ZONE, "10.0.0.5")
    assert ensure(once, ZONE, "10.0.0.5") == once
    back = without_ours(once)
    assert back == original  # byte for byte, also without a newline at the end
    assert without_ours(original) == original


def test_a_new_address_replaces_the_block_in_place() -> None:
    once = ensure(CUSTOMISED, ZONE, "10.0.0.5")
    assert once.endswith(corefile.zone_block(ZONE, "10.0.0.5"))
    moved = once + "\nafter.example:53 {\n    whoami\n}\n"
    changed = ensure(moved, ZONE, "10.0.0.9")
    assert "10.0.0.5" not in changed and "10.0.0.9" in changed
    assert [b.keys[0] for b in parse(changed).blocks] == [".:53", "lab.example:53", f"{ZONE}:53", "after.example:53"]
    assert changed.replace("10.0.0.9", "10.0.0.5") == moved


def test_other_blocks_survive_structurally() -> None:
    core = parse(ensure(CUSTOMISED, ZONE, "10.0.0.5"))
    lab = core.blocks[1]
    assert lab.find("hosts")[0].block == (Directive("10.1.2.3", ("nas.lab.example",)), Directive("fallthrough"))
    assert lab.find("template")[0].block == (Directive("answer", ('{{ .Name }} 60 IN TXT "quoted } brace {"',)),)
    assert core.blocks[0].find("forward")[0].args == (".", "192.168.1.1", "9.9.9.9")
    assert "# our router first" in core.blocks[0].comments


def test_survives_microk8s_enable_dns_rewriting_the_corefile() -> None:
    """`microk8s enable dns` re-applies its ConfigMap: our block is gone; ensure() puts it back."""
    ours = ensure(STOCK_COREFILE, ZONE, "10.0.0.5")
    rewritten = STOCK_COREFILE  # what the dns addon writes
    assert not parse(rewritten).ours
    assert ensure(rewritten, ZONE, "10.0.0.5") == ours


def test_a_foreign_block_for_our_zone_is_refused() -> None:
    text = STOCK_COREFILE + "hk.internal {\n    whoami\n}\n"
    with pytest.raises(CorefileError, match="did not write"):
        ensure(text, ZONE, "10.0.0.5")
    ensure(text, "other.internal", "10.0.0.5")  # another zone is fine
    ensure(STOCK_COREFILE + "hk.internal:5353 {\n    whoami\n}\n", ZONE, "10.0.0.5")  # another port too


@pytest.mark.parametrize("broken, match", [
    (".:53 {\n    errors\n", "never closed"),
    (".:53 {\n    errors\n}\n}\n", "unexpected"),
    (".:53 {\n}\nother:53\nerrors\n", "has no"),  # braces may be left out only with one server block
    ('.:53 {\n    template IN A x {\n        answer "open\n', "not closed"),
])
def test_broken_corefiles_are_refused(broken: str, match: str) -> None:
    with pytest.raises(CorefileError, match=match):
        ensure(broken, ZONE, "10.0.0.5")


def test_key_forms() -> None:
    assert corefile.split_key("dns://HK.internal.:53") == ("hk.internal", 53)
    assert corefile.split_key(".") == (".", 53)
    assert corefile.split_key("example.org:1053") == ("example.org", 1053)
