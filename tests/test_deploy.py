"""The cluster deployment files: docker-compose.yml (3-node Qdrant cluster + app), docker-compose.gpu.yml, the
Dockerfile, .env.example and .dockerignore.  There is no Docker engine on the development machine, so the files are
parsed and checked here (and validated by ``docker compose config`` where that command exists); the healthcheck and
extras-guard scripts are run for real, and the app's environment is fed through the indexer's settings down to the
``create_collection`` call a Qdrant cluster would receive."""

from __future__ import annotations

import fnmatch
import http.server
import re
import shlex
import shutil
import subprocess
import threading
from pathlib import Path
from types import SimpleNamespace
from unittest import mock
from urllib.parse import urlparse

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
NODES = ("qdrant-1", "qdrant-2", "qdrant-3")
VAR = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return load("docker-compose.yml")


@pytest.fixture(scope="module")
def gpu() -> dict:
    return load("docker-compose.gpu.yml")


def resolve(value, env: dict | None = None) -> str:
    """Compose interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error} (error if unset), $$ -> $."""
    env = env or {}

    def sub(m: re.Match) -> str:
        name, op, arg = m.groups()
        if env.get(name):
            return env[name]
        if op == "?":
            raise KeyError(f"{name} is required: {arg}")
        return arg if op == "-" else ""

    return VAR.sub(sub, str(value)).replace("$$", "$")


def words(command) -> list[str]:
    return list(command) if isinstance(command, list) else shlex.split(command)


def flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def env_of(service: dict) -> dict:
    env = service.get("environment") or {}
    return dict(e.split("=", 1) for e in env) if isinstance(env, list) else dict(env)


def published(service: dict) -> dict[int, str]:
    """container port -> host binding, from "host:container" / "ip:host:container" entries."""
    out = {}
    for entry in service.get("ports", []):
        parts = str(entry).split(":")
        out[int(parts[-1].split("/")[0])] = ":".join(parts[:-1])
    return out


# --- the cluster ------------------------------------------------------------------------------------------
def test_three_qdrant_nodes_form_one_distributed_cluster(compose):
    services = compose["services"]
    assert set(services) == {*NODES, "app"}
    for name in NODES:
        node = services[name]
        assert resolve(node["image"]).startswith("qdrant/qdrant:v")  # pinned, not :latest
        env = env_of(node)
        assert env["QDRANT__CLUSTER__ENABLED"] == "true"
        assert env.get("QDRANT__CLUSTER__P2P__PORT", "6335") == "6335"
        argv = words(node["command"])
        assert argv[0] == "./qdrant"
        assert flag(argv, "--uri") == f"http://{name}:6335"  # how peers reach this node, on the p2p port
        if name == "qdrant-1":
            assert "--bootstrap" not in argv
        else:
            assert flag(argv, "--bootstrap") == "http://qdrant-1:6335"
            assert node["depends_on"]["qdrant-1"]["condition"] == "service_healthy"


def test_every_node_and_the_app_keep_data_in_their_own_named_volume(compose):
    named = set(compose["volumes"])
    mounts = {}
    for name, service in compose["services"].items():
        for entry in service["volumes"]:
            source, target = entry.split(":")[:2]
            assert source in named, f"{name}: {source} is not a named volume"
            mounts[source] = (name, target)
    assert sorted(mounts[s][0] for s in mounts) == sorted([*NODES, "app"])  # one volume each, none shared
    for source, (name, target) in mounts.items():
        expected = "/data" if name == "app" else "/qdrant/storage"
        assert target == expected, f"{name} mounts {source} at {target}"
    assert env_of(compose["services"]["app"])["MOESEARCH_DATA_DIR"] == "/data"


def test_ports(compose):
    services = compose["services"]
    assert published(services["app"]) == {8501: "127.0.0.1:8501"}  # this host only (a TLS proxy exposes it)
    assert published(services["qdrant-1"]) == {6333: "127.0.0.1:6333"}  # REST for admins, this host only
    assert not published(services["qdrant-2"]) and not published(services["qdrant-3"])
    assert "EXPOSE 8501" in (ROOT / "Dockerfile").read_text()


def test_every_service_has_a_healthcheck_and_the_app_waits_for_healthy_nodes(compose):
    services = compose["services"]
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and not check.get("disable") and check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert check.get("interval") and check.get("retries"), name
    for name in NODES:
        test = " ".join(services[name]["healthcheck"]["test"])
        assert "/readyz" in test and "curl" not in test and "wget" not in test  # the image has neither
    app = " ".join(services["app"]["healthcheck"]["test"])
    assert "/_stcore/health" in app and ":8501" in app
    assert {n: d["condition"] for n, d in services["app"]["depends_on"].items()} == dict.fromkeys(
        NODES, "service_healthy")


class _Readyz(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.end_headers()
        self.wfile.write(b"all shards are ready" if self.status == 200 else b"some shards are not ready")

    def log_message(self, *args):
        pass


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash (the qdrant image runs the check with bash)")
def test_the_qdrant_healthcheck_passes_only_on_readyz_200(compose):
    test = compose["x-qdrant-node"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "bash", "-c"]
    server = http.server.HTTPServer(("127.0.0.1", 0), _Readyz)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    script = resolve(test[3]).replace("127.0.0.1/6333", f"127.0.0.1/{server.server_address[1]}")
    try:
        codes = {}
        for status in (200, 503):
            _Readyz.status = status
            codes[status] = subprocess.run(["bash", "-c", script], capture_output=True, timeout=20).returncode
    finally:
        server.shutdown()
        server.server_close()
    assert codes == {200: 0, 503: 1}
    closed = subprocess.run(["bash", "-c", script], capture_output=True, timeout=20)
    assert closed.returncode == 1  # nothing listening: unhealthy


# --- the app's wiring to the cluster -------------------------------------------------------------------------
def test_api_key_and_write_consistency_come_from_the_env_file(compose):
    services = compose["services"]
    keys = {env_of(services[n])["QDRANT__SERVICE__API_KEY"] for n in NODES}
    keys.add(env_of(services["app"])["QDRANT_API_KEY"])
    assert len(keys) == 1  # one variable feeds every node and the app
    key = keys.pop()
    assert VAR.fullmatch(key) and VAR.fullmatch(key).group(1) == "QDRANT_API_KEY"
    with pytest.raises(KeyError, match="QDRANT_API_KEY is required"):
        resolve(key)  # no default: compose refuses to start without a key
    assert resolve(env_of(services["app"])["QDRANT_WRITE_CONSISTENCY"], {"QDRANT_WRITE_CONSISTENCY": "2"}) == "2"
    example = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert {"QDRANT_API_KEY", "QDRANT_WRITE_CONSISTENCY", "MOESEARCH_ADMIN_PASSWORD_HASH"} <= set(example)
    assert example["QDRANT_API_KEY"] == ""  # nothing to forget to change
    for ignore in (".gitignore", ".dockerignore"):  # the real key stays out of git and out of the image
        assert ".env" in (ROOT / ignore).read_text().split(), ignore


def app_env(compose, **env) -> dict:
    values = {"QDRANT_API_KEY": "test-key", **env}
    return {k: resolve(v, values) for k, v in env_of(compose["services"]["app"]).items()}


def test_the_app_points_at_a_qdrant_node_with_the_cluster_layout(compose):
    env = app_env(compose)
    url = urlparse(env["QDRANT_URL"])
    assert url.scheme == "http" and url.hostname in NODES and url.port == 6333
    assert env["QDRANT_API_KEY"] == "test-key"
    assert (env["QDRANT_SHARDS"], env["QDRANT_REPLICATION_FACTOR"], env["QDRANT_WRITE_CONSISTENCY"]) == ("6", "2", "1")
    from indexer.settings import IndexerSettings

    s = IndexerSettings.from_env(env)
    assert s.backend == "server" and s.qdrant_url == env["QDRANT_URL"] and s.qdrant_api_key == "test-key"
    assert (s.shard_number, s.replication_factor, s.write_consistency_factor) == (6, 2, 1)
    assert s.data_dir == Path("/data") and s.device == "cpu"


def test_the_app_creates_its_collection_with_the_cluster_layout(compose, tiny_model_dir, tmp_path):
    """The compose environment -> IndexerSettings -> Pipeline -> the create_collection request to Qdrant."""
    import indexer.store.server as server  # imported here, so a failing import says why (not an AttributeError)
    from embedder.runtime import Embedder
    from indexer.pipeline import Pipeline
    from indexer.settings import IndexerSettings

    env = app_env(compose, QDRANT_WRITE_CONSISTENCY="2")
    settings = IndexerSettings.from_env({**env, "MOESEARCH_DATA_DIR": str(tmp_path)})
    client = mock.MagicMock()
    client.get_aliases.return_value = SimpleNamespace(aliases=[])
    client.collection_exists.return_value = False
    with mock.patch.object(server, "QdrantClient", return_value=client) as make:
        with Pipeline(settings, embedder=Embedder(tiny_model_dir, device="cpu")):
            pass
    assert make.call_args.kwargs["url"] == "http://qdrant-1:6333" and make.call_args.kwargs["api_key"] == "test-key"
    (name,), kwargs = client.create_collection.call_args
    assert name.startswith("moesearch-")
    assert (kwargs["shard_number"], kwargs["replication_factor"], kwargs["write_consistency_factor"]) == (6, 2, 2)
    indexed = {c.args[1] for c in client.create_payload_index.call_args_list}
    assert {"kind", "state", "doc_id", "source", "page", "ingested_at"} <= indexed
    ops = client.update_collection_aliases.call_args.kwargs["change_aliases_operations"]
    assert ops[-1].create_alias.collection_name == name and ops[-1].create_alias.alias_name == "moesearch"


# --- GPU override ------------------------------------------------------------------------------------------------
def test_gpu_override_reserves_a_gpu_and_builds_the_cuda_image(compose, gpu):
    assert set(gpu["services"]) == {"app"}  # the nodes are unchanged
    app = gpu["services"]["app"]
    devices = app["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    args = app["build"]["args"]
    assert set(args["EXTRAS"].split(",")) == {"gpu", "app"}
    base = resolve(args["BASE_IMAGE"])
    assert base.startswith("nvidia/cuda:") and "cudnn" in base and "runtime" in base
    assert env_of(app)["MOESEARCH_DEVICE"] == "cuda" and env_of(compose["services"]["app"])["MOESEARCH_DEVICE"] == "cpu"
    assert app["image"] != compose["services"]["app"]["image"]  # the two builds never overwrite each other
    from indexer.settings import IndexerSettings

    assert IndexerSettings.from_env({"MOESEARCH_DEVICE": "cuda"}).device == "cuda"  # the variable the app reads


# --- Dockerfile and extras -------------------------------------------------------------------------------------------
def dockerfile_stages() -> list[dict]:
    """[{name, base, steps: [(INSTRUCTION, args)]}] with comments dropped and continuation lines joined."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in (ROOT / "Dockerfile").read_text().splitlines()
                                           if not line.lstrip().startswith("#")))
    stages: list[dict] = []
    for line in filter(None, (line.strip() for line in text.splitlines())):
        op, _, args = line.partition(" ")
        if op.upper() == "FROM":
            parts = args.split()
            stages.append({"base": parts[0], "name": parts[2] if len(parts) > 2 else None, "steps": []})
        elif stages:
            stages[-1]["steps"].append((op.upper(), args.strip()))
    return stages


def stage_args(stage: dict) -> dict[str, str]:
    return dict(a.split("=", 1) for op, a in stage["steps"] if op == "ARG" and "=" in a)


def installed_extras(stage: dict, build_args: dict[str, str]) -> list[set[str]]:
    out = []
    for op, args in stage["steps"]:
        for group in re.findall(r'pip install [^&;]*?"?\.\[([^\]]+)\]"?', args) if op == "RUN" else []:
            out.append(set(resolve(group, build_args).split(",")))
    return out


def test_dockerfile_installs_the_extras_pyproject_defines(compose, gpu):
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(r.startswith("onnxruntime>=") for r in extras["cpu"])
    assert any(r.startswith("onnxruntime-gpu") for r in extras["gpu"])
    model, runtime = dockerfile_stages()
    assert model["name"] == "model" and runtime["name"] == "runtime"
    assert any(op == "RUN" and "python -m embedder prepare" in a for op, a in model["steps"])
    assert any(op == "COPY" and a.startswith("--from=model ") and "models" in a for op, a in runtime["steps"])
    (model_extras,) = installed_extras(model, stage_args(model))
    assert model_extras == {"cpu", "torch"}  # export needs torch; its checks and int8 quantisation onnxruntime
    default = stage_args(runtime)["EXTRAS"]
    builds = {"Dockerfile default": default,
              "docker-compose.yml": compose["services"]["app"]["build"]["args"]["EXTRAS"],
              "docker-compose.gpu.yml": gpu["services"]["app"]["build"]["args"]["EXTRAS"]}
    for where, value in builds.items():
        (names,) = installed_extras(runtime, {"EXTRAS": value})
        assert names <= set(extras), f"{where}: {names - set(extras)} not in pyproject"
        assert len(names & {"cpu", "gpu"}) == 1 and "torch" not in names and "app" in names, where
    assert "cpu" in builds["docker-compose.yml"].split(",") and "cpu" in default.split(",")
    assert "gpu" in builds["docker-compose.gpu.yml"].split(",")
    runtime_text = " ".join(a for _, a in runtime["steps"])
    assert not re.search(r"pip install[^&;]*torch", runtime_text)  # the runtime never installs torch


@pytest.mark.parametrize("extras, ok", [("cpu,app", True), ("gpu,app", True), ("app,cpu", True),
                                        ("cpu,gpu,app", False), ("gpu,app,cpu", False), ("app", False),
                                        ("cpu,torch,app", False)])
def test_the_dockerfile_refuses_both_onnxruntime_builds(extras, ok):
    (_, runtime) = dockerfile_stages()
    guard = next(a for op, a in runtime["steps"] if op == "RUN" and "EXTRAS" in a and "exit 1" in a)
    done = subprocess.run(["sh", "-c", guard], env={"EXTRAS": extras, "PATH": "/usr/bin:/bin"}, capture_output=True,
                          text=True, timeout=10)
    assert (done.returncode == 0) == ok, done.stderr


def test_dockerignore_keeps_the_context_small_but_complete():
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]

    def match(pattern: list[str], parts: list[str]) -> bool:  # Docker's rules: segment by segment, ** = any depth
        if not pattern:
            return not parts
        if pattern[0] == "**":
            return any(match(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
        return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and match(pattern[1:], parts[1:])

    def ignored(path: str) -> bool:  # a matched folder takes everything under it
        parts = path.split("/")
        return any(match(p.strip("/").split("/"), parts[:i]) for p in patterns for i in range(1, len(parts) + 1))

    for path in (".venv/bin/python", "data/qdrant/x", ".git/HEAD", "models/multilingual-e5-moe/onnx/model.onnx",
                 "models/moesearch-multilingual-moe/a61d3a3beb3f/onnx/model.onnx",
                 ".env", ".streamlit/secrets.toml", "indexer/__pycache__/cli.cpython-311.pyc"):
        assert ignored(path), path
    for path in ("pyproject.toml", "README.md", "embedder/runtime.py", "indexer/pipeline.py", "app/main.py",
                 ".streamlit/config.toml", "models/moesearch-multilingual-moe/a61d3a3beb3f/model.safetensors",
                 "models/moesearch-multilingual-moe/current",
                 "models/moesearch-multilingual-moe/tokenizer.json", "app/sample_corpus/NOTICE", "app/views/search.py"):
        assert not ignored(path), path


# --- docker compose itself, where it exists -------------------------------------------------------------------------
def _compose_cli() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0


@pytest.mark.skipif(not _compose_cli(), reason="the docker compose plugin is not installed (docker CLI alone cannot "
                    "parse compose files)")
def test_docker_compose_config_validates_both_files(tmp_path):
    empty = tmp_path / "empty.env"  # not a developer's .env: only what the test sets
    empty.write_text("")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "QDRANT_API_KEY": "test-key"}

    def config(*files: str, **extra) -> subprocess.CompletedProcess:
        args = [a for f in files for a in ("-f", f)]
        return subprocess.run(["docker", "compose", "--env-file", str(empty), *args, "config", "-q"], cwd=ROOT,
                              env={**env, **extra}, capture_output=True, text=True, timeout=60)

    for files in (("docker-compose.yml",), ("docker-compose.yml", "docker-compose.gpu.yml")):
        done = config(*files)
        assert done.returncode == 0, done.stderr
    no_key = config("docker-compose.yml", QDRANT_API_KEY="")
    assert no_key.returncode != 0 and "QDRANT_API_KEY" in no_key.stderr
