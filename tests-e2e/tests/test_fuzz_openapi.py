"""API fuzzing of both services with schemathesis, against the live stack.

For every operation of each service's OpenAPI document, schemathesis generates requests from
the schema (positive: valid data; negative: data the schema forbids) and checks each answer:

* ``not_a_server_error``: never a 5xx;
* ``status_code_conformance``, ``content_type_conformance``, ``response_headers_conformance``,
  ``response_schema_conformance``: the answer is one the document declares, in its shape;
* ``negative_data_rejection``: data the schema forbids is refused with a 4xx.

The requests go to the services directly (the gateway's login limits would only slow the run),
authenticated with real tokens. Runs are reproducible and bounded: Hypothesis is derandomised
(a fixed seed per test) and generates at most ``MAX_EXAMPLES`` cases per operation and mode.
Write operations on users are pinned to sacrificial accounts, so the fuzzer never deletes or
demotes anyone else in the shared stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from devstack.stack import Stack
from e2e.api import Client, Tokens

MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

AUTH_OPERATIONS = [
    "POST /auth/register",
    "POST /auth/token",
    "POST /auth/refresh",
    "POST /auth/logout",
    "POST /auth/password-reset",
    "POST /auth/password-reset/confirm",
    "POST /auth/verify-email",
    "POST /auth/verify-email/resend",
    "GET /auth/me",
    "GET /users/me",
    "PUT /users/me",
    "DELETE /users/me",
    "GET /users/",
    "GET /users/{user_id}",
    "PATCH /users/{user_id}",
    "DELETE /users/{user_id}",
    "GET /.well-known/jwks.json",
    "GET /.well-known/oauth-authorization-server",
    "POST /auth/revoke",
    "POST /auth/introspect",
    "GET /clients",
    "POST /clients",
    "GET /clients/{client_id}",
    "DELETE /clients/{client_id}",
    "POST /clients/{client_id}/secret",
]
ITEMS_OPERATIONS = [
    "GET /items/",
    "POST /items/",
    "GET /items/my-items",
    "GET /items/{item_id}",
    "PUT /items/{item_id}",
    "PATCH /items/{item_id}",
    "DELETE /items/{item_id}",
]
# Operations without any input have no invalid data to generate.
NO_INPUT = {
    "GET /auth/me",
    "POST /auth/verify-email/resend",
    "GET /users/me",
    "DELETE /users/me",
    "GET /.well-known/jwks.json",
    "GET /.well-known/oauth-authorization-server",
}
# The second factor (auth_service.mfa).
MFA_OPERATIONS = [
    "POST /users/me/mfa/totp",
    "POST /users/me/mfa/totp/confirm",
    "DELETE /users/me/mfa/totp",
    "DELETE /users/{user_id}/mfa/totp",
]
AUTH_OPERATIONS += MFA_OPERATIONS


@dataclass
class Target:
    """One service under fuzzing: its schema, and the credentials and fixed path parameters
    each operation is called with (the default token otherwise)."""

    base_url: str
    schema: BaseSchema
    token: str
    tokens: dict[str, str] = field(default_factory=dict)
    path_parameters: dict[str, dict[str, Any]] = field(default_factory=dict)

    def fuzz(self, label: str, mode: GenerationMode) -> None:
        operation = self.schema[label.split(" ", 1)[1]][label.split(" ", 1)[0]]
        # Pinned ids in positive mode only: negative data is about the ids themselves too.
        pinned = self.path_parameters.get(label) if mode is GenerationMode.POSITIVE else None
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=pinned)
        headers = {"Authorization": f"Bearer {self.tokens.get(label, self.token)}"}

        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def run(case: Case[Any]) -> None:
            response = case.call(base_url=self.base_url, headers=headers, timeout=30)
            case.validate_response(response, checks=CHECKS, headers=headers)

        run()


def _schema(url: str) -> BaseSchema:
    return schemathesis.openapi.from_url(url)


def _user(client: Client) -> tuple[dict[str, Any], Tokens]:
    user = client.register()
    return user, client.login(user["username"])


@pytest.fixture(scope="session")
def local_stack(stack: Stack | None) -> Stack:
    assert stack is not None, "fuzzing calls the services directly: needs the local stack"
    return stack


@pytest.fixture(scope="session")
def auth_target(local_stack: Stack, base_url: str, admin_credentials: tuple[str, str]) -> Target:
    with Client(base_url) as client:
        _, tokens = _user(client)
        _, leaving = _user(client)  # deletes itself
    with Client(base_url) as client:
        admin = client.login(*admin_credentials)
        doomed_patch, _ = _user(client)
        doomed_delete, _ = _user(client)
        registered = []
        for name in ("read", "delete", "rotate"):
            response = client.post(
                "/clients",
                json={"name": f"fuzzed {name}", "grant_types": ["client_credentials"]},
                headers=admin.headers,
            )
            assert response.status_code == 200, response.text
            registered.append(response.json()["client_id"])
    admin_routes = (
        "GET /clients",
        "POST /clients",
        "GET /clients/{client_id}",
        "DELETE /clients/{client_id}",
        "POST /clients/{client_id}/secret",
    )
    return Target(
        base_url=local_stack.auth_url,
        schema=_schema(f"{local_stack.auth_url}/openapi/auth.json"),
        token=tokens.access_token,
        tokens={
            "DELETE /users/me": leaving.access_token,
            "GET /users/": admin.access_token,
            "GET /users/{user_id}": admin.access_token,
            "PATCH /users/{user_id}": admin.access_token,
            "DELETE /users/{user_id}": admin.access_token,
            **dict.fromkeys(admin_routes, admin.access_token),
        },
        path_parameters={
            "PATCH /users/{user_id}": {"user_id": doomed_patch["id"]},
            "DELETE /users/{user_id}": {"user_id": doomed_delete["id"]},
            "GET /clients/{client_id}": {"client_id": registered[0]},
            "DELETE /clients/{client_id}": {"client_id": registered[1]},
            "POST /clients/{client_id}/secret": {"client_id": registered[2]},
        },
    )


@pytest.fixture(scope="session")
def items_target(local_stack: Stack, base_url: str) -> Target:
    with Client(base_url) as client:
        _, tokens = _user(client)
        mine = [client.create_item(tokens, f"fuzzed {n}")["id"] for n in range(3)]
    return Target(
        base_url=local_stack.items_url,
        schema=_schema(f"{local_stack.items_url}/openapi/items.json"),
        token=tokens.access_token,
        path_parameters={
            # Writes on the caller's own items reach the code behind the ownership check.
            "PUT /items/{item_id}": {"item_id": mine[0]},
            "PATCH /items/{item_id}": {"item_id": mine[1]},
            "DELETE /items/{item_id}": {"item_id": mine[2]},
        },
    )


def _cases(labels: list[str]) -> list[Any]:
    return [
        pytest.param(label, mode, id=f"{mode.value}-{label}")
        for label in labels
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if mode is GenerationMode.POSITIVE or label not in NO_INPUT
    ]


def _labels(schema: BaseSchema) -> set[str]:
    labels = set()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document is valid OpenAPI
        labels.add(result.ok().label)
    return labels


@pytest.mark.needs_stack
def test_every_operation_is_fuzzed(auth_target: Target, items_target: Target) -> None:
    assert _labels(auth_target.schema) == set(AUTH_OPERATIONS)
    assert _labels(items_target.schema) == set(ITEMS_OPERATIONS)


@pytest.mark.needs_stack
@pytest.mark.parametrize(("label", "mode"), _cases(AUTH_OPERATIONS))
def test_auth_service_under_fuzzing(auth_target: Target, label: str, mode: GenerationMode) -> None:
    auth_target.fuzz(label, mode)


@pytest.mark.needs_stack
@pytest.mark.parametrize(("label", "mode"), _cases(ITEMS_OPERATIONS))
def test_items_service_under_fuzzing(
    items_target: Target, label: str, mode: GenerationMode
) -> None:
    items_target.fuzz(label, mode)


@pytest.mark.needs_stack
def test_schemas_declare_the_error_responses_the_services_return(
    auth_target: Target, items_target: Target
) -> None:
    """Beyond what random data reaches: protected routes declare 401 and 503, admin routes
    403, routes with a path id 404, routes with input 422, conditional writes 412."""
    for target, protected in (
        (auth_target, [label for label in AUTH_OPERATIONS if _secured(auth_target, label)]),
        (items_target, [label for label in ITEMS_OPERATIONS if _secured(items_target, label)]),
    ):
        assert protected
        for label in protected:
            assert {"401", "503"} <= _declared(target, label), label
    for label in ("GET /users/", "GET /users/{user_id}", "PATCH /users/{user_id}"):
        assert "403" in _declared(auth_target, label), label
    for target, label in [
        (auth_target, "GET /users/{user_id}"),
        (auth_target, "DELETE /users/{user_id}"),
        (items_target, "GET /items/{item_id}"),
        (items_target, "PATCH /items/{item_id}"),
        (items_target, "DELETE /items/{item_id}"),
    ]:
        assert {"404", "422"} <= _declared(target, label), label
    for label in ("PUT /items/{item_id}", "PATCH /items/{item_id}", "DELETE /items/{item_id}"):
        assert {"403", "412"} <= _declared(items_target, label), label
    for label in ("POST /auth/token",):
        assert {"400", "401", "403", "422", "429", "503"} <= _declared(auth_target, label)
    for label in ("POST /auth/revoke", "POST /auth/introspect"):
        assert {"400", "401", "422", "429", "503"} <= _declared(auth_target, label)
    for label in ("GET /clients", "POST /clients", "GET /clients/{client_id}"):
        assert "403" in _declared(auth_target, label), label


def _operation_document(target: Target, label: str) -> Mapping[str, Any]:
    method, path = label.split(" ", 1)
    document: Mapping[str, Any] = target.schema.raw_schema["paths"][path][method.lower()]
    return document


def _declared(target: Target, label: str) -> set[str]:
    return set(_operation_document(target, label)["responses"])


def _secured(target: Target, label: str) -> bool:
    return bool(_operation_document(target, label).get("security"))


@pytest.mark.needs_stack
def test_invalid_json_bodies_are_4xx_everywhere(local_stack: Stack, items_target: Target) -> None:
    """Bodies no generator produces: not JSON, wrong media type, truncated, deeply nested."""
    bodies: list[tuple[bytes, str]] = [
        (b"\xff\xfe\x00garbage", "application/json"),
        (b'{"title": ', "application/json"),
        (b"[" * 10_000 + b"]" * 10_000, "application/json"),
        (b'{"title": "x"}', "text/plain"),
        (b"title=x", "application/x-www-form-urlencoded"),
        (b"", "application/json"),
        (b"null", "application/json"),
        (b'"just a string"', "application/json"),
    ]
    with httpx.Client(trust_env=False, timeout=10) as http:
        for url, method in [
            (f"{local_stack.auth_url}/auth/register", "POST"),
            (f"{local_stack.auth_url}/auth/refresh", "POST"),
            (f"{local_stack.items_url}/items/", "POST"),
        ]:
            for body, media_type in bodies:
                headers = {
                    "Content-Type": media_type,
                    "Authorization": f"Bearer {items_target.token}",
                }
                response = http.request(method, url, content=body, headers=headers)
                assert 400 <= response.status_code < 500, (url, body[:20], response.text[:200])
                assert response.json()["status_code"] == response.status_code
