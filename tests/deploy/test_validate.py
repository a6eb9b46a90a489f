"""Every deployment artefact passes a maintained validator: hadolint for the Dockerfile, the Compose
Specification's JSON Schema for deploy/compose.yaml, kubernetes-validate (strict) for the rendered
kustomize overlays plus KEDA's own CRD schemas for its resources, systemd-analyze for the units.

Each validator also gets one broken input, so a validator that silently accepts everything fails here.

Schemas shipped in tests/deploy/schemas/ (JSON cannot carry a comment, so the sources are here):
- compose-spec.json: github.com/compose-spec/compose-spec, schema/compose-spec.json at
  170098ba07d9f53c383a41bfd4c5166b0a4529a6 (2026-06-23), unchanged.
- keda-*-v1alpha1.json: github.com/kedacore/keda, config/crd/bases/keda.sh_scaledobjects.yaml and
  keda.sh_triggerauthentications.yaml at 8b4f083ca8c8c2baf8477e322bd4d16ac4dfa09a (2026-08-20): the
  `openAPIV3Schema` of their v1alpha1 version, converted to JSON (kubernetes-validate has no CRDs).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys

import jsonschema
import pytest

from tests.deploy import _artifacts as art

# The Kubernetes release the manifests target (kubernetes-validate ships schemas up to 1.37).
K8S_VERSION = "1.33"


# --- Dockerfile --------------------------------------------------------------------------------------

def _hadolint(path) -> subprocess.CompletedProcess:
    return subprocess.run([art.tool("hadolint"), "--no-color", "--failure-threshold", "info", str(path)],
                          capture_output=True, text=True, timeout=60)


def test_dockerfile_passes_hadolint():
    result = _hadolint(art.ROOT / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install gcc\nRUN cd /app && pip install flask\n")
    result = _hadolint(bad)
    assert result.returncode != 0 and "DL3007" in result.stdout  # :latest


# --- compose -----------------------------------------------------------------------------------------

def _compose_validator() -> jsonschema.Validator:
    schema = json.loads((art.SCHEMAS / "compose-spec.json").read_text())
    # The file declares draft-07 ("$schema" without the trailing "#" that jsonschema looks up).
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_compose_file_matches_the_compose_specification():
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in _compose_validator().iter_errors(art.compose())]
    assert not errors, "\n".join(errors)


def test_compose_schema_rejects_a_broken_service():
    broken = copy.deepcopy(art.compose())
    broken["services"]["api"]["depends_on"] = {"migrate": {"condition": "when_it_feels_like_it"}}
    broken["services"]["worker-index"]["restrat"] = "always"
    assert len(list(_compose_validator().iter_errors(broken))) >= 2


# --- Kubernetes --------------------------------------------------------------------------------------

def _validate_k8s(doc: dict) -> None:
    """kubernetes-validate (strict: unknown fields are errors) or, for KEDA kinds, KEDA's CRD schema."""
    import kubernetes_validate

    if doc["kind"] in art.KEDA_KINDS:
        schema = json.loads((art.SCHEMAS / art.KEDA_KINDS[doc["kind"]]).read_text())
        assert doc["apiVersion"] == "keda.sh/v1alpha1"
        jsonschema.Draft7Validator(schema).validate(doc)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("overlay", art.OVERLAYS)
def test_rendered_overlay_is_valid_kubernetes(overlay):
    docs = art.rendered(overlay)
    failures = []
    for doc in docs:
        try:
            _validate_k8s(doc)
        except Exception as exc:  # collect all, report together
            failures.append(f"{doc['kind']}/{doc['metadata']['name']}: {type(exc).__name__}: "
                            f"{getattr(exc, 'message', exc)}")
    assert not failures, "\n".join(failures)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Job", "PodDisruptionBudget", "ScaledObject", "Service"} <= kinds


def test_kubernetes_validators_reject_broken_resources():
    import kubernetes_validate

    docs = art.rendered("dev")
    deployment = copy.deepcopy(next(d for d in docs if d["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"] = {"httpGet": {"path": "/x"},
                                                                               "periodSecs": 5}
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate_k8s(deployment)
    scaled = copy.deepcopy(next(d for d in docs if d["kind"] == "ScaledObject"))
    del scaled["spec"]["scaleTargetRef"]
    with pytest.raises(jsonschema.ValidationError):
        _validate_k8s(scaled)


# --- systemd -----------------------------------------------------------------------------------------

def test_systemd_units_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed")
    # Instances of the templates, with ExecStart pointing at an executable that exists here (verify
    # checks that the binary exists; the units' real path is /opt/switchyard/.venv).
    instances = {"switchyard-finetune@.service": "switchyard-finetune@0.service",
                 "switchyard-worker@.service": "switchyard-worker@index.service",
                 "switchyard-api.service": "switchyard-api.service"}
    for source, instance in instances.items():
        text = (art.DEPLOY / "systemd" / source).read_text()
        assert "/opt/switchyard/.venv/bin/switchyard" in text
        (tmp_path / instance).write_text(text.replace("/opt/switchyard/.venv/bin/switchyard", sys.executable)
                                         .replace("User=switchyard", "User=root")
                                         .replace("Group=switchyard", "Group=root"))
    result = subprocess.run([analyze, "verify", *[str(tmp_path / i) for i in instances.values()]],
                            capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if "switchyard" in line and "Failed to" not in line]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr
