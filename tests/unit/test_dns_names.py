"""Domain names, modes, service hosts and the DNS options of Config."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_knative.config import Config
from hybrid_knative.dns.names import (
    DEFAULT_ZONE,
    domain_for,
    magic_domain,
    parse_ip,
    service_host,
    service_url,
    validate_domain,
    wildcard_record,
)
from hybrid_knative.dns.resolve import split_server
from hybrid_knative.errors import ConfigError


@pytest.mark.parametrize("name, want", [
    ("hk.internal", "hk.internal"), ("Apps.Example.COM.", "apps.example.com"),
    ("a-1.b2.example", "a-1.b2.example"), ("x" * 63 + ".io", "x" * 63 + ".io"),
])
def test_valid_domains(name: str, want: str) -> None:
    assert validate_domain(name) == want


@pytest.mark.parametrize("name, why", [
    ("", "empty"), ("localhost", "single label"), ("-bad.example.com", "RFC 1123"),
    ("bad-.example.com", "RFC 1123"), ("under_score.example.com", "RFC 1123"), ("a..b", "RFC 1123"),
    ("x" * 64 + ".io", "RFC 1123"), (".".join(["abcdefgh"] * 30), "253"), ("10.0.0.5", "numeric"),
    ("*.example.com", "RFC 1123"), ("exa mple.com", "RFC 1123"), ("ünï.example", "RFC 1123"),
])
def test_invalid_domains_say_why(name: str, why: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate_domain(name)
    assert why in err.value.brief
    assert "apps.example.com" in (err.value.resolution or "")


@pytest.mark.parametrize("text, want", [("10.0.0.5", "10.0.0.5"), (" 192.168.1.20 ", "192.168.1.20"),
                                        ("FD00::0001", "fd00::1")])
def test_ip_addresses(text: str, want: str) -> None:
    assert parse_ip(text) == want


@pytest.mark.parametrize("text", ["10.0.0", "example.com", "10.0.0.5/24", "0.0.0.0", "127.0.0.1", "::", "224.0.0.1"])
def test_bad_ingress_ip(text: str) -> None:
    with pytest.raises(ConfigError, match="--ingress-ip"):
        parse_ip(text)


def test_modes() -> None:
    assert domain_for("local", domain=None, ingress_ip=None) == DEFAULT_ZONE == "hk.internal"
    assert domain_for("local", domain="lab.internal", ingress_ip=None) == "lab.internal"
    assert domain_for("magic", domain=None, ingress_ip="10.0.0.5") == "10.0.0.5.sslip.io"
    assert domain_for("magic", domain=None, ingress_ip=None) is None
    assert domain_for("custom", domain="apps.example.com", ingress_ip=None) == "apps.example.com"
    assert magic_domain("fd00::1") == "fd00--1.sslip.io"
    with pytest.raises(ConfigError):
        domain_for("nope", domain=None, ingress_ip=None)


def test_records_and_urls() -> None:
    assert wildcard_record("apps.example.com", "10.0.0.5") == "*.apps.example.com. IN A 10.0.0.5"
    assert wildcard_record("apps.example.com", "fd00::1") == "*.apps.example.com. IN AAAA fd00::1"
    assert service_host("hello", "default", "hk.internal") == "hello-default.hk.internal"
    assert service_url("hello", "default", "hk.internal") == "http://hello-default.hk.internal"
    assert service_url("hello", "ml", "10.0.0.5.sslip.io", https=True) == "https://hello-ml.10.0.0.5.sslip.io"
    with pytest.raises(ConfigError):
        service_host("Hello", "default", "hk.internal")
    with pytest.raises(ConfigError, match="63"):
        service_host("a" * 40, "b" * 30, "hk.internal")


def test_config_dns_fields() -> None:
    assert Config().domain_mode == "local" and Config().domain is None and Config().host_root == Path("/")
    assert Config(domain="Lab.Internal.").domain == "lab.internal"
    assert Config(ingress_ip="fd00::0001").ingress_ip == "fd00::1"
    assert Config(domain_mode="custom", domain="apps.example.com").domain == "apps.example.com"


@pytest.mark.parametrize("kwargs, match", [
    ({"domain_mode": "public"}, "unknown --domain-mode"),
    ({"domain_mode": "custom"}, "needs --domain"),
    ({"domain_mode": "magic", "domain": "x.example.com"}, "cannot be used with --domain-mode magic"),
    ({"domain": "bad_name.example"}, "RFC 1123"),
    ({"ingress_ip": "not-an-ip"}, "not an IP address"),
    ({"dns_servers": ("resolver.example",)}, "not a DNS server address"),
])
def test_config_refuses_bad_dns_input(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Config(**kwargs)  # type: ignore[arg-type]


def test_split_server() -> None:
    assert split_server("127.0.0.1") == ("127.0.0.1", 53)
    assert split_server("127.0.0.1:15353") == ("127.0.0.1", 15353)
    assert split_server("[::1]:5353") == ("::1", 5353)
    assert split_server("::1") == ("::1", 53)
    with pytest.raises(ConfigError):
        split_server("127.0.0.1:99999")
