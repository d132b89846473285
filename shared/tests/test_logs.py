"""JSON logging: one object per line, with the request id and the caller's extra fields."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from svckit_support import client_for, service_app

from svckit.logs import JsonFormatter, configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    uvicorn = {n: logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access")}
    saved_uvicorn = {n: (lg.handlers[:], lg.propagate) for n, lg in uvicorn.items()}
    yield
    root.handlers[:], level = saved
    root.setLevel(level)
    for name, (handlers, propagate) in saved_uvicorn.items():
        uvicorn[name].handlers[:] = handlers
        uvicorn[name].propagate = propagate


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_lines_with_extra_fields(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure_logging("demo", "debug")
    log = logging.getLogger("demo.module")
    log.info("user %s created", 42, extra={"user_id": 42, "tags": ["a"], "obj": object()})
    log.debug("multi\nline")
    entries = lines(capsys.readouterr().err)
    assert len(entries) == 2
    first = entries[0]
    assert first["msg"] == "user 42 created"
    assert first["level"] == "info"
    assert first["logger"] == "demo.module"
    assert first["service"] == "demo"
    assert first["user_id"] == 42
    assert first["tags"] == ["a"]
    assert first["obj"].startswith("<object")  # not serialisable: stringified, not lost
    assert first["ts"].endswith("+00:00")
    assert "request_id" not in first  # outside a request
    for standard in ("args", "levelno", "pathname", "funcName", "taskName"):
        assert standard not in first
    assert entries[1]["msg"] == "multi\nline"


def test_extra_fields_cannot_overwrite_core_fields(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure_logging("demo")
    logging.getLogger("x").warning("real", extra={"level": "debug", "service": "other"})
    [entry] = lines(capsys.readouterr().err)
    assert (entry["level"], entry["service"]) == ("warning", "demo")


def test_level_filters(capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    configure_logging("demo", "WARNING")
    logging.getLogger("x").info("hidden")
    logging.getLogger("x").error("shown")
    assert [e["msg"] for e in lines(capsys.readouterr().err)] == ["shown"]


def test_exceptions_are_one_json_line(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure_logging("demo")
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("x").exception("failed")
    [entry] = lines(capsys.readouterr().err)
    assert "ValueError: bad" in entry["exc"]


def test_plain_text_format(capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    configure_logging("demo", json_format=False)
    logging.getLogger("x").warning("plain")
    err = capsys.readouterr().err
    assert "WARNING demo x: plain" in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err)


def test_uvicorn_loggers_go_through_the_root_handler(restore_logging: None) -> None:
    logging.getLogger("uvicorn.error").addHandler(logging.NullHandler())
    configure_logging("demo")
    assert logging.getLogger("uvicorn.error").handlers == []
    assert logging.getLogger("uvicorn.error").propagate
    assert logging.getLogger("uvicorn.access").handlers == []
    assert not logging.getLogger("uvicorn.access").propagate  # our access log replaces it


async def test_request_logs_carry_the_request_id(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure_logging("demo")
    app = service_app()

    @app.get("/work")
    async def work() -> dict[str, str]:
        logging.getLogger("demo.work").info("working", extra={"step": 1})
        return {}

    async with client_for(app) as client:
        await client.get("/work", headers={"X-Request-ID": "log-rid"})
    entries = lines(capsys.readouterr().err)
    working = next(e for e in entries if e["msg"] == "working")
    access = next(e for e in entries if e["logger"] == "svckit.access")
    assert working["request_id"] == "log-rid"
    assert working["step"] == 1
    assert access["request_id"] == "log-rid"
    assert (access["method"], access["path"], access["status"]) == ("GET", "/work", 200)


def test_formatter_directly() -> None:
    record = logging.LogRecord("n", logging.ERROR, "f.py", 1, "m %d", (1,), None)
    record.custom = "c"
    entry = json.loads(JsonFormatter("svc").format(record))
    assert entry["msg"] == "m 1"
    assert entry["custom"] == "c"
