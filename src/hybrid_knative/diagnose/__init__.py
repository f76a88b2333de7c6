"""Diagnosis use cases: `status` (status.py: the per-component health table, from the registry and the
record), `doctor` (doctor.py: cause, evidence and fix for a Knative Service or the platform) and the DNS
checks both show (dns_check.py).

Layer: beside install, dev, clone and ros2 (independent of them); may import components, platform and
everything below. The CLI and addon.py call it.
"""
