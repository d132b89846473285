"""docker-compose.yml, the Dockerfiles and gateway/ checked against the code.

These need no Docker engine: the container side is verified by tools (the Compose
Specification schema, hadolint) and by comparing what compose provides with what the code
reads: settings, commands, ports, paths. Running it is `make compose-test`'s job (CI's
container stage).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.config import repo_root

ROOT = repo_root()
BIN = Path(sys.executable).parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "containers" / "service.Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
SERVICES = {
    "auth-service": ("auth_service", "AUTH_"),
    "items-service": ("items_service", "ITEMS_"),
}
_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose-style ${VAR}, ${VAR:-default}, ${VAR:?error}; required blanks get a test value."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        current = env.get(name, "")
        if current:
            return current
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            return f"test-{name.lower().replace('_', '-')}-0123456789abcdef"
        return ""

    return _INTERPOLATION.sub(replace, value)


def service_env(name: str) -> dict[str, str]:
    environment = compose()["services"][name].get("environment", {})
    assert isinstance(environment, dict), f"{name}: use the mapping form of environment"
    example = env_example()
    return {k: interpolate(str(v), example) for k, v in environment.items()}


def dockerfile(service: str) -> str:
    """What builds ``service``: the shared stages and the service's own target, with the
    ``SERVICE`` build argument set to it (as docker-compose.yml and build-images.sh set it)."""
    stages = re.split(r"^(?=FROM )", DOCKERFILE.read_text(), flags=re.MULTILINE)
    own = [s for s in stages if re.match(rf"FROM runtime AS {re.escape(service)}\n", s)]
    assert len(own) == 1, f"containers/service.Dockerfile has no target {service}"
    shared = [s for s in stages if not s.startswith("FROM runtime AS ")]
    text = "".join(shared + own)
    return text.replace('"$SERVICE"', service).replace("${SERVICE}", service)


# --------------------------------------------------------------------------- tools


def test_compose_file_matches_the_compose_specification() -> None:
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- compose shape


def test_scalable_services_have_no_container_name_or_host_port() -> None:
    services = compose()["services"]
    for name, spec in services.items():
        assert "container_name" not in spec, f"{name} has a fixed container name"
        # The gateway, and the optional mail catcher's web UI (loopback only, one instance).
        if name == "mailpit":
            assert spec["profiles"] == ["mail"]
            assert all(str(port).startswith("127.0.0.1:") for port in spec["ports"])
        elif name != "gateway":
            assert "ports" not in spec, f"{name} publishes a host port"


def test_every_service_waits_for_healthy_dependencies() -> None:
    services = compose()["services"]
    for name, spec in services.items():
        for dependency, condition in spec.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            expected = (
                "service_completed_successfully"
                if dependency.endswith("-migrate")
                else "service_healthy"
            )
            assert condition["condition"] == expected, f"{name} -> {dependency}"
            if expected == "service_healthy":
                has_check = "healthcheck" in services[dependency] or "HEALTHCHECK" in (
                    dockerfile(dependency) if dependency in SERVICES else ""
                )
                assert has_check, f"{dependency} has no healthcheck"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_migrations_run_before_serving(service: str) -> None:
    services = compose()["services"]
    migrate = services[f"{service.split('-')[0]}-migrate"]
    package, _ = SERVICES[service]
    assert migrate["command"] == [service, "migrate"]
    scripts = tomllib.loads((ROOT / service / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[service] == f"{package}.cli:main", "the migrate command is this console script"
    assert migrate["image"] == services[service]["image"], "migrations run from the same image"
    assert migrate["environment"] == services[service]["environment"]
    condition = services[service]["depends_on"][f"{service.split('-')[0]}-migrate"]["condition"]
    assert condition == "service_completed_successfully"


def test_data_lives_in_named_volumes() -> None:
    data = compose()
    named = set(data.get("volumes", {}))
    for name in ("auth-db", "items-db", "redis"):
        mounts = data["services"][name]["volumes"]
        sources = {m.split(":")[0] for m in mounts}
        assert sources <= named, f"{name} keeps data outside named volumes: {sources - named}"


def test_every_interpolated_variable_is_in_env_example() -> None:
    used = {m["name"] for m in _INTERPOLATION.finditer(COMPOSE.read_text())}
    missing = used - set(env_example())
    assert not missing, f".env.example lacks {sorted(missing)}"
    assert not (ROOT / ".gitignore").read_text().count(".env.example")


def test_referenced_files_exist() -> None:
    data = compose()
    for name, spec in data["services"].items():
        build = spec.get("build")
        if build:
            context = ROOT / build["context"]
            assert (context / build["dockerfile"]).is_file(), f"{name}: Dockerfile missing"
        for mount in spec.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} missing"


# --------------------------------------------------------------------------- Dockerfiles


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_service_image_is_built_from_its_own_target(service: str) -> None:
    build = compose()["services"][service]["build"]
    assert build["dockerfile"] == DOCKERFILE.relative_to(ROOT).as_posix()
    assert build["target"] == service
    assert build["args"]["SERVICE"] == service


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_dockerfile_builds_this_package_with_uv_and_runs_it_unprivileged(service: str) -> None:
    text = dockerfile(service)
    package, _ = SERVICES[service]
    assert len(re.findall(r"^FROM ", text, re.MULTILINE)) >= 2, "multi-stage"
    assert f"uv sync --frozen --no-dev --no-editable --package {service}" in text
    assert "COPY --from=builder /app/.venv /app/.venv" in text
    user = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user
    assert user[-1].split(":")[0] not in ("0", "root")
    assert "HEALTHCHECK" in text
    assert "/healthz" in text
    cmd = re.search(r"^CMD (\[.*\])$", text, re.MULTILINE)
    assert cmd is not None
    command = yaml.safe_load(cmd.group(1))
    assert command[:3] == ["uvicorn", "--factory", f"{package}.app:create_app"]
    assert command[command.index("--port") + 1] == "8000"
    # Every path the build copies exists.
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), f"{service}'s image copies missing {path}"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_build_machine_certificates_stay_in_the_build_stage(service: str) -> None:
    text = dockerfile(service)
    runtime = text.index("AS runtime")
    assert "BUILD_EXTRA_CA_CERTS" in text[:runtime]
    assert "BUILD_EXTRA_CA_CERTS" not in text[runtime:]
    assert "build-ca.pem" not in text[runtime:]
    assert re.search(r'^ARG BUILD_EXTRA_CA_CERTS=""$', text, re.MULTILINE), "empty by default"


def _upstream_images() -> set[str]:
    """The upstream images the default stack (no compose profile) and the builds need."""
    images = {
        spec["image"]
        for spec in compose()["services"].values()
        if not spec["image"].startswith("fastapi-services/") and not spec.get("profiles")
    }
    for service in SERVICES:
        images |= set(re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile(service), re.MULTILINE))
    return images


def test_every_upstream_image_has_a_local_substitute() -> None:
    substitutes = ROOT / "containers" / "substitutes"
    script = (substitutes / "build.sh").read_text()
    case = re.search(r"^\s+([a-z]+(?: \| [a-z]+)+)\)$", script, re.MULTILINE)
    assert case is not None
    known = {name.strip() for name in case.group(1).split("|")}
    for image in _upstream_images():
        name = image.split(":")[0].rsplit("/", 1)[-1]
        assert (substitutes / f"{name}.Dockerfile").is_file(), f"no substitute for {image}"
        assert name in known, f"containers/substitutes/build.sh does not build {name}"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_app_factory_named_by_the_dockerfile_exists(service: str) -> None:
    package, _ = SERVICES[service]
    module = __import__(f"{package}.app", fromlist=["create_app"])
    assert callable(module.create_app)


# --------------------------------------------------------------------------- settings


def _settings_class(service: str) -> Any:
    package, _ = SERVICES[service]
    return __import__(f"{package}.settings", fromlist=["Settings"]).Settings


def _env_names(settings_cls: Any, prefix: str) -> dict[str, str]:
    """Environment variable names each Settings field reads -> field name."""
    from pydantic import AliasChoices

    names: dict[str, str] = {}
    for field_name, info in settings_cls.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            for choice in alias.choices:
                names[str(choice).upper()] = field_name
        elif isinstance(alias, str):
            names[alias.upper()] = field_name
        else:
            names[f"{prefix}{field_name}".upper()] = field_name
    return names


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_compose_provides_every_required_setting_and_only_real_ones(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_cls = _settings_class(service)
    _, prefix = SERVICES[service]
    readable = _env_names(settings_cls, prefix)
    env = service_env(service)
    unknown = sorted(k for k in env if k not in readable)
    assert not unknown, f"compose sets variables {service} does not read: {unknown}"
    provided = {readable[k] for k in env}
    required = {n for n, info in settings_cls.model_fields.items() if info.is_required()}
    assert required <= provided, f"unset required settings: {sorted(required - provided)}"
    # The values compose passes (with .env.example filled in) make valid settings.
    import os

    for name in list(os.environ):
        if name.startswith(prefix) or name in readable:
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = settings_cls()
    assert settings.environment == "production"
    assert settings.database_url.startswith("postgresql+asyncpg://")


def test_services_reach_each_other_on_the_container_port() -> None:
    auth, items, gateway = (service_env(n) for n in ("auth-service", "items-service", "gateway"))
    assert auth["AUTH_ITEMS_URL"] == "http://items-service:8000"
    assert items["ITEMS_JWKS_URL"] == "http://auth-service:8000/.well-known/jwks.json"
    assert gateway["AUTH_SERVICE_URL"] == "http://auth-service:8000"
    assert gateway["ITEMS_SERVICE_URL"] == "http://items-service:8000"
    assert auth["AUTH_ISSUER"] == items["ITEMS_ISSUER"], "one issuer for signing and verifying"
    assert auth["REDIS_URL"] == items["REDIS_URL"]
    assert auth["REDIS_URL"].endswith(
        f"@{gateway['GATEWAY_REDIS_ADDRESS']}/{gateway['GATEWAY_REDIS_DB']}"
    )


# --------------------------------------------------------------------------- gateway


def test_gateway_uses_the_gateway_folder_as_mounted() -> None:
    spec = compose()["services"]["gateway"]
    assert spec["image"].startswith("traefik:v3.")
    assert "./gateway:/etc/traefik:ro" in spec["volumes"]
    static = yaml.safe_load((ROOT / "gateway" / "traefik.yml").read_text())
    assert static["providers"]["file"]["directory"] == "/etc/traefik/dynamic"
    web_port = static["entryPoints"]["web"]["address"].rsplit(":", 1)[1]
    published = [p.rsplit(":", 1)[1] for p in spec["ports"]]
    assert published == [web_port]
    assert static["ping"]["entryPoint"] == "internal"
    assert static["metrics"]["prometheus"]["entryPoint"] == "internal"
    assert static["entryPoints"]["web"]["forwardedHeaders"]["trustedIPs"] == []


def test_gateway_has_a_writable_tmp_for_buffered_bodies() -> None:
    spec = compose()["services"]["gateway"]
    assert spec["read_only"] is True
    tmp = "/tmp"  # noqa: S108 - the container's own tmpfs
    assert tmp in spec["tmpfs"], "body-limit buffers bodies over 1 MiB in a temporary file"


def test_compose_gateway_resolves_the_services_per_request() -> None:
    """No reused upstream connections in compose, so --scale replicas share the load."""
    assert service_env("gateway")["GATEWAY_UPSTREAM_MAX_IDLE_CONNS"] == "-1"
    text = (ROOT / "gateway" / "dynamic" / "services.yml").read_text()
    setting = 'maxIdleConnsPerHost: {{ env "GATEWAY_UPSTREAM_MAX_IDLE_CONNS" | default "200" }}'
    assert setting in text
    assert text.count("serversTransport: upstream") == 2
    routers = _routers()
    for name in ("auth", "items"):
        assert routers[name]["middlewares"][-1] == "upstream-retry"


# Read by Traefik's Go runtime, not by its configuration.
GO_RUNTIME_ENV = {"GOMAXPROCS"}


def test_gateway_environment_matches_the_dynamic_configuration() -> None:
    read = set()
    for path in (ROOT / "gateway" / "dynamic").glob("*.yml"):
        read |= set(re.findall(r'env "([A-Z0-9_]+)"', path.read_text()))
    provided = set(service_env("gateway")) - GO_RUNTIME_ENV
    stray = provided - read
    assert not stray, f"compose sets gateway variables the configuration never reads: {stray}"
    # Those not provided have template defaults (all of them use `| default`).
    for path in (ROOT / "gateway" / "dynamic").glob("*.yml"):
        for expr in re.findall(r"\{\{[^}]*env \"[A-Z0-9_]+\"[^}]*\}\}", path.read_text()):
            name = re.search(r'env "([A-Z0-9_]+)"', expr)
            assert name is not None
            if name.group(1) not in provided and name.group(1) != "GATEWAY_REDIS_PASSWORD":
                assert "default" in expr or "if" in expr, f"{expr} has no default"


def test_gateway_cores_are_gos_default_unless_set() -> None:
    # Empty: Go ignores the variable and runs on every core of the host; .env sets it.
    gateway = compose()["services"]["gateway"]["environment"]
    assert gateway["GOMAXPROCS"] == "${GATEWAY_GOMAXPROCS:-}"
    assert env_example()["GATEWAY_GOMAXPROCS"] == ""


# --------------------------------------------------------------------------- routes


def _routers() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "gateway" / "dynamic" / "routers.yml").read_text())
    routers: dict[str, Any] = data["http"]["routers"]
    return routers


def _matchers(rule: str) -> tuple[set[str], set[str]]:
    paths = set(re.findall(r"(?<!Prefix)\bPath\(`([^`]*)`\)", rule))
    prefixes = set(re.findall(r"PathPrefix\(`([^`]*)`\)", rule))
    return paths, prefixes


def _service_matchers(service: str) -> tuple[set[str], set[str]]:
    paths: set[str] = set()
    prefixes: set[str] = set()
    for router in _routers().values():
        if router["service"] == service:
            p, q = _matchers(router["rule"])
            paths |= p
            prefixes |= q
    return paths, prefixes


def _routed(path: str, matchers: tuple[set[str], set[str]]) -> bool:
    paths, prefixes = matchers
    return path in paths or any(path.startswith(prefix) for prefix in prefixes)


INTERNAL = {"/healthz", "/readyz", "/metrics"}


def _operations(service: str) -> dict[str, set[str]]:
    """Path -> methods of the service's app, from its OpenAPI schema (the public surface;
    /healthz, /readyz and /metrics are left out of it), plus its docs and schema URLs."""
    package, _ = SERVICES[service]
    app = __import__(f"{package}.app", fromlist=["create_app"]).create_app()
    operations = {
        re.sub(r"\{[^}]+\}", "1", path): {m.upper() for m in item}
        for path, item in app.openapi()["paths"].items()
    }
    for url in (app.docs_url, app.openapi_url):
        assert url, f"{service} must serve its docs and schema"
        operations[url] = {"GET"}
    return operations


def _public_paths(service: str) -> set[str]:
    return set(_operations(service)) - INTERNAL


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_public_path_of_a_service_is_routed_to_it(service: str) -> None:
    other = next(s for s in SERVICES if s != service)
    mine, theirs = _service_matchers(service), _service_matchers(other)
    for path in _public_paths(service):
        assert _routed(path, mine), f"{service} serves {path} but the gateway does not route it"
        assert not _routed(path, theirs), f"{path} of {service} is routed to {other}"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_routed_path_exists_and_internal_ones_are_not_routed(service: str) -> None:
    served = _public_paths(service)
    paths, prefixes = _service_matchers(service)
    for path in paths:
        # Path(`/items`) is right for a service serving /items/ (it redirects /items there).
        exists = path in served or any(p.startswith(path.rstrip("/") + "/") for p in served)
        assert exists, f"the gateway routes {path} to {service}, which does not serve it"
    for prefix in prefixes:
        assert any(p.startswith(prefix) for p in served), f"nothing of {service} under {prefix}"
    for path in INTERNAL:
        assert not _routed(path, (paths, prefixes)), f"{path} must stay internal"


def test_rate_limited_routes_are_post_routes_of_auth_service() -> None:
    operations = _operations("auth-service")
    routers = _routers()
    limited = [r for r in routers.values() if any("rate-limit" in m for m in r["middlewares"])]
    assert {r["rule"] for r in limited} == {
        "Method(`POST`) && Path(`/auth/token`)",
        "Method(`POST`) && Path(`/auth/refresh`)",
        "Method(`POST`) && Path(`/auth/register`)",
        "Method(`POST`) && Path(`/auth/revoke`)",
        "Method(`POST`) && Path(`/auth/introspect`)",
        "Method(`POST`) && Path(`/auth/password-reset`)",
        "Method(`POST`) && Path(`/auth/password-reset/confirm`)",
        "Method(`POST`) && Path(`/auth/verify-email`)",
        "Method(`POST`) && Path(`/auth/verify-email/resend`)",
    }
    for router in limited:
        (path,) = _matchers(router["rule"])[0]
        assert "POST" in operations.get(path, set()), f"{path} is not a POST route of auth-service"
        assert router["priority"] > routers["auth"]["priority"]
