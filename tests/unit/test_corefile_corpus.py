"""The Corefile editor against real default Corefiles (written from their public sources) and the
Caddyfile syntax CoreDNS accepts: every byte outside hybrid-knative's block is kept, and taking the
block out gives back the original text byte for byte."""

from __future__ import annotations

import pytest

from hybrid_knative.dns import corefile

# MicroK8s's dns addon (microk8s-core-addons, addons/dns/coredns.yaml)
MICROK8S = """\
.:53 {
    errors
    health {
      lameduck 5s
    }
    ready
    log . {
      class error
    }
    kubernetes cluster.local in-addr.arpa ip6.arpa {
      pods insecure
      fallthrough in-addr.arpa ip6.arpa
    }
    prometheus :9153
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
}
"""
# kubeadm's default (cmd/kubeadm/app/phases/addons/dns/manifests.go)
KUBEADM = """\
.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loop
    reload
    loadbalance
}
"""
# k3s (manifests/coredns.yaml): an import inside the block and a top-level import line
K3S = """\
.:53 {
    errors
    health
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
      pods insecure
      fallthrough in-addr.arpa ip6.arpa
    }
    hosts /etc/coredns/NodeHosts {
      ttl 60
      reload 15s
      fallthrough
    }
    prometheus :9153
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
    import /etc/coredns/custom/*.override
}
import /etc/coredns/custom/*.server
"""
# RKE2 (rke2-coredns chart's rendered default: double spaces and trailing blanks)
RKE2 = (".:53 {\n    errors \n    health  {\n        lameduck 5s\n    }\n    ready \n"
        "    kubernetes   cluster.local  cluster.local in-addr.arpa ip6.arpa {\n        pods insecure\n"
        "        fallthrough in-addr.arpa ip6.arpa\n        ttl 30\n    }\n    prometheus   0.0.0.0:9153\n"
        "    forward   . /etc/resolv.conf\n    cache   30\n    loop \n    reload \n    loadbalance \n}")
SNIPPETS = """\
(common) {
    errors
    cache 30
}
# my zones
.:53 {
    import common
    forward . 192.168.1.1 "10.0.0.1"  # quoted address, comment after
    kubernetes cluster.local in-addr.arpa ip6.arpa
}
lab.example:53 {
    import common
    file /etc/coredns/db.lab "lab.example"
}
"""
BRACELESS = ".:53\nerrors\nforward . /etc/resolv.conf\ncache 30\n"
BRACELESS_NO_NEWLINE = ".:53\nerrors\nforward . /etc/resolv.conf"
CRLF = ".:53 {\r\n    errors\r\n    forward . /etc/resolv.conf\r\n}\r\n"

CORPUS = {"microk8s": MICROK8S, "kubeadm": KUBEADM, "k3s": K3S, "rke2": RKE2, "snippets": SNIPPETS,
          "braceless": BRACELESS, "braceless-no-newline": BRACELESS_NO_NEWLINE, "crlf": CRLF}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_block_added_and_removed_keeping_every_other_byte(name: str) -> None:
    original = CORPUS[name]
    edited = corefile.ensure(original, "hk.internal", "10.0.0.5")
    core = corefile.parse(edited)
    assert [b.zones for b in core.ours] == [[("hk.internal", 53)]]
    if "braceless" not in name:
        assert edited.startswith(original)
    assert corefile.ensure(edited, "hk.internal", "10.0.0.5") == edited  # idempotent
    assert corefile.without_ours(edited) == original


def test_k3s_top_level_import_is_not_a_server_block() -> None:
    core = corefile.parse(K3S)
    assert [b.keys for b in core.blocks] == [(".:53",)]
    assert core.blocks[0].find("import")[0].args == ("/etc/coredns/custom/*.override",)


def test_snippets_are_not_zones() -> None:
    core = corefile.parse(SNIPPETS)
    assert [b.snippet for b in core.blocks] == [True, False, False]
    assert [b.keys for b in core.servers] == [(".:53",), ("lab.example:53",)]
    with pytest.raises(corefile.CorefileError, match="already has a server block for lab.example"):
        corefile.ensure(SNIPPETS, "lab.example", "10.0.0.5")
    corefile.ensure(SNIPPETS, "common", "10.0.0.5")  # a snippet name is no zone


def test_braceless_single_server_block() -> None:
    core = corefile.parse(BRACELESS)
    assert [(b.keys, b.braced) for b in core.blocks] == [((".:53",), False)]
    assert [d.name for d in core.blocks[0].directives] == ["errors", "forward", "cache"]
    edited = corefile.ensure(BRACELESS, "hk.internal", "10.0.0.5")
    assert [b.braced for b in corefile.parse(edited).blocks] == [True, True]
    with pytest.raises(corefile.CorefileError, match="has no"):
        corefile.parse(".:53 {\n}\nother:53\nerrors\n")  # braces may only be left out with one block


@pytest.mark.parametrize(("text", "words"), [
    ("foo#bar baz\n", ["foo"]),  # '#' starts a comment even inside a word (Caddy's lexer)
    ('"a#b" c\n', ["a#b", "c"]),  # but not inside quotes
    ('a"b" c\n', ['a"b"', "c"]),  # a quote inside a word is an ordinary character
    ('"ab"cd\n', ["ab", "cd"]),  # the closing quote ends the token
    ('"a\\"b" "c\\d"\n', ['a"b', "c\\d"]),  # only \\" is an escape; other backslashes stay
    ('"{"\n', ["{"]),
    ("a\r\n", ["a"]),
])
def test_lexer_matches_caddy(text: str, words: list[str]) -> None:
    assert [t.text for t in corefile.tokenize(text) if t.kind in ("word", "open", "close")] == words


def test_unclosed_quote_is_a_clear_error() -> None:
    with pytest.raises(corefile.CorefileError, match="line 2: a quoted string is not closed"):
        corefile.parse('.:53 {\n  forward . "1.1.1.1\n}\n')
