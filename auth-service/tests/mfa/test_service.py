"""TOTP checks against RFC 6238 Appendix B (an implementation-independent reference)."""

import base64
from datetime import UTC, datetime

from auth_service.mfa import service

# RFC 6238 Appendix B: the SHA-1 seed, and the 8-digit values at those times; a 6-digit
# code is the last 6 digits (the same truncation modulo 10^6).
SEED = base64.b32encode(b"12345678901234567890").decode()
VECTORS = {59: "94287082", 1111111109: "07081804", 1234567890: "89005924", 2000000000: "69279037"}


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def test_codes_match_rfc_6238_test_vectors() -> None:
    for seconds, value in VECTORS.items():
        assert service._matching_step(SEED, value[-6:], at(seconds)) == seconds // 30


def test_one_step_of_drift_either_way_and_no_more() -> None:
    code = VECTORS[1234567890][-6:]
    step = 1234567890 // 30
    assert service._matching_step(SEED, code, at(1234567890 + 30)) == step
    assert service._matching_step(SEED, code, at(1234567890 - 30)) == step
    assert service._matching_step(SEED, code, at(1234567890 + 60)) is None
    assert service._matching_step(SEED, code, at(1234567890 - 60)) is None


def test_malformed_codes_never_match() -> None:
    fullwidth = "\uff12\uff18\uff17\uff10\uff18\uff12"  # 287082, the right code
    for code in ("", "12345", "1234567", "abcdef", "28708 ", fullwidth):
        assert service._matching_step(SEED, code, at(59)) is None


def test_recovery_codes_are_80_random_bits_grouped() -> None:
    codes = {service.new_recovery_code() for _ in range(50)}
    assert len(codes) == 50
    for code in codes:
        groups = code.split("-")
        assert [len(g) for g in groups] == [4, 4, 4, 4]
        assert len(base64.b32decode("".join(groups))) == 10
    sample = next(iter(codes))
    assert service._normalise(sample.lower().replace("-", " ")) == sample.replace("-", "")
