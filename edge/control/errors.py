"""API errors of the control plane, with Cloudflare's codes where public and ours elsewhere.

Every code is listed, with its message and origin, in docs/api-errors.md; keep the two in step.
"""

from __future__ import annotations

import attrs


@attrs.define(auto_exc=True, eq=False)
class ApiError(Exception):
    """A refused command: the answer the API gives, and a promise that nothing changed."""

    code: int
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def to_api(self) -> dict:
        return {"code": self.code, "message": self.message}


# Request shape
INVALID_REQUEST = 1450
# Accounts and zones
ACCOUNT_NOT_FOUND = 1451
ZONE_NOT_FOUND = 1452
ZONE_EXISTS = 1453
ZONE_OVERLAPS = 1454
# Account CA store
UNPARSEABLE_CERTIFICATE = 1460
CERTIFICATE_REJECTED = 1461
PLAN_NOT_ENTITLED = 1463
CA_QUOTA_EXCEEDED = 1489  # Cloudflare's own: "Hit maximum CA cert allocation."
CERTIFICATE_NOT_FOUND = 1470
CERTIFICATE_IN_USE = 1471
CERTIFICATE_NOT_CA = 1472
# Hostname associations
INVALID_HOSTNAME = 1473
HOSTNAME_NOT_IN_ZONE = 1474
# Managed CA client certificates
CLIENT_CERTIFICATE_NOT_FOUND = 1480
INVALID_CSR = 1481
INVALID_VALIDITY = 1482
CLIENT_CERTIFICATE_QUOTA = 1483
INVALID_STATUS_CHANGE = 1484
# Custom rules
INVALID_RULE = 1490
# A bug: the command raised something else; the store is unchanged
INTERNAL_ERROR = 1499
