import pytest
from fastapi.exceptions import RequestValidationError

from auth_service.password_policy import PasswordPolicy

POLICY = PasswordPolicy()


def test_a_good_password_passes() -> None:
    assert POLICY.problems("Corr3ct-Horse!", username="alice") == []


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("Sh0rt!", "at least 8"),
        ("lowercase-only-1", "uppercase"),
        ("UPPERCASE-ONLY-1", "lowercase"),
        ("No-Digits-Here!", "digit"),
        ("NoSpecial1234", "special"),
    ],
)
def test_each_seed_rule(password: str, expected: str) -> None:
    problems = POLICY.problems(password)
    assert len(problems) == 1
    assert expected in problems[0]


def test_every_failed_rule_is_listed() -> None:
    problems = POLICY.problems("abc")
    assert len(problems) == 4  # length, uppercase, digit, special
    joined = " ".join(problems)
    for word in ("at least 8", "uppercase", "digit", "special"):
        assert word in joined


@pytest.mark.parametrize("password", ["P@ssw0rd", "p@ssw0rd", "Passw0rd!", "Qwerty123!"])
def test_common_passwords_are_refused(password: str) -> None:
    assert "Password is too common" in POLICY.problems(password)


def test_uncommon_passwords_with_a_common_word_are_fine() -> None:
    assert POLICY.problems("Password-of-Mine-7") == []


def test_a_password_containing_the_username_is_refused_ignoring_case() -> None:
    assert "Password must not contain the username" in POLICY.problems(
        "xxALICExx-9!", username="alice"
    )
    assert POLICY.problems("xxALICExx-9!", username="bob") == []


def test_the_rules_are_configurable() -> None:
    relaxed = PasswordPolicy(
        min_length=4,
        require_uppercase=False,
        require_lowercase=False,
        require_digit=False,
        require_special=False,
        blocklist=False,
    )
    assert relaxed.problems("abcd") == []
    assert relaxed.problems("abc") == ["Password must be at least 4 characters long"]
    assert relaxed.problems("password") == []


def test_length_counts_characters_after_normalisation() -> None:
    # "e" + combining accent is one character after NFC.
    assert PasswordPolicy(min_length=8).problems("Cafe\u0301-P4") != []
    assert PasswordPolicy(min_length=8).problems("Cafe\u0301-P4x") == []


def test_check_raises_a_422_listing_every_rule() -> None:
    with pytest.raises(RequestValidationError) as caught:
        POLICY.check("abc", username="abc")
    errors = caught.value.errors()
    assert len(errors) == 5
    assert all(e["loc"] == ("body", "password") for e in errors)
    assert all(e["type"] == "password_policy" for e in errors)
