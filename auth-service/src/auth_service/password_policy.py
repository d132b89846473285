"""The password policy: the seed's rules (length, upper, lower, digit, special), configurable,
plus a small blocklist of common passwords and a ban on passwords containing the username.

:func:`PasswordPolicy.problems` returns every rule a password fails, so the 422 can list them
all at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi.exceptions import RequestValidationError

from auth_service.passwords import normalise
from auth_service.settings import Settings

# Common passwords from public breach corpora, lower-cased, including the few that satisfy the
# character-class rules ("P@ssw0rd"). Matched exactly, ignoring case: the list is a backstop
# for weak choices, not a dictionary attack on every password.
COMMON_PASSWORDS = frozenset(
    [
        "123456",
        "123456789",
        "12345678",
        "1234567890",
        "12345",
        "1234567",
        "password",
        "password1",
        "password123",
        "qwerty",
        "qwerty123",
        "qwertyuiop",
        "1q2w3e4r",
        "1qaz2wsx",
        "zaq12wsx",
        "abc123",
        "abcd1234",
        "111111",
        "000000",
        "123123",
        "654321",
        "666666",
        "121212",
        "iloveyou",
        "admin",
        "administrator",
        "welcome",
        "welcome1",
        "letmein",
        "monkey",
        "dragon",
        "football",
        "baseball",
        "basketball",
        "soccer",
        "hockey",
        "master",
        "shadow",
        "sunshine",
        "princess",
        "superman",
        "batman",
        "trustno1",
        "starwars",
        "whatever",
        "freedom",
        "secret",
        "passw0rd",
        "p@ssw0rd",
        "p@ssword",
        "pa$$word",
        "changeme",
        "default",
        "login",
        "guest",
        "root",
        "test",
        "test123",
        "hello",
        "hello123",
        "charlie",
        "michael",
        "jennifer",
        "jordan",
        "hunter",
        "hunter2",
        "ashley",
        "bailey",
        "buster",
        "cheese",
        "computer",
        "internet",
        "killer",
        "mustang",
        "pepper",
        "summer",
        "winter",
        "spring",
        "autumn",
        "flower",
        "ginger",
        "google",
        "liverpool",
        "chelsea",
        "arsenal",
        "london",
        "matrix",
        "maverick",
        "mercedes",
        "nicole",
        "orange",
        "pokemon",
        "purple",
        "samsung",
        "silver",
        "tigger",
        "yankees",
        "azerty",
        "access",
        "loveme",
        "lovely",
        "zxcvbnm",
        "zxcvbn",
        "asdfgh",
        "asdfghjkl",
        "qazwsx",
        "p@ssw0rd1",
        "p@ssw0rd!",
        "p@ssword1",
        "p@55w0rd",
        "passw0rd!",
        "passw0rd1",
        "password1!",
        "qwerty123!",
        "qwerty1!",
        "welcome1!",
        "welcome123!",
        "admin123!",
        "admin@123",
        "letmein1!",
        "changeme1!",
        "abc@1234",
        "abcd@1234",
    ]
)

_SPECIAL = re.compile(r"[^A-Za-z0-9\s]")


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    min_length: int = 8
    require_uppercase: bool = True
    require_lowercase: bool = True
    require_digit: bool = True
    require_special: bool = True
    blocklist: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordPolicy:
        return cls(
            min_length=settings.password_min_length,
            require_uppercase=settings.password_require_uppercase,
            require_lowercase=settings.password_require_lowercase,
            require_digit=settings.password_require_digit,
            require_special=settings.password_require_special,
            blocklist=settings.password_blocklist,
        )

    def problems(self, password: str, *, username: str | None = None) -> list[str]:
        """Every rule ``password`` fails, as messages for the client (empty when it passes)."""
        password = normalise(password)
        found: list[str] = []
        if len(password) < self.min_length:
            found.append(f"Password must be at least {self.min_length} characters long")
        if self.require_uppercase and not any(c.isupper() for c in password):
            found.append("Password must contain an uppercase letter")
        if self.require_lowercase and not any(c.islower() for c in password):
            found.append("Password must contain a lowercase letter")
        if self.require_digit and not any(c.isdigit() for c in password):
            found.append("Password must contain a digit")
        if self.require_special and not _SPECIAL.search(password):
            found.append("Password must contain a special character")
        if self.blocklist and _is_common(password):
            found.append("Password is too common")
        if username and username.lower() in password.lower():
            found.append("Password must not contain the username")
        return found

    def check(self, password: str, *, username: str | None = None, field: str = "password") -> None:
        """Raise a 422 listing every failed rule (``errors[].loc`` points at ``field``)."""
        problems = self.problems(password, username=username)
        if problems:
            raise RequestValidationError(
                [
                    {"loc": ("body", field), "msg": msg, "type": "password_policy"}
                    for msg in problems
                ]
            )


def _is_common(password: str) -> bool:
    return password.lower() in COMMON_PASSWORDS
