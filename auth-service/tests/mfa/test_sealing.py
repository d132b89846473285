import pytest

from auth_service.keys.material import KeyMaterialError
from auth_service.mfa.sealing import SecretBox, derive_key

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_sealed_secret_opens_only_for_its_user_and_key() -> None:
    box = SecretBox(derive_key(b"a passphrase of some length"))
    sealed, encrypted = box.seal(SECRET, user_id=7)
    assert encrypted
    assert SECRET.encode() not in sealed
    assert box.open(sealed, encrypted=True, user_id=7) == SECRET
    # Another nonce each time: equal secrets do not look equal at rest.
    assert box.seal(SECRET, user_id=7)[0] != sealed
    with pytest.raises(KeyMaterialError):
        box.open(sealed, encrypted=True, user_id=8)
    other = SecretBox(derive_key(b"another passphrase entirely"))
    with pytest.raises(KeyMaterialError):
        other.open(sealed, encrypted=True, user_id=7)
    with pytest.raises(KeyMaterialError):
        SecretBox(None).open(sealed, encrypted=True, user_id=7)
    with pytest.raises(KeyMaterialError):
        box.open(b"\x02" + sealed[1:], encrypted=True, user_id=7)


def test_without_a_passphrase_secrets_are_marked_unencrypted() -> None:
    box = SecretBox(None)
    stored, encrypted = box.seal(SECRET, user_id=1)
    assert not encrypted
    assert box.open(stored, encrypted=False, user_id=1) == SECRET
    assert not box.encrypts


async def test_from_passphrase_derives_the_same_key() -> None:
    first = await SecretBox.from_passphrase(b"a passphrase of some length")
    second = await SecretBox.from_passphrase(b"a passphrase of some length")
    sealed, _ = first.seal(SECRET, user_id=3)
    assert second.open(sealed, encrypted=True, user_id=3) == SECRET
