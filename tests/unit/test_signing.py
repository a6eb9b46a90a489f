"""Webhook signatures (``switchyard.signing``): what verifies, and every way a forgery is refused."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from switchyard import signing
from switchyard.errors import SignatureError

SECRET = "whsec-unit"
BODY = b'{"seconds": 0}'
NOW = 1_764_140_000


def test_header_format_is_t_and_hex_hmac_of_timestamp_dot_body():
    header = signing.sign(SECRET, BODY, NOW)
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v1={expected}"


def test_a_fresh_signature_verifies_and_returns_its_timestamp():
    assert signing.verify(SECRET, BODY, signing.sign(SECRET, BODY, NOW), now=NOW + 10) == NOW


def test_signing_with_the_current_time_by_default():
    assert signing.verify(SECRET, BODY, signing.sign(SECRET, BODY))


@pytest.mark.parametrize("skew", [-300, 300])
def test_the_tolerance_window_is_inclusive(skew):
    assert signing.verify(SECRET, BODY, signing.sign(SECRET, BODY, NOW), now=NOW + skew) == NOW


@pytest.mark.parametrize("skew", [-301, 301, 86_400])
def test_stale_or_future_timestamps_are_refused(skew):
    with pytest.raises(SignatureError, match="tolerance"):
        signing.verify(SECRET, BODY, signing.sign(SECRET, BODY, NOW), now=NOW + skew)


def test_custom_tolerance():
    header = signing.sign(SECRET, BODY, NOW)
    with pytest.raises(SignatureError, match="tolerance"):
        signing.verify(SECRET, BODY, header, tolerance_s=5, now=NOW + 6)


def test_wrong_secret_is_refused():
    with pytest.raises(SignatureError, match="does not match"):
        signing.verify(SECRET, BODY, signing.sign("another-secret", BODY, NOW), now=NOW)


def test_tampered_body_is_refused():
    header = signing.sign(SECRET, BODY, NOW)
    with pytest.raises(SignatureError, match="does not match"):
        signing.verify(SECRET, b'{"seconds": 9}', header, now=NOW)


def test_old_signature_with_a_new_timestamp_is_refused():
    """The replay attack: keep the MAC of an old request, put a fresh timestamp in front of it."""
    old = signing.sign(SECRET, BODY, NOW - 3600)
    mac = old.split("v1=", 1)[1]
    with pytest.raises(SignatureError, match="does not match"):
        signing.verify(SECRET, BODY, f"t={NOW},v1={mac}", now=NOW)


def test_any_matching_v1_is_accepted_for_secret_rotation():
    good = signing.sign(SECRET, BODY, NOW).split("v1=", 1)[1]
    header = f"t={NOW},v1={'0' * 64},v1={good}"
    assert signing.verify(SECRET, BODY, header, now=NOW) == NOW


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("v1=abc", "no timestamp"),
        ("t=soon,v1=abc", "no timestamp"),
        (f"t={NOW}", "no v1"),
        (f"t={NOW},v0=abc", "no v1"),
        ("garbage", "no timestamp"),
    ],
)
def test_malformed_headers_say_why(header, reason):
    with pytest.raises(SignatureError, match=reason):
        signing.verify(SECRET, BODY, header, now=NOW)


def test_errors_never_contain_the_secret_or_expected_mac():
    expected = signing.sign(SECRET, BODY, NOW).split("v1=", 1)[1]
    with pytest.raises(SignatureError) as info:
        signing.verify(SECRET, BODY, f"t={NOW},v1={'0' * 64}", now=NOW)
    assert SECRET not in str(info.value) and expected not in str(info.value)
