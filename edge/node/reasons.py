"""Normalised verdict reasons: one per connection, whatever the OpenSSL code behind it.

The table follows ../shared/reference/peers-and-reasons.md, with the X509_V_ERR numbering of
OpenSSL 3.0 (where 24 is "issuer certificate doesn't have a public key" and 79 is
"invalid CA certificate"). An OpenSSL code not listed here is INTERNAL: never silent.
"""

from __future__ import annotations

import enum


class Reason(str, enum.Enum):
    OK = "OK"
    NO_CERT = "NO_CERT"
    UNKNOWN_CA = "UNKNOWN_CA"
    SELF_SIGNED = "SELF_SIGNED"
    EXPIRED = "EXPIRED"
    NOT_YET_VALID = "NOT_YET_VALID"
    REVOKED = "REVOKED"
    CHAIN_TOO_DEEP = "CHAIN_TOO_DEEP"
    TOO_LARGE = "TOO_LARGE"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    MALFORMED = "MALFORMED"
    WRONG_PURPOSE = "WRONG_PURPOSE"
    INVALID_CA = "INVALID_CA"
    UNSUPPORTED_KEY_OR_ALG = "UNSUPPORTED_KEY_OR_ALG"
    NAME_CONSTRAINTS = "NAME_CONSTRAINTS"
    POLICY_MISSING = "POLICY_MISSING"
    SNI_HOST_MISMATCH = "SNI_HOST_MISMATCH"
    INTERNAL = "INTERNAL"


_BY_CODE: dict[int, Reason] = {
    0: Reason.OK,
    2: Reason.UNKNOWN_CA,
    20: Reason.UNKNOWN_CA,
    21: Reason.UNKNOWN_CA,
    27: Reason.UNKNOWN_CA,
    28: Reason.UNKNOWN_CA,  # trust settings reject the anchor: still "not a CA of this host"
    29: Reason.UNKNOWN_CA,
    30: Reason.UNKNOWN_CA,
    31: Reason.UNKNOWN_CA,
    18: Reason.SELF_SIGNED,
    19: Reason.SELF_SIGNED,
    10: Reason.EXPIRED,
    9: Reason.NOT_YET_VALID,
    23: Reason.REVOKED,
    22: Reason.CHAIN_TOO_DEEP,
    4: Reason.BAD_SIGNATURE,
    7: Reason.BAD_SIGNATURE,
    6: Reason.MALFORMED,
    13: Reason.MALFORMED,
    14: Reason.MALFORMED,
    24: Reason.MALFORMED,
    34: Reason.MALFORMED,
    41: Reason.MALFORMED,
    42: Reason.MALFORMED,
    45: Reason.MALFORMED,
    83: Reason.MALFORMED,
    84: Reason.MALFORMED,
    85: Reason.MALFORMED,
    86: Reason.MALFORMED,
    87: Reason.MALFORMED,
    88: Reason.MALFORMED,
    89: Reason.MALFORMED,
    90: Reason.MALFORMED,
    91: Reason.MALFORMED,
    92: Reason.MALFORMED,
    93: Reason.MALFORMED,
    26: Reason.WRONG_PURPOSE,
    39: Reason.WRONG_PURPOSE,
    25: Reason.INVALID_CA,
    32: Reason.INVALID_CA,
    37: Reason.INVALID_CA,
    38: Reason.INVALID_CA,
    79: Reason.INVALID_CA,
    80: Reason.INVALID_CA,
    81: Reason.INVALID_CA,
    82: Reason.INVALID_CA,
    47: Reason.NAME_CONSTRAINTS,
    48: Reason.NAME_CONSTRAINTS,
    49: Reason.NAME_CONSTRAINTS,
    51: Reason.NAME_CONSTRAINTS,
    52: Reason.NAME_CONSTRAINTS,
    53: Reason.NAME_CONSTRAINTS,
    56: Reason.UNSUPPORTED_KEY_OR_ALG,
    57: Reason.UNSUPPORTED_KEY_OR_ALG,
    58: Reason.UNSUPPORTED_KEY_OR_ALG,
    59: Reason.UNSUPPORTED_KEY_OR_ALG,
    60: Reason.UNSUPPORTED_KEY_OR_ALG,
    61: Reason.UNSUPPORTED_KEY_OR_ALG,
    66: Reason.UNSUPPORTED_KEY_OR_ALG,
    67: Reason.UNSUPPORTED_KEY_OR_ALG,
    68: Reason.UNSUPPORTED_KEY_OR_ALG,
    76: Reason.UNSUPPORTED_KEY_OR_ALG,
    77: Reason.BAD_SIGNATURE,
    78: Reason.BAD_SIGNATURE,
    94: Reason.UNSUPPORTED_KEY_OR_ALG,
}


def reason_for_code(code: int) -> Reason:
    """The normalised reason of an X509_V_ERR code."""
    return _BY_CODE.get(code, Reason.INTERNAL)
