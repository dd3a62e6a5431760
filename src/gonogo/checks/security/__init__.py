"""The `security` check kind: authorization matrix, fuzzing from the OpenAPI document, raw
probes (traversal, injection, oversized and slow requests, headers), secrets, and scanners'
findings as evidence. See docs/security.md."""

from gonogo.checks.security.check import SecurityCheck
from gonogo.checks.security.settings import SecuritySettings

__all__ = ["SecurityCheck", "SecuritySettings"]
