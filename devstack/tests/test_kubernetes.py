"""deploy/kubernetes/ checked against gateway/, docker-compose.yml and the code.

No cluster runs here: the overlays are rendered with Kustomize (the one built into kubectl),
validated against the Kubernetes API schemas and Traefik's CRDs, and compared with what docker
compose runs, so that one source of truth holds: the same environment variable names (and
values where they are not deployment-specific), the same routes, middlewares and limits as
gateway/dynamic/ renders with compose's gateway environment, the same Traefik static
configuration apart from the provider. Everything is derived from those files, not listed here.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from test_compose import (
    BIN,
    GO_RUNTIME_ENV,
    ROOT,
    SERVICES,
    _env_names,
    _settings_class,
    compose,
    dockerfile,
    service_env,
)

from devstack import kubecheck

K8S = ROOT / "deploy" / "kubernetes"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))
# Compose interpolation variables whose compose default is only right on one machine (the
# public URL, the sender address of mail): the manifests hold the cluster's own value there.
DEPLOYMENT_SPECIFIC = {"PUBLIC_URL", "AUTH_MAIL_FROM"}
# A variable is secret when compose requires it from .env (${X:?...}) or when its name says so,
# or when its value may carry credentials though compose's default has none (user:password@).
_REQUIRED = re.compile(r"\$\{[A-Z0-9_]+:?\?")
_SECRET_NAME = re.compile(r"PASSWORD|PASSPHRASE|SECRET")
CREDENTIAL_URLS = {"AUTH_SMTP_URL"}

Objects = list[dict[str, Any]]


# --------------------------------------------------------------------------- rendering


@cache
def _render(path: Path) -> str:
    result = subprocess.run(
        [str(BIN / "kubectl"), "kustomize", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def rendered(overlay: str, stage: str = "app") -> Objects:
    path = K8S / "overlays" / overlay / ("migrate" if stage == "migrate" else "")
    return [doc for doc in yaml.safe_load_all(_render(path)) if doc]


def find(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def of_kind(objects: Objects, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def container_env(objects: Objects, workload: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Variable name -> ("config", value), ("secret", "secret-name/key") or ("resource",
    "limits.cpu")."""
    env: dict[str, tuple[str, str]] = {}
    spec = container(workload)
    for source in spec.get("envFrom", []):
        assert set(source) == {"configMapRef"}, "only ConfigMaps are loaded whole"
        data = find(objects, "ConfigMap", source["configMapRef"]["name"])["data"]
        env.update({k: ("config", v) for k, v in data.items()})
    for entry in spec.get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        resource = entry.get("valueFrom", {}).get("resourceFieldRef")
        if ref:
            assert ref["key"] == entry["name"], "a secret key is named after its variable"
            env[entry["name"]] = ("secret", f"{ref['name']}/{ref['key']}")
        elif resource:
            env[entry["name"]] = ("resource", resource["resource"])
        else:
            env[entry["name"]] = ("config", entry["value"])
    return env


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("stage", ["migrate", "app"])
def test_rendered_manifests_are_valid(overlay: str, stage: str, tmp_path: Path) -> None:
    path = tmp_path / "rendered.yaml"
    path.write_text(_render(K8S / "overlays" / overlay / ("migrate" if stage == "migrate" else "")))
    count, errors = kubecheck.check([str(path)], ROOT)
    assert not errors, "\n".join(errors)
    assert count > 5


def test_the_checker_refuses_unknown_fields_and_kinds(tmp_path: Path) -> None:
    objects = rendered(OVERLAYS[0])
    limit = copy.deepcopy(find(objects, "Middleware", "login-rate-limit"))
    limit["spec"]["rateLimit"]["burts"] = 5
    deployment = copy.deepcopy(find(objects, "Deployment", "auth-service"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump_all([limit, deployment, unknown]))
    _, errors = kubecheck.check([str(path)], ROOT)
    text = "\n".join(errors)
    assert "'burts' was unexpected" in text
    assert "'readinessprobe' was unexpected" in text
    assert "no schema for Widget" in text


def test_crds_are_traefiks_for_the_gateway_image() -> None:
    (crd_file,) = (K8S / "crds").glob("traefik-v*.yml")
    version = crd_file.stem.removeprefix("traefik-")
    gateway = find(rendered(OVERLAYS[0]), "Deployment", "gateway")
    image = container(gateway)["image"]
    assert image == f"traefik:{version}", "the CRDs are those of the gateway's Traefik version"
    compose_image = compose()["services"]["gateway"]["image"]
    assert image.startswith(compose_image + "."), f"{image} is not a {compose_image} release"
    kinds = {k for _, k in kubecheck.crd_schemas(K8S / "crds")}
    assert {"IngressRoute", "Middleware"} <= kinds


def test_no_secret_values_are_rendered() -> None:
    for overlay in OVERLAYS:
        for stage in ("migrate", "app"):
            kinds = {o["kind"] for o in rendered(overlay, stage)}
            assert "Secret" not in kinds, f"{overlay}/{stage} renders a Secret"


# --------------------------------------------------------------------------- services


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", sorted(SERVICES))
def test_service_environment_matches_compose(overlay: str, service: str) -> None:
    objects = rendered(overlay)
    env = container_env(objects, find(objects, "Deployment", service))
    raw = compose()["services"][service]["environment"]
    values = service_env(service)
    missing = sorted(set(raw) - set(env))
    assert not missing, f"compose sets {missing} for {service}; the manifests do not"
    _, prefix = SERVICES[service]
    readable = _env_names(_settings_class(service), prefix)
    stray = sorted(set(env) - set(raw) - set(readable))
    assert not stray, f"the manifests set variables {service} does not read: {stray}"
    optional = {
        entry["name"]: entry["valueFrom"]["secretKeyRef"].get("optional", False)
        for entry in container(find(objects, "Deployment", service)).get("env", [])
        if "secretKeyRef" in entry.get("valueFrom", {})
    }
    for name, template in raw.items():
        source, value = env[name]
        required = bool(_REQUIRED.search(str(template)))
        if required or _SECRET_NAME.search(name) or name in CREDENTIAL_URLS:
            assert source == "secret", f"{name} holds a secret under compose: use a Secret"
            if required:
                assert not optional[name], f"{name} is required under compose: not optional"
        else:
            assert source == "config", f"{name} is not secret under compose: use the ConfigMap"
            if not any(f"${{{v}" in str(template) for v in DEPLOYMENT_SPECIFIC):
                assert value == values[name], f"{name}: {value!r} here, {values[name]!r} in compose"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_issuer_and_the_service_addresses_match_the_services(overlay: str) -> None:
    objects = rendered(overlay)
    env = {s: container_env(objects, find(objects, "Deployment", s)) for s in SERVICES}
    issuers = {e[n][1] for s, e in env.items() for n in e if n == f"{SERVICES[s][1]}ISSUER"}
    assert len(issuers) == 1, f"one issuer for signing and verifying: {issuers}"
    (issuer,) = issuers
    assert issuer.startswith("https://") or overlay != "production", "a public HTTPS issuer"
    # Variables compose takes from one deployment-specific variable (AUTH_ISSUER, ITEMS_ISSUER
    # and AUTH_PUBLIC_URL from PUBLIC_URL) hold one value here as well.
    for variable in DEPLOYMENT_SPECIFIC:
        shared = {
            (service, name): env[service][name]
            for service in SERVICES
            for name, template in compose()["services"][service]["environment"].items()
            if f"${{{variable}" in str(template)
        }
        assert len(set(shared.values())) <= 1, f"{variable} differs: {shared}"
    services = of_kind(objects, "Service")
    for service, service_env_ in env.items():
        for name, template in compose()["services"][service]["environment"].items():
            source, value = service_env_[name]
            local = any(f"${{{v}" in str(template) for v in DEPLOYMENT_SPECIFIC)
            if source == "config" and value.startswith("http://") and not local:
                url = urlsplit(value)
                assert url.hostname in services, f"{value}: no Service {url.hostname}"
                ports = {p["port"] for p in services[url.hostname]["spec"]["ports"]}
                assert url.port in ports, f"{value}: Service {url.hostname} has ports {ports}"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", sorted(SERVICES))
def test_migration_job_runs_the_compose_command_from_the_same_image(
    overlay: str, service: str
) -> None:
    migrate_stage = rendered(overlay, "migrate")
    app = rendered(overlay)
    name = f"{service.split('-')[0]}-migrate"
    job = find(migrate_stage, "Job", name)
    deployment = find(app, "Deployment", service)
    assert container(job)["command"] == compose()["services"][name]["command"]
    assert container(job)["image"] == container(deployment)["image"]
    image = compose()["services"][service]["image"]
    assert container(job)["image"].split(":")[0] == image.split(":")[0], "compose's image"
    assert container_env(migrate_stage, job) == container_env(app, deployment)
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert not [o for o in app if o["kind"] == "Job"], "migrations run in their own stage"


def _graceful_shutdown_seconds(service: str) -> int:
    text = dockerfile(service)
    cmd = re.search(r"^CMD (\[.*\])$", text, re.MULTILINE)
    assert cmd is not None
    command = json.loads(cmd.group(1))
    return int(command[command.index("--timeout-graceful-shutdown") + 1])


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_service_pods_are_hardened_probed_and_shut_down_gracefully(service: str) -> None:
    objects = rendered(OVERLAYS[0])
    deployment = find(objects, "Deployment", service)
    pod = deployment["spec"]["template"]["spec"]
    spec = container(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["allowPrivilegeEscalation"] is False
    assert spec["securityContext"]["capabilities"]["drop"] == ["ALL"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(spec["resources"][kind]), f"{kind} missing"
    assert spec["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert spec["readinessProbe"]["httpGet"]["path"] == "/readyz"
    pause = spec["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = _graceful_shutdown_seconds(service)
    assert pod["terminationGracePeriodSeconds"] > pause + grace
    assert find(objects, "HorizontalPodAutoscaler", service)["spec"]["minReplicas"] >= 2
    pdb = find(objects, "PodDisruptionBudget", service)
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


# --------------------------------------------------------------------------- network


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In"
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def _pod_labels(objects: Objects) -> dict[str, dict[str, str]]:
    return {
        o["metadata"]["name"]: o["spec"]["template"]["metadata"]["labels"]
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet", "Job")
    }


def _allowed(objects: Objects, direction: str, pod: dict[str, str], peer: dict[str, str]) -> bool:
    """Whether some policy lets ``pod`` receive from (ingress) or send to (egress) ``peer``."""
    key, peers = ("ingress", "from") if direction == "ingress" else ("egress", "to")
    for policy in of_kind(objects, "NetworkPolicy").values():
        if not _selects(policy["spec"]["podSelector"], pod):
            continue
        for rule in policy["spec"].get(key, []):
            if peers not in rule:
                return True  # from/to anywhere
            for entry in rule[peers]:
                pods = entry.get("podSelector") if "namespaceSelector" not in entry else None
                if pods is not None and _selects(pods, peer):
                    return True
    return False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_by_default_and_only_the_gateway_reaches_in(overlay: str) -> None:
    objects = [*rendered(overlay), *rendered(overlay, "migrate")]
    policies = of_kind(objects, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny
    assert "egress" not in deny
    pods = _pod_labels(objects)
    # Service-to-service calls the compose environment makes (JWKS, /users/me's items).
    calls = {
        (caller, urlsplit(value).hostname)
        for caller in SERVICES
        for value in service_env(caller).values()
        if value.startswith("http://")
    }
    for target in SERVICES:
        callers = {
            name
            for name, labels in pods.items()
            if name != target and _allowed(objects, "ingress", pods[target], labels)
        }
        expected = {"gateway"} | {caller for caller, host in calls if host == target}
        assert callers == expected, f"{target} is reachable from {callers}, not {expected}"
        for caller in callers:
            assert _allowed(objects, "egress", pods[caller], pods[target]), f"{caller}->{target}"


# --------------------------------------------------------------------------- gateway


class GoTemplate:
    """The subset of Go templates (with sprig functions) that gateway/dynamic/ uses, enough to
    render it the way Traefik's file provider does. Anything else is an error, not a guess."""

    _ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.DOTALL)
    _TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\(|\)|\||:=|\$\w+|[A-Za-z_][\w.]*|\S')

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.defines: dict[str, list[Any]] = {}
        self.vars: dict[str, Any] = {}
        self.functions: dict[str, Callable[..., Any]] = {
            "env": lambda name: self.env.get(name, ""),
            "default": lambda fallback, value="": value or fallback,
            "nospace": lambda value: re.sub(r"\s", "", value),
            "splitList": lambda sep, value: value.split(sep),
            "compact": lambda items: [i for i in items if i],
            "toJson": lambda value: json.dumps(value, separators=(",", ":")),
            "ne": lambda a, b: a != b,
        }

    def render(self, text: str) -> str:
        parts: list[Any] = []
        position, trim_next = 0, False
        for match in self._ACTION.finditer(text):
            chunk = text[position : match.start()]
            if trim_next:
                chunk = chunk.lstrip()
            if match.group(1):
                chunk = chunk.rstrip()
            parts.append(chunk)
            parts.append(("action", match.group(2)))
            position, trim_next = match.end(), bool(match.group(3))
        tail = text[position:]
        parts.append(tail.lstrip() if trim_next else tail)
        tree, rest = self._parse(parts, 0)
        assert rest == len(parts), "unbalanced {{ end }}"
        return self._run(tree)

    def _parse(self, parts: list[Any], index: int) -> tuple[list[Any], int]:
        nodes: list[Any] = []
        while index < len(parts):
            part = parts[index]
            index += 1
            if isinstance(part, str):
                nodes.append(part)
                continue
            action = part[1]
            keyword = action.split(None, 1)[0]
            if keyword == "end":
                return nodes, index - 1
            if keyword in ("define", "if"):
                body, index = self._parse(parts, index)
                assert index < len(parts), f"{action}: no {{{{ end }}}}"
                index += 1
                nodes.append((keyword, action.split(None, 1)[1], body))
            else:
                assert keyword not in ("else", "range", "with", "block"), f"unsupported {action}"
                nodes.append(("expr", action))
        return nodes, index

    def _run(self, nodes: list[Any]) -> str:
        out = []
        for node in nodes:
            if isinstance(node, str):
                out.append(node)
            elif node[0] == "define":
                self.defines[json.loads(node[1])] = node[2]
            elif node[0] == "if":
                if self._pipeline(self._TOKEN.findall(node[1])):
                    out.append(self._run(node[2]))
            else:
                tokens = self._TOKEN.findall(node[1])
                if tokens[0] == "template":
                    out.append(self._run(self.defines[json.loads(tokens[1])]))
                elif len(tokens) > 1 and tokens[1] == ":=":
                    self.vars[tokens[0]] = self._pipeline(tokens[2:])
                else:
                    out.append(str(self._pipeline(tokens)))
        return "".join(out)

    def _pipeline(self, tokens: list[str]) -> Any:
        commands: list[list[str]] = [[]]
        depth = 0
        for token in tokens:
            depth += {"(": 1, ")": -1}.get(token, 0)
            if token == "|" and depth == 0:
                commands.append([])
            else:
                commands[-1].append(token)
        value: Any = None
        for number, command in enumerate(commands):
            piped = [value] if number else []
            value = self._command(command, piped)
        return value

    def _command(self, tokens: list[str], piped: list[Any]) -> Any:
        args: list[Any] = []
        index = 1 if tokens[0] in self.functions else 0
        while index < len(tokens):
            token = tokens[index]
            if token == "(":
                depth, end = 1, index
                while depth:
                    end += 1
                    depth += {"(": 1, ")": -1}.get(tokens[end], 0)
                args.append(self._pipeline(tokens[index + 1 : end]))
                index = end
            elif token.startswith('"'):
                args.append(json.loads(token))
            elif token.startswith("$"):
                args.append(self.vars[token])
            else:
                raise AssertionError(f"unsupported template token {token!r}")
            index += 1
        if tokens[0] in self.functions:
            return self.functions[tokens[0]](*args, *piped)
        assert len(args) == 1, f"unsupported template command {tokens}"
        assert not piped, f"unsupported template command {tokens}"
        return args[0]


def dynamic_config() -> dict[str, Any]:
    """gateway/dynamic/*.yml as Traefik renders them with compose's gateway environment."""
    template = GoTemplate(service_env("gateway"))
    merged: dict[str, Any] = {}
    for path in sorted((ROOT / "gateway" / "dynamic").glob("*.yml")):
        data = yaml.safe_load(template.render(path.read_text())) or {}
        for section, kinds in data.get("http", {}).items():
            merged.setdefault(section, {}).update(kinds)
    return merged


def test_the_template_renderer_follows_go_semantics() -> None:
    render = GoTemplate({"A": "7", "CORS": " https://a.example, ,https://b.example"}).render
    assert render('x: {{ env "A" | default "1" }}') == "x: 7"
    assert render('x: {{ env "B" | default (env "A") | default "1" }}') == "x: 7"
    assert render('x: {{ env "B" | default "1" }}') == "x: 1"
    assert render('{{ env "CORS" | nospace | splitList "," | compact | toJson }}') == (
        '["https://a.example","https://b.example"]'
    )
    text = '{{- define "t" }}\n  y{{- end }}a:\n{{- $d := env "A" }}{{- if ne $d "0" }} b{{- end }}'
    assert render(text) == "a: b"
    assert render('{{- define "t" }}\n  y: 1{{- end }}a:{{- template "t" }}') == "a:\n  y: 1"
    with pytest.raises(AssertionError, match="unsupported"):
        render("{{ range .x }}{{ end }}")


def test_gateway_environment_is_all_consumed_by_the_renderer() -> None:
    # Every GATEWAY_* variable compose sets is read by gateway/dynamic/ (test_compose), so
    # rendering with compose's environment covers every limit compose can change.
    read = set()
    for path in (ROOT / "gateway" / "dynamic").glob("*.yml"):
        read |= set(re.findall(r'env "([A-Z0-9_]+)"', path.read_text()))
    assert set(service_env("gateway")) - GO_RUNTIME_ENV <= read


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_runs_go_on_as_many_cores_as_its_cpu_limit(overlay: str) -> None:
    objects = rendered(overlay)
    gateway = find(objects, "Deployment", "gateway")
    assert container_env(objects, gateway)["GOMAXPROCS"] == ("resource", "limits.cpu")
    limit = container(gateway)["resources"]["limits"]["cpu"]
    assert limit == "1", "a gateway pod is sized for one core, like a service replica"


def _normalised_middleware(spec: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    redis = spec.get("rateLimit", {}).get("redis")
    if redis is not None:
        # The file provider takes the password inline; the CRD names a Secret holding it.
        redis.pop("password", None)
        redis.pop("secret", None)
    return spec


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_middlewares_match_the_gateway_folder(overlay: str) -> None:
    objects = rendered(overlay)
    manifests = of_kind(objects, "Middleware")
    expected = dynamic_config()["middlewares"]
    assert set(manifests) == set(expected), "the same middlewares, by name"
    for name, spec in expected.items():
        actual = manifests[name]["spec"]
        assert _normalised_middleware(actual) == _normalised_middleware(spec), name
        redis = spec.get("rateLimit", {}).get("redis")
        if redis is not None:
            assert "password" in redis
            secret = actual["rateLimit"]["redis"]["secret"]
            assert secret, f"{name}: the Redis password comes from a Secret"
            for endpoint in redis["endpoints"]:
                host, port = endpoint.rsplit(":", 1)
                service = find(objects, "Service", host)
                if service["spec"].get("type", "ClusterIP") != "ExternalName":
                    assert int(port) in {p["port"] for p in service["spec"]["ports"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_routes_match_the_gateway_folder(overlay: str) -> None:
    objects = rendered(overlay)
    config = dynamic_config()
    routes = [
        (route, ingress["spec"]["entryPoints"])
        for ingress in of_kind(objects, "IngressRoute").values()
        for route in ingress["spec"]["routes"]
    ]

    def key(rule: str, priority: int, service: str, middlewares: list[str], entry: Any) -> Any:
        return (" ".join(rule.split()), priority, service, tuple(middlewares), tuple(entry))

    actual = []
    for route, entry_points in routes:
        (service,) = route["services"]
        actual.append(
            key(
                route["match"],
                route["priority"],
                service["name"],
                [m["name"] for m in route.get("middlewares", [])],
                entry_points,
            )
        )
        # The IngressRoute's port is the one the gateway folder's upstream URL names.
        url = urlsplit(config["services"][service["name"]]["loadBalancer"]["servers"][0]["url"])
        assert (url.hostname, url.port) == (service["name"], service["port"])
        kube_service = find(objects, "Service", service["name"])
        assert service["port"] in {p["port"] for p in kube_service["spec"]["ports"]}
    expected = [
        key(r["rule"], r["priority"], r["service"], r["middlewares"], r["entryPoints"])
        for r in config["routers"].values()
    ]
    assert sorted(actual) == sorted(expected)


def _without_providers(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "providers"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_static_configuration_is_gateway_traefik_yml_but_the_provider(
    overlay: str,
) -> None:
    objects = rendered(overlay)
    gateway = find(objects, "Deployment", "gateway")
    volumes = {v["name"]: v for v in gateway["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(gateway)["volumeMounts"]}
    config_map = volumes[mounts["/etc/traefik"]]["configMap"]["name"]
    static = yaml.safe_load(find(objects, "ConfigMap", config_map)["data"]["traefik.yml"])
    reference = yaml.safe_load((ROOT / "gateway" / "traefik.yml").read_text())
    assert _without_providers(static) == _without_providers(reference)
    assert container(gateway)["args"] == ["--configfile=/etc/traefik/traefik.yml"]
    crd = static["providers"]["kubernetesCRD"]
    assert set(static["providers"]) == {"kubernetesCRD"}
    assert crd["namespaces"] == [gateway["metadata"]["namespace"]]
    assert static["entryPoints"]["web"]["forwardedHeaders"]["trustedIPs"] == []
    ports = {p["name"]: p["containerPort"] for p in container(gateway)["ports"]}
    for entry_point in ("web", "internal"):
        address = static["entryPoints"][entry_point]["address"]
        assert ports[entry_point] == int(address.rsplit(":", 1)[1])
    probe = container(gateway)["readinessProbe"]["httpGet"]
    assert (probe["path"], probe["port"]) == ("/ping", static["ping"]["entryPoint"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_service_keeps_the_client_address(overlay: str) -> None:
    service = find(rendered(overlay), "Service", "gateway")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["externalTrafficPolicy"] == "Local"
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["web"]


def _egress(objects: Objects, labels: dict[str, str]) -> set[tuple[int, str]]:
    """(port, destination) pairs a pod may send to; destination: a CIDR or a pod name."""
    pods = _pod_labels(objects)
    allowed: set[tuple[int, str]] = set()
    for policy in of_kind(objects, "NetworkPolicy").values():
        if not _selects(policy["spec"]["podSelector"], labels):
            continue
        for rule in policy["spec"].get("egress", []):
            ports = [p["port"] for p in rule.get("ports", [])] or [0]
            destinations: set[str] = set()
            for entry in rule.get("to", [{"ipBlock": {"cidr": "0.0.0.0/0"}}]):
                if "ipBlock" in entry:
                    destinations.add(entry["ipBlock"]["cidr"])
                elif "namespaceSelector" not in entry:
                    destinations |= {
                        name for name, peer in pods.items() if _selects(entry["podSelector"], peer)
                    }
            allowed |= {(port, dest) for port in ports for dest in destinations}
    return allowed


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_each_service_reaches_its_database_and_redis_only_gateway_and_services(
    overlay: str,
) -> None:
    objects = [*rendered(overlay, "migrate"), *rendered(overlay)]
    pods = _pod_labels(objects)
    reach: dict[tuple[int, str], set[str]] = {}
    for name, labels in pods.items():
        for port, destination in _egress(objects, labels):
            reach.setdefault((port, destination), set()).add(name)
    assert not [k for k in reach if k[0] == 0], f"egress to any port: {reach}"
    databases = {dest: clients for (port, dest), clients in reach.items() if port == 5432}
    expected = [{s, f"{s.split('-')[0]}-migrate"} for s in sorted(SERVICES)]
    assert sorted(databases.values(), key=sorted) == expected, databases
    redis = [clients for (port, _), clients in reach.items() if port == 6379]
    assert redis, "Redis is reachable"
    assert all(clients == {"gateway", *SERVICES} for clients in redis), redis
    # Mail: only auth-service reaches an SMTP relay (submission, SMTPS, SMTP).
    smtp = [clients for (port, _), clients in reach.items() if port in (25, 465, 587)]
    assert smtp, "auth-service reaches the SMTP relay"
    assert all(clients == {"auth-service"} for clients in smtp), smtp
    for name, labels in pods.items():
        # In-cluster datastores (try-out): their ingress matches their clients' egress.
        ingress_from = {
            peer
            for peer, peer_labels in pods.items()
            if peer != name and _allowed(objects, "ingress", labels, peer_labels)
        }
        clients = {c for (port, dest), cs in reach.items() if dest == name for c in cs}
        if name not in (*SERVICES, "gateway"):
            assert ingress_from == clients, f"{name}: ingress from {ingress_from}, egress {clients}"
