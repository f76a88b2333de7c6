"""DNS that works everywhere: domain modes, service host names, the CoreDNS zone block, host split DNS.

Layer: may import config, errors, system and kube; never install, addon or cli.
"""

from hybrid_knative.dns.names import (
    DEFAULT_ZONE,
    DOMAIN_MODES,
    DOMAIN_TEMPLATE,
    magic_domain,
    parse_ip,
    service_host,
    service_url,
    validate_domain,
    wildcard_record,
)

__all__ = [
    "DEFAULT_ZONE",
    "DOMAIN_MODES",
    "DOMAIN_TEMPLATE",
    "magic_domain",
    "parse_ip",
    "service_host",
    "service_url",
    "validate_domain",
    "wildcard_record",
]
