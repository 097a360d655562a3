"""Findings of `HYPOTHESIS_PROFILE=fuzz` runs of tests/test_fuzz_properties.py, kept as exact
regression tests.

cryptography parses a certificate lazily: `load_pem_x509_certificate` checks the outer structure,
and a Name or an extension is decoded only when first read. `upload.parse_bundle` loads each block
and stops there, so a certificate whose issuer or subject Name does not decode passes it;
`check_bundle` (its message for a non-CA names the subject) and the store (issuer DN, and the
other fields of the record) then raise ValueError instead of UploadRejected / ApiError: an API
500 on customer input. parse_bundle now reads every field the store renders inside its try.
"""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from edge.control import commands as c
from edge.control.errors import ApiError
from edge.control.store import apply, new_store
from edge.fuzz.chains import ChainSpec, build_case
from edge.pki import upload

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
CN_UTF8 = b"\x55\x04\x03\x0c"  # id-at-commonName, then a UTF8String tag


def _pem(der: bytes) -> str:
    return "-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der).decode() + \
        "-----END CERTIFICATE-----\n"


def _with_bad_name(which: int) -> str:
    """A valid leaf whose issuer (0) or subject (1) CN has a tag no DirectoryString has."""
    der = bytearray(build_case(ChainSpec()).leaf)
    position = -1
    for _ in range(which + 1):
        position = der.index(CN_UTF8, position + 1)
    der[position + 3] = 0x0D
    return _pem(bytes(der))


@pytest.mark.parametrize("which", [0, 1], ids=["issuer", "subject"])
def test_an_undecodable_name_is_refused_as_unparseable(which):
    with pytest.raises(upload.UploadRejected, match="Unable to parse certificate"):
        upload.parse_bundle(_with_bad_name(which))


def test_an_upload_with_an_undecodable_issuer_is_an_api_error():
    created = apply(new_store(now=NOW), c.CreateAccount("acme"), NOW)
    with pytest.raises(ApiError):
        apply(created.store, c.UploadCaCertificate(created.result.id, _with_bad_name(0),
                                                   ca=False), NOW)
