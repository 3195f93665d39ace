"""The structure of the deployment (docker-compose.yml, nginx/nginx.conf, the Dockerfile): no container engine
runs in the test environment, so what can be checked without one is checked here, and nginx/nginx.conf itself
runs for real in tests/system/test_nginx.py."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
NGINX_CONF = REPO / "nginx" / "nginx.conf"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
SERVICES = ("mongodb", "ditto-compat", "nginx", "mosquitto", "kafka", "init")
PRE_AUTH = "x-ditto-pre-authenticated"


def load_compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def option(command: list[str], name: str) -> str:
    assert name in command, f"{name} missing from {command}"
    return command[command.index(name) + 1]


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> repository path of the service's bind mounts (short syntax ``./src:/dst[:ro]``)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_mode = str(volume).split(":")
        if source.startswith("."):
            mounts[target] = source
    return mounts


# -- a small reader of nginx's configuration syntax: blocks, directives, quoted strings, comments ------------

_TOKEN = re.compile(r"""\s*(?:#[^\n]*|"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|([{};])|([^\s{};"'#]+))""")
Block = list[tuple[list[str], "Block | None"]]


def parse_nginx(text: str) -> Block:
    """``[(directive words, block or None), ...]`` of a configuration."""
    tokens: list[tuple[str, bool]] = []  # (text, is punctuation)
    position = 0
    while text[position:].strip():
        match = _TOKEN.match(text, position)
        assert match is not None and match.end() > position, (
            f"cannot read nginx.conf at {text[position:][:40]!r}"
        )
        position = match.end()
        double, single, punctuation, word = match.groups()
        if punctuation is not None:
            tokens.append((punctuation, True))
        elif double is not None or single is not None or word is not None:
            tokens.append((double if double is not None else single if single is not None else word, False))
    block, rest = _block(tokens)
    assert not rest, "unbalanced braces in nginx.conf"
    return block


def _block(tokens: list[tuple[str, bool]]) -> tuple[Block, list[tuple[str, bool]]]:
    block: Block = []
    words: list[str] = []
    while tokens:
        (token, punctuation), tokens = tokens[0], tokens[1:]
        if not punctuation:
            words.append(token)
        elif token == ";":
            block.append((words, None))
            words = []
        elif token == "{":
            inner, tokens = _block(tokens)
            block.append((words, inner))
            words = []
        else:  # "}"
            return block, tokens
    return block, tokens


def directives(block: Block, name: str) -> list[list[str]]:
    return [words[1:] for words, inner in block if inner is None and words and words[0] == name]


def blocks(block: Block, name: str) -> list[tuple[list[str], Block]]:
    return [(words[1:], inner) for words, inner in block if inner is not None and words and words[0] == name]


@pytest.fixture(scope="module")
def nginx_server() -> Block:
    ((_, http),) = blocks(parse_nginx(NGINX_CONF.read_text()), "http")
    ((_, server),) = blocks(http, "server")
    return server


def location(server: Block, path: str) -> Block:
    found = [inner for args, inner in blocks(server, "location") if args[-1] == path]
    assert len(found) == 1, f"nginx.conf needs exactly one location {path}"
    return found[0]


def proxy_headers(block: Block) -> dict[str, str]:
    return {
        args[0].lower(): args[1] if len(args) > 1 else "" for args in directives(block, "proxy_set_header")
    }


# -- docker-compose.yml ------------------------------------------------------------------------------------


def test_every_service_is_there(services: dict[str, Any]) -> None:
    assert set(SERVICES) <= set(services)


def test_mongodb_is_a_single_node_replica_set_with_its_data_in_named_volumes(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    mongodb = services["mongodb"]
    assert option(command_of(mongodb), "--replSet") == "rs0"
    health = " ".join(mongodb["healthcheck"]["test"])
    script = bind_mounts(mongodb)
    (mounted,) = [target for target in script if target in health]
    init = (REPO / script[mounted]).read_text()
    assert "rs.initiate" in init and '"rs0"' in init and "mongodb:27017" in init
    named = {
        str(v).split(":")[0]: str(v).split(":")[1] for v in mongodb["volumes"] if not str(v).startswith(".")
    }
    assert "/data/db" in named.values()
    assert set(named) <= set(compose["volumes"])


def test_ditto_compat_uses_the_replica_set_and_trusts_only_nginx(services: dict[str, Any]) -> None:
    service = services["ditto-compat"]
    assert service["build"] in (".", {"context": "."})
    command = command_of(service)
    assert command[0] == "serve"
    assert "--pre-authenticated" in command
    assert option(command, "--host") == "0.0.0.0"
    mongo = urlsplit(option(command, "--mongo-uri"))
    assert mongo.scheme == "mongodb" and mongo.hostname == "mongodb"
    assert parse_qs(mongo.query)["replicaSet"] == ["rs0"]
    # with --pre-authenticated anyone reaching the port could name any subject: only nginx may reach it
    assert "ports" not in service
    port = option(command, "--port")
    assert f"127.0.0.1:{port}/health" in " ".join(service["healthcheck"]["test"])


def test_nginx_mounts_its_configuration_and_users_and_is_published(services: dict[str, Any]) -> None:
    nginx = services["nginx"]
    mounts = bind_mounts(nginx)
    assert mounts["/etc/nginx/nginx.conf"] == "./nginx/nginx.conf"
    assert mounts["/etc/nginx/htpasswd"] == "./nginx/htpasswd"
    published = [str(p) for p in nginx["ports"]]
    assert len(published) == 1 and published[0].endswith(":80")
    assert "daemon off;" in command_of(nginx)


def test_brokers_are_configured_for_connections(services: dict[str, Any]) -> None:
    mosquitto = services["mosquitto"]
    assert str(mosquitto["image"]).startswith("eclipse-mosquitto")
    config = (REPO / bind_mounts(mosquitto)["/mosquitto/config/mosquitto.conf"]).read_text().splitlines()
    for line in ("listener 1883", "allow_anonymous true", "max_inflight_messages 1000"):
        assert line in config
    # anonymous brokers are published on the loopback interface only
    for service in (mosquitto, services["kafka"]):
        assert all(str(p).startswith("127.0.0.1:") for p in service.get("ports", []))
    kafka = services["kafka"]
    assert str(kafka["image"]).startswith("apache/kafka")
    environment = kafka["environment"]
    assert set(environment["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "kafka:9092" in environment["KAFKA_ADVERTISED_LISTENERS"]


def test_init_seeds_and_creates_the_example_connection(services: dict[str, Any]) -> None:
    init = services["init"]
    assert init["image"] == services["ditto-compat"]["image"]
    assert init["restart"] == "no"
    script = " ".join(command_of(init))
    assert "ditto-compat seed --url http://ditto-compat:8080" in script
    mounts = bind_mounts(init)
    connection_files = [target for target in mounts if target.endswith(".json")]
    assert connection_files and all(target in script for target in mounts)
    connection = yaml.safe_load((REPO / mounts[connection_files[0]]).read_text())
    broker = urlsplit(connection["uri"])
    assert (broker.hostname, broker.port) == ("mosquitto", 1883)
    assert connection["name"] and connection["connectionType"] == "mqtt"


def test_every_long_running_service_has_a_health_check_and_waits_for_healthy_dependencies(
    services: dict[str, Any],
) -> None:
    for name, service in services.items():
        if service.get("restart") != "no":  # one-shot services finish instead of being healthy
            test = service.get("healthcheck", {}).get("test")
            assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions"
        for dependency, condition in depends_on.items():
            assert dependency in services
            assert condition == {"condition": "service_healthy"}, f"{name} -> {dependency}"
    assert services["ditto-compat"]["depends_on"].keys() == {"mongodb"}
    assert services["nginx"]["depends_on"].keys() == {"ditto-compat"}
    assert services["init"]["depends_on"].keys() >= {"ditto-compat", "mosquitto"}


def test_every_mounted_file_exists_and_every_named_volume_is_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for target, source in bind_mounts(service).items():
            assert (REPO / source).is_file(), f"{name} mounts {source} at {target}, which does not exist"
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} uses the undeclared volume {source}"


# -- nginx/nginx.conf ---------------------------------------------------------------------------------------


def test_nginx_proxies_to_ditto_compat_on_its_port(services: dict[str, Any]) -> None:
    http = next(inner for args, inner in blocks(parse_nginx(NGINX_CONF.read_text()), "http"))
    ((_, upstream),) = blocks(http, "upstream")
    port = option(command_of(services["ditto-compat"]), "--port")
    assert directives(upstream, "server") == [[f"ditto-compat:{port}"]]


def test_nginx_forwards_the_logged_in_user_as_pre_authenticated_subject(nginx_server: Block) -> None:
    assert directives(nginx_server, "listen") == [["80"]]
    for path in ("/api/", "/ws/"):
        block = location(nginx_server, path)
        assert directives(block, "auth_basic_user_file") == [["/etc/nginx/htpasswd"]]
        assert proxy_headers(block)[PRE_AUTH] == "nginx:$remote_user"


def test_every_proxied_location_sets_or_clears_the_subject_header(nginx_server: Block) -> None:
    # proxy_set_header in a location replaces the inherited ones: each location must decide for itself,
    # otherwise the client's own x-ditto-pre-authenticated header would pass through to ditto-compat
    proxied = [
        (args, inner) for args, inner in blocks(nginx_server, "location") if directives(inner, "proxy_pass")
    ]
    assert len(proxied) >= 4
    for args, block in proxied:
        value = proxy_headers(block).get(PRE_AUTH)
        assert value in ("nginx:$remote_user", ""), f"location {args} passes {PRE_AUTH} through"
        if value == "":
            assert not directives(block, "auth_basic"), f"location {args} authenticates but drops the user"


def test_nginx_upgrades_websockets(nginx_server: Block) -> None:
    ws = location(nginx_server, "/ws/")
    headers = proxy_headers(ws)
    assert headers["upgrade"] == "$http_upgrade"
    assert headers["connection"] == "$connection_upgrade"
    assert directives(ws, "proxy_http_version") == [["1.1"]]
    http = next(inner for args, inner in blocks(parse_nginx(NGINX_CONF.read_text()), "http"))
    maps = {tuple(args): inner for args, inner in blocks(http, "map")}
    upgrade_map = maps[("$http_upgrade", "$connection_upgrade")]
    assert ["default", "upgrade"] in [words for words, _ in upgrade_map]


# -- Dockerfile ---------------------------------------------------------------------------------------------


def test_dockerfile_installs_the_project_as_an_unprivileged_user() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines() if line.strip()]
    instructions = [line for line in lines if not line.startswith("#")]
    assert instructions[0] == "FROM python:3.11-slim"
    assert any(line.startswith("RUN pip install .") for line in instructions)
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert "EXPOSE 8080" in instructions
    ignored = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines()}
    for line in instructions:
        if line.startswith("COPY "):
            *sources, _destination = line.split()[1:]
            for source in sources:
                assert (REPO / source).exists(), f"the Dockerfile copies the missing {source}"
                assert source.rstrip("/") not in ignored, f".dockerignore hides {source} from the build"
