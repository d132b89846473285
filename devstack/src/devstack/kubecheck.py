"""Validate rendered Kubernetes manifests without a cluster.

    python -m devstack.kubecheck FILE... (or - for stdin)

Every object must pass: the built-in kinds against the Kubernetes API's own OpenAPI schemas
(kubernetes-validate, strict: unknown fields are errors) for each supported cluster version,
the ``traefik.io`` kinds against the ``openAPIV3Schema`` of Traefik's CustomResourceDefinitions
kept in deploy/kubernetes/crds/ (strict as well). A kind known to neither is an error, not a skip.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from devstack.config import repo_root

# The oldest and the newest cluster versions the manifests are meant for (the preStop sleep
# action needs 1.30+; kubernetes-validate ships schemas from 1.32 on).
KUBERNETES_VERSIONS = ("1.32.0", "1.37.0")
CRD_DIR = Path("deploy") / "kubernetes" / "crds"

SchemaKey = tuple[str, str]  # (apiVersion, kind)


def crd_schemas(crd_dir: Path) -> dict[SchemaKey, dict[str, Any]]:
    """(apiVersion, kind) -> the served version's openAPIV3Schema, from every CRD file."""
    schemas: dict[SchemaKey, dict[str, Any]] = {}
    for path in sorted(crd_dir.glob("*.yml")) + sorted(crd_dir.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if version.get("served", True):
                    key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                    schemas[key] = strict(version["schema"]["openAPIV3Schema"])
    return schemas


def strict(schema: Any) -> Any:
    """The schema with unknown fields refused, as ``kubectl apply --validate=strict`` does
    (the API server would otherwise prune them silently): ``additionalProperties: false``
    wherever properties are listed and unknown fields are not explicitly preserved."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


def documents(paths: Iterable[str]) -> Iterable[tuple[str, dict[str, Any]]]:
    for name in paths:
        text = sys.stdin.read() if name == "-" else Path(name).read_text()
        for doc in yaml.safe_load_all(text):
            if doc:
                yield name, doc


def problems(doc: dict[str, Any], crds: dict[SchemaKey, dict[str, Any]]) -> list[str]:
    """Why ``doc`` is invalid (empty when it is valid)."""
    key = (str(doc.get("apiVersion")), str(doc.get("kind")))
    if key in crds:
        validator = jsonschema.Draft7Validator(crds[key])
        return [
            f"{'.'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
            for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        ]
    found: list[str] = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            found.append(f"no schema for {key[1]} {key[0]} in Kubernetes {version} or the CRDs")
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(map(str, exc.path)) or "<root>"
            found.append(f"Kubernetes {version}: {path}: {exc.message}")
    return found


def check(paths: Sequence[str], root: Path) -> tuple[int, list[str]]:
    crds = crd_schemas(root / CRD_DIR)
    if not crds:
        return 0, [f"no CustomResourceDefinitions found in {root / CRD_DIR}"]
    count = 0
    errors: list[str] = []
    for source, doc in documents(paths):
        count += 1
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        errors.extend(f"{source}: {name}: {problem}" for problem in problems(doc, crds))
    if count == 0:
        errors.append("no Kubernetes objects to check")
    return count, errors


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.kubecheck", description=__doc__)
    parser.add_argument("paths", nargs="+", help="rendered manifests (- for stdin)")
    args = parser.parse_args(argv)
    count, errors = check(args.paths, repo_root())
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        return 1
    versions = ", ".join(KUBERNETES_VERSIONS)
    print(f"{count} Kubernetes objects valid (Kubernetes {versions}; Traefik CRDs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
