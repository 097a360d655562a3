"""Cloudflare's field formats, checked against hand-written expectations."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.x509.oid import NameOID

from edge.pki import formats

NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "San Francisco"),
        x509.NameAttribute(NameOID.LOCALITY_NAME, "California"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Inc."),
    ]
)


def test_rfc2253_puts_the_most_specific_rdn_first():
    assert formats.dn_rfc2253(NAME) == "O=Example Inc.,L=California,ST=San Francisco,C=US"


def test_legacy_dn_keeps_certificate_order():
    assert formats.dn_legacy(NAME) == "/C=US/ST=San Francisco/L=California/O=Example Inc."


def test_rfc2253_escapes_special_characters_and_names_email():
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme, Inc."),
            x509.NameAttribute(NameOID.COMMON_NAME, " #lead"),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "ops@example.com"),
        ]
    )
    assert formats.dn_rfc2253(name) == (
        "emailAddress=ops@example.com,CN=\\ #lead,O=Acme\\, Inc."
    )


def test_serial_hex_is_upper_case_with_even_length():
    assert formats.serial_hex(0xABC) == "0ABC"
    assert formats.serial_hex(0x1F2E) == "1F2E"


def test_timestamps():
    moment = dt.datetime(2022, 3, 1, 13, 35, 0, 467938, tzinfo=dt.timezone.utc)
    assert formats.rfc3339(moment) == "2022-03-01T13:35:00Z"
    assert formats.rfc3339(moment, micro=True) == "2022-03-01T13:35:00.467938Z"
    assert formats.openssl_time(moment) == "Mar  1 13:35:00 2022 GMT"
