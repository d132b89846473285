from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from auth_service.keys import schedule

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RETENTION = timedelta(minutes=31)


@dataclass
class Key:
    kid: str
    created_at: datetime
    activates_at: datetime
    retired_at: datetime | None = None


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_no_keys() -> None:
    assert schedule.signer([], T0) is None
    assert schedule.published([], T0, RETENTION) == []


def test_a_single_key_signs_and_is_published() -> None:
    key = Key("a", at(0), at(0))
    assert schedule.signer([key], at(1)) is key
    assert schedule.published([key], at(1000), RETENTION) == [key]
    assert schedule.retirable([key], at(1000), RETENTION) == []


def test_the_full_rotation_sequence() -> None:
    old = Key("old", at(0), at(0))
    new = Key("new", at(100), at(105))  # created at 100, signs from 105
    keys = [old, new]

    # Published before it signs.
    assert schedule.signer(keys, at(101)) is old
    assert {k.kid for k in schedule.published(keys, at(101), RETENTION)} == {"old", "new"}

    # Signs from its activation; the old key is superseded but still published.
    assert schedule.signer(keys, at(105)) is new
    assert schedule.superseded_at(old, keys, at(105)) == at(105)
    assert {k.kid for k in schedule.published(keys, at(135), RETENTION)} == {"old", "new"}

    # Retired once every token it signed has expired (retention after supersession).
    assert {k.kid for k in schedule.published(keys, at(136), RETENTION)} == {"new"}
    assert schedule.retirable(keys, at(136), RETENTION) == [old]


def test_retired_keys_neither_sign_nor_publish() -> None:
    old = Key("old", at(0), at(0))
    new = Key("new", at(1), at(2), retired_at=at(3))
    assert schedule.signer([old, new], at(2.5)) is new
    assert schedule.signer([old, new], at(4)) is old
    assert [k.kid for k in schedule.published([old, new], at(4), RETENTION)] == ["old"]


def test_two_pending_keys_activate_in_order() -> None:
    a = Key("a", at(0), at(0))
    b = Key("b", at(1), at(10))
    c = Key("c", at(2), at(20))
    keys = [c, a, b]
    assert schedule.signer(keys, at(5)) is a
    assert schedule.signer(keys, at(15)) is b
    assert schedule.signer(keys, at(25)) is c
    assert schedule.superseded_at(a, keys, at(0)) == at(10)
    assert schedule.superseded_at(b, keys, at(0)) == at(20)


def test_each_key_state_through_a_rotation() -> None:
    old = Key("old", at(0), at(0))
    new = Key("new", at(100), at(105))  # published at 100, signs from 105
    keys = [old, new]
    assert schedule.state(old, keys, at(101), RETENTION) == "signing"
    assert schedule.state(new, keys, at(101), RETENTION) == "pending"
    assert schedule.state(new, keys, at(106), RETENTION) == "signing"
    # the old key verifies the tokens it signed until the retention after the switch is over
    assert schedule.state(old, keys, at(106), RETENTION) == "verifying"
    assert schedule.state(old, keys, at(105 + 32), RETENTION) == "expired"
