"""Error responses as the OpenAPI document declares them.

svckit renders every error at run time; this module only describes them, so the schema lists
every status a route can answer (checked by the end-to-end API fuzzing with schemathesis).
"""

from __future__ import annotations

from typing import Any

from svckit.schemas import ErrorEnvelope

_DESCRIPTIONS = {
    400: "Malformed body, or a conflict with existing data (see `code`)",
    401: "Missing, invalid or expired credentials",
    403: "Inactive user, or administrator privileges required",
    404: "Not found",
    409: "Would remove the last active administrator (`last_admin`)",
    422: "Invalid input; `errors` lists every problem",
    429: "Too many failed logins for this account; see `Retry-After`",
    503: "A dependency (database, Redis, signing keys, hashing capacity) is unavailable; "
    "see `Retry-After`",
}


def error_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status in the error envelope.

    ``descriptions`` override the defaults, keyed ``s400``, ``s401``, ...
    """
    return {
        status: {
            "model": ErrorEnvelope,
            "description": descriptions.get(f"s{status}", _DESCRIPTIONS[status]),
        }
        for status in statuses
    }


# Every route that needs a valid access token can answer these.
AUTHENTICATED = (401, 403, 503)
