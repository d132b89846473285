"""The error envelope, driven through a tiny app wired like the services."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import pytest
from fastapi import Body, FastAPI, HTTPException, Query
from pydantic import BaseModel, Field
from svckit_support import client_for, service_app

from svckit.errors import ServiceError, ServiceUnavailable, code_for_status

ENVELOPE_KEYS = {"detail", "code", "status_code", "path", "request_id"}


class ItemNotFound(ServiceError):
    status_code = 404
    code = "item_not_found"
    detail = "Item not found"


class Signup(BaseModel):
    username: str = Field(pattern=r"^[a-z]{3,8}$")
    password: str = Field(min_length=12)


def build_app() -> FastAPI:
    app = service_app()

    @app.get("/things/{thing_id}")
    async def get_thing(thing_id: int) -> dict[str, int]:
        if thing_id == 404:
            raise ItemNotFound()
        if thing_id == 409:
            raise ServiceError("Name taken", status_code=409, code="name_taken")
        if thing_id == 418:
            raise HTTPException(418, detail={"why": "teapot"}, headers={"X-Teapot": "1"})
        if thing_id == 503:
            raise ServiceUnavailable()
        if thing_id == 500:
            raise RuntimeError("secret connection string postgresql://u:hunter2@db/x")
        return {"id": thing_id}

    @app.post("/signup")
    async def signup(body: Signup) -> dict[str, str]:
        return {"username": body.username}

    @app.get("/search")
    async def search(limit: Annotated[int, Query(ge=1, le=100)] = 10) -> dict[str, int]:
        return {"limit": limit}

    @app.post("/raw")
    async def raw(payload: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        return payload

    return app


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return build_app()


def assert_envelope(body: dict[str, Any], status: int, code: str, path: str, rid: str) -> None:
    assert body.keys() >= ENVELOPE_KEYS
    assert body["status_code"] == status
    assert body["code"] == code
    assert body["path"] == path
    assert body["request_id"] == rid


async def test_unknown_path_is_404_envelope(app: FastAPI) -> None:
    async with client_for(app) as client:
        response = await client.get("/nowhere", headers={"X-Request-ID": "rid-404"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert_envelope(body, 404, "not_found", "/nowhere", "rid-404")
    assert body["detail"] == "Not Found"
    assert response.headers["X-Request-ID"] == "rid-404"


async def test_wrong_method_is_405_envelope_with_allow(app: FastAPI) -> None:
    async with client_for(app) as client:
        response = await client.delete("/things/1")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    body = response.json()
    assert_envelope(body, 405, "method_not_allowed", "/things/1", response.headers["X-Request-ID"])


async def test_validation_error_lists_errors_without_echoing_input(app: FastAPI) -> None:
    secret = "hunter2-is-short"[:7]
    async with client_for(app) as client:
        response = await client.post("/signup", json={"username": "X!", "password": secret})
    assert response.status_code == 422
    body = response.json()
    assert_envelope(body, 422, "validation_error", "/signup", response.headers["X-Request-ID"])
    assert {tuple(e["loc"]) for e in body["errors"]} == {
        ("body", "username"),
        ("body", "password"),
    }
    for error in body["errors"]:
        assert set(error) == {"loc", "msg", "type"}
    assert body["detail"] == body["errors"]  # FastAPI's detail shape, kept
    assert secret not in response.text
    assert "X!" not in response.text


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "loc"),
    [
        ("get", "/things/abc", {}, ["path", "thing_id"]),
        ("get", "/search?limit=1000", {}, ["query", "limit"]),
        (
            "post",
            "/signup",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            ["body", 1],
        ),
        ("post", "/raw", {"json": [1, 2]}, ["body"]),
        ("post", "/signup", {}, ["body"]),
    ],
    ids=["path-type", "query-range", "malformed-json", "wrong-json-type", "missing-body"],
)
async def test_every_bad_input_is_422_envelope(
    app: FastAPI, method: str, path: str, kwargs: dict[str, Any], loc: list[Any]
) -> None:
    async with client_for(app) as client:
        response = await client.request(method.upper(), path, **kwargs)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["errors"][0]["loc"] == loc


async def test_service_error_subclass(app: FastAPI) -> None:
    async with client_for(app) as client:
        response = await client.get("/things/404")
    assert response.status_code == 404
    body = response.json()
    assert_envelope(body, 404, "item_not_found", "/things/404", response.headers["X-Request-ID"])
    assert body["detail"] == "Item not found"


async def test_service_error_raised_directly(app: FastAPI) -> None:
    async with client_for(app) as client:
        response = await client.get("/things/409")
    body = response.json()
    assert response.status_code == 409
    assert (body["code"], body["detail"]) == ("name_taken", "Name taken")


async def test_http_exception_keeps_detail_and_headers(app: FastAPI) -> None:
    async with client_for(app) as client:
        response = await client.get("/things/418")
    assert response.status_code == 418
    assert response.headers["X-Teapot"] == "1"
    body = response.json()
    assert body["detail"] == {"why": "teapot"}
    assert body["code"] == "i_m_a_teapot"


async def test_service_unavailable(app: FastAPI) -> None:
    async with client_for(app) as client:
        response = await client.get("/things/503")
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"


async def test_unhandled_exception_is_a_500_envelope_without_internals(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="svckit.errors"):
        async with client_for(app) as client:
            response = await client.get("/things/500", headers={"X-Request-ID": "rid-500"})
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "rid-500"
    body = response.json()
    assert_envelope(body, 500, "internal_error", "/things/500", "rid-500")
    assert body["detail"] == "Internal server error"
    for leak in ("Traceback", "RuntimeError", "hunter2", "postgresql://", "File "):
        assert leak not in response.text
    [record] = [r for r in caplog.records if r.name == "svckit.errors"]
    assert record.exc_info is not None  # the stack trace goes to the log instead


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "bad_request"),
        (401, "unauthorized"),
        (404, "not_found"),
        (412, "precondition_failed"),
        (422, "validation_error"),
        (429, "too_many_requests"),
        (431, "request_header_fields_too_large"),
        (418, "i_m_a_teapot"),
        (599, "error"),
    ],
)
def test_code_for_status(status: int, code: str) -> None:
    assert code_for_status(status) == code


def test_service_error_defaults() -> None:
    assert ServiceError().detail == "Bad Request"
    assert ServiceError(status_code=599).detail == "Error"  # no HTTPStatus for it: no crash
    error = ItemNotFound(headers={"X-A": "b"})
    assert (error.status_code, error.code, error.detail) == (
        404,
        "item_not_found",
        "Item not found",
    )
    assert error.headers == {"X-A": "b"}
    assert str(ServiceError("boom")) == "boom"
    # class attributes of one instance never leak into another
    ServiceError("x", status_code=409, code="c")
    assert ServiceError().status_code == 400
    assert ServiceError().code is None
