"""wrk, the load generator: installing it, writing its Lua scripts, running it, reading results.

The scripts are generated per run into the bench data folder. Each thread builds a table of
requests once, on its first ``request()``, and hands them out in turn: wrk then spends about
0.28 ms of CPU per request instead of 0.37-0.40 ms when it formats each one in Lua (measured
at 1,300-1,700 req/s on a 2-core machine, where wrk shares the cores with the stack under
test). Each script reports through wrk's ``done()`` hook as a single ``BENCH_RESULT {json}``
line: requests, duration, socket errors, timeouts, latency percentiles and status counts.

Status counts come in two grains. A ``response()`` hook counts every status class
(``count_statuses``, the default): wrk then hands every response's headers and body to Lua,
which costs it about a fifth more CPU per request. Without it, wrk's own count splits the
answers at 400 (``s<400``, ``s>=400``), so a 1xx/3xx would pass as a success: runs measured
that way follow a counted warm-up of the same requests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from devstack.bench.errors import BenchError

RESULT_PREFIX = "BENCH_RESULT "

# Requests each wrk thread builds on its first request() and sends in turn (random ids,
# users, tokens).
REQUEST_TABLE = 1024

# The status keys of a run without the response() hook (wrk's own split at 400).
BELOW_400, FROM_400 = "s<400", "s>=400"

# Status counters kept per wrk thread (numbers only: they cross Lua states in done()).
_STATUS_COUNTERS = ("s2xx", "s3xx", "s401", "s404", "s429", "s4xx", "s503", "s5xx", "sother")


def ensure_wrk() -> Path:
    """The ``wrk`` binary; installed from the distribution's packages when missing (as root)."""
    found = shutil.which("wrk")
    if found:
        return Path(found)
    apt = shutil.which("apt-get")
    if os.geteuid() != 0 or apt is None:
        raise BenchError(
            "wrk (the load generator) is not installed and cannot be installed here "
            "(that needs root and apt-get): install it with `apt-get install wrk`"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "wrk"]):
        result = subprocess.run(
            args, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        if result.returncode != 0:
            output = "\n".join((result.stdout + result.stderr).splitlines()[-10:])
            raise BenchError(
                f"installing wrk failed (`{' '.join(args)}` exited {result.returncode}); "
                f"install it with `apt-get install wrk`:\n{output}"
            )
    found = shutil.which("wrk")
    if not found:
        raise BenchError("`apt-get install wrk` succeeded but no wrk is on PATH")
    return Path(found)


def wrk_version(binary: Path) -> str:
    result = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    first = (result.stdout + result.stderr).strip().splitlines()[:1]
    # "wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer" -> "wrk debian/4.1.0-3+b2"
    return " ".join(first[0].split()[:2]) if first else "wrk"


# --------------------------------------------------------------------------- Lua scripts


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal here


def _lua_list(values: Sequence[str | int]) -> str:
    items = (str(v) if isinstance(v, int) else _lua_string(v) for v in values)
    return "{" + ",".join(items) + "}"


@dataclass(frozen=True)
class Workload:
    """What each request of one wrk run looks like.

    ``kind`` picks the request builder: ``get`` (a fixed path), ``get_item`` (a random id
    of ``ids``), ``create_item`` (POST /items/ with a numbered JSON body), ``login``
    (POST /auth/token with a random user of ``users``) or ``request`` (one fixed request:
    ``method``, ``path``, ``body`` sent as is with ``content_type``; the side-by-side runs,
    which drive the peer and this stack with the same client code). ``tokens``, when given,
    adds an ``Authorization: Bearer`` header with a random one of them. ``count_statuses``
    keeps the ``response()`` hook that counts every status class (see the module's doc).
    """

    kind: str
    path: str = "/"
    ids: Sequence[int] = ()
    tokens: Sequence[str] = ()
    users: Sequence[tuple[str, str]] = ()
    method: str = "GET"
    body: str = ""
    content_type: str = ""
    count_statuses: bool = True

    def script(self) -> str:
        tail = (_COUNT_STATUSES + _DONE_COUNTED) if self.count_statuses else _DONE_WRK_SPLIT
        return _SCRIPT_HEAD + self._data() + _BUILD[self.kind] + _REQUEST_TABLE + tail

    def lean(self) -> Workload:
        """The same requests without the ``response()`` hook."""
        return replace(self, count_statuses=False)

    def _data(self) -> str:
        lines = [
            f"path = {_lua_string(self.path)}",
            f"ids = {_lua_list(list(self.ids))}",
            f"tokens = {_lua_list(list(self.tokens))}",
            f"usernames = {_lua_list([u for u, _ in self.users])}",
            f"passwords = {_lua_list([p for _, p in self.users])}",
            f"method = {_lua_string(self.method)}",
            f"body = {_lua_string(self.body)}",
            f"content_type = {_lua_string(self.content_type)}",
        ]
        return "\n".join(lines) + "\n"


_SCRIPT_HEAD = (
    """
-- Generated by devstack bench; do not edit.
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_no", counter)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + thread_no)
"""
    + "".join(f"  {name} = 0\n" for name in _STATUS_COUNTERS)
    + """end

local function with_auth(headers)
  if #tokens > 0 then
    headers["Authorization"] = "Bearer " .. tokens[math.random(#tokens)]
  end
  return headers
end

local function urlencode(s)
  return (string.gsub(s, "[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

"""
)

# build(n): the n-th request of a thread's table.
_BUILD = {
    "get": """
local function build(n)
  return wrk.format("GET", path, with_auth({}))
end
""",
    "get_item": """
local function build(n)
  return wrk.format("GET", path .. ids[math.random(#ids)], with_auth({}))
end
""",
    "create_item": """
local function build(n)
  local body = '{"title":"Bench item ' .. thread_no .. '-' .. n ..
    '","description":"Created by the benchmark through the gateway"}'
  return wrk.format("POST", path, with_auth({["Content-Type"] = "application/json"}), body)
end
""",
    "request": """
local function build(n)
  local headers = {}
  if body ~= "" then
    headers["Content-Type"] = content_type
    return wrk.format(method, path, with_auth(headers), body)
  end
  return wrk.format(method, path, with_auth(headers))
end
""",
    "login": """
local function build(n)
  local i = math.random(#usernames)
  local body = "grant_type=password&username=" .. urlencode(usernames[i]) ..
    "&password=" .. urlencode(passwords[i])
  return wrk.format("POST", path,
    {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
""",
}

_REQUEST_TABLE = f"""
local request_table = {{}}
local next_request = 0

local function build_table()
  for n = 1, {REQUEST_TABLE} do
    request_table[n] = build(n)
  end
end

request = function()
  if next_request == 0 then build_table() end
  next_request = next_request % #request_table + 1
  return request_table[next_request]
end
"""

_COUNT_STATUSES = """
response = function(status, headers, body)
  if status >= 200 and status < 300 then s2xx = s2xx + 1
  elseif status >= 300 and status < 400 then s3xx = s3xx + 1
  elseif status == 401 then s401 = s401 + 1
  elseif status == 404 then s404 = s404 + 1
  elseif status == 429 then s429 = s429 + 1
  elseif status == 503 then s503 = s503 + 1
  elseif status >= 400 and status < 500 then s4xx = s4xx + 1
  elseif status >= 500 and status < 600 then s5xx = s5xx + 1
  else sother = sother + 1 end
end
"""

_RESULT_LINE = """  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,' ..
    '"timeouts":%d,"latency_us":{"min":%d,"mean":%.1f,"max":%d,"stdev":%.1f,' ..
    '"p50":%d,"p90":%d,"p99":%d,"p999":%d},"statuses":{%s}}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency.stdev,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), statuses))
end
"""

_DONE_COUNTED = (
    """
function done(summary, latency, requests)
  local totals = {}
"""
    + "".join(f'  totals["{name}"] = 0\n' for name in _STATUS_COUNTERS)
    + """  for _, t in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + (t:get(name) or 0)
    end
  end
  local parts = {}
  for name, value in pairs(totals) do
    table.insert(parts, string.format('"%s":%d', name, value))
  end
  local statuses = table.concat(parts, ",")
"""
    + _RESULT_LINE
)

_DONE_WRK_SPLIT = (
    f"""
function done(summary, latency, requests)
  local statuses = string.format('"{BELOW_400}":%d,"{FROM_400}":%d',
    summary.requests - summary.errors.status, summary.errors.status)
"""
    + _RESULT_LINE
)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class WrkResult:
    """One wrk run, as reported by the script's ``done()``."""

    requests: int
    duration_s: float
    socket_errors: int
    timeouts: int
    statuses: Mapping[str, int]
    latency_ms: Mapping[str, float]
    raw: Mapping[str, Any] = field(default_factory=dict)
    # Non-2xx answers of the counted warm-up that preceded a run without the hook.
    warmup_non_2xx: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def ok(self) -> int:
        """Answers below 300 (below 400 when counted without the ``response()`` hook)."""
        return int(self.statuses.get("s2xx", self.statuses.get(BELOW_400, 0)))

    @property
    def ok_rps(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0

    @property
    def non_2xx(self) -> int:
        """Answers other than 2xx (only those >= 400 when counted without the hook), plus
        those of the warm-up before it (:meth:`after_warmup`)."""
        measured = sum(v for k, v in self.statuses.items() if k not in ("s2xx", BELOW_400))
        return measured + self.warmup_non_2xx

    def after_warmup(self, warmup: WrkResult) -> WrkResult:
        """This run, charged with the non-2xx answers of the counted warm-up before it."""
        return replace(self, warmup_non_2xx=warmup.non_2xx)

    @property
    def errors(self) -> int:
        """Socket errors (connect/read/write) and timeouts: requests that got no answer."""
        return self.socket_errors + self.timeouts

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "duration_s": round(self.duration_s, 3),
            "rps": round(self.rps, 1),
            "ok_rps": round(self.ok_rps, 1),
            "p50_ms": round(self.latency_ms["p50"], 3),
            "p90_ms": round(self.latency_ms["p90"], 3),
            "p99_ms": round(self.latency_ms["p99"], 3),
            "max_ms": round(self.latency_ms["max"], 3),
            "errors": self.errors,
            "socket_errors": self.socket_errors,
            "timeouts": self.timeouts,
            "non_2xx": self.non_2xx,
            "warmup_non_2xx": self.warmup_non_2xx,
            "statuses": {_status_label(k): v for k, v in self.statuses.items() if v},
        }


def _status_label(counter: str) -> str:
    return counter[1:] if counter.startswith("s") else counter


def parse_result(output: str) -> WrkResult:
    for line in output.splitlines():
        if line.startswith(RESULT_PREFIX):
            data = json.loads(line[len(RESULT_PREFIX) :])
            break
    else:
        raise BenchError(f"wrk printed no result line; its output:\n{output[-2000:]}")
    lat = data["latency_us"]
    return WrkResult(
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        socket_errors=int(data["connect_errors"] + data["read_errors"] + data["write_errors"]),
        timeouts=int(data["timeouts"]),
        statuses={k: int(v) for k, v in data["statuses"].items()},
        latency_ms={k: float(v) / 1000 for k, v in lat.items()},
        raw=data,
    )


@dataclass
class WrkRun:
    """A wrk process started in the background (so two can run at once)."""

    process: subprocess.Popen[str]
    command: list[str]

    def result(self, timeout: float) -> WrkResult:
        try:
            stdout, stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            raise BenchError(f"wrk did not finish in {timeout:.0f} s: {self.command}") from None
        if self.process.returncode != 0:
            raise BenchError(
                f"wrk exited with status {self.process.returncode}: {stderr.strip()[-1000:]}"
            )
        return parse_result(stdout)


@dataclass(frozen=True)
class Wrk:
    binary: Path
    scripts_dir: Path

    def start(
        self,
        base_url: str,
        workload: Workload,
        *,
        name: str,
        connections: int,
        duration: float,
        threads: int = 1,
        timeout: float = 5.0,
    ) -> WrkRun:
        self.scripts_dir.mkdir(parents=True, exist_ok=True)
        script = self.scripts_dir / f"{name}.lua"
        script.write_text(workload.script())
        command = [
            str(self.binary),
            f"-t{max(1, min(threads, connections))}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            f"--timeout={timeout:g}s",
            "-s",
            str(script),
            base_url.rstrip("/") + "/",
        ]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        return WrkRun(process, command)

    def run(
        self,
        base_url: str,
        workload: Workload,
        *,
        name: str,
        connections: int,
        duration: float,
        threads: int = 1,
        timeout: float = 5.0,
    ) -> WrkResult:
        started = self.start(
            base_url,
            workload,
            name=name,
            connections=connections,
            duration=duration,
            threads=threads,
            timeout=timeout,
        )
        return started.result(timeout=duration + timeout + 30)
