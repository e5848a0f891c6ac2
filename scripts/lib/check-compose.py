"""Structure check of deploy/compose.yaml, for machines without a container
daemon (run by scripts/check-infra.sh with the venv's PyYAML).

`docker compose config` validates the syntax against the Compose schema; this
checks what makes the file a working 3-node Shale cluster on MinIO: pinned
images, the bucket created before the nodes start, every node on the same
bucket and prefix with its own id, advertised URL and host port, health
checks, drain-friendly stop settings, declared volumes.

Usage: python check-compose.py deploy/compose.yaml   (exit 1 with one line per problem)
"""

import os
import re
import sys

import yaml

NODES = ["shale-0", "shale-1", "shale-2"]
BUCKET = "shale"
OBJECT_STORE = "s3://shale/cluster"


def duration_s(text):
    """Compose durations used here: '45s', '1m30s', '500ms'."""
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(text)):
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def check(path):
    problems = []

    def need(condition, message):
        if not condition:
            problems.append(message)

    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    need(isinstance(doc, dict), "not a YAML mapping")
    if problems:
        return problems
    services = doc.get("services") or {}
    declared_volumes = set((doc.get("volumes") or {}).keys())
    need(set(services) >= {"minio", "create-bucket", *NODES},
         f"services must include minio, create-bucket and {', '.join(NODES)}; found {sorted(services)}")
    known = set(services)
    for name, svc in services.items():
        need(isinstance(svc, dict), f"{name}: not a mapping")
        for dep in (svc.get("depends_on") or {}):
            need(dep in known, f"{name}: depends on unknown service {dep}")
        for vol in svc.get("volumes") or []:
            source = str(vol).split(":", 1)[0]
            if not source.startswith((".", "/")):
                need(source in declared_volumes, f"{name}: volume {source} is not declared under volumes:")
        image = svc.get("image", "")
        if image and "build" not in svc:
            need(":" in image and not image.endswith(":latest"), f"{name}: image {image} is not pinned")
    if problems:
        return problems

    # MinIO: a 2025 release (conditional writes), healthy before anyone uses it.
    minio = services["minio"]
    need(re.fullmatch(r"minio/minio:RELEASE\.2025-\d\d-\d\dT\d\d-\d\d-\d\dZ", minio.get("image", "")) is not None,
         f"minio: image must be a pinned 2025 release (If-None-Match support), got {minio.get('image')}")
    need("healthcheck" in minio, "minio: no healthcheck (the others wait for service_healthy)")
    creds = minio.get("environment") or {}
    user, password = creds.get("MINIO_ROOT_USER"), creds.get("MINIO_ROOT_PASSWORD")
    need(user and password, "minio: MINIO_ROOT_USER and MINIO_ROOT_PASSWORD must be set")

    # The one-shot bucket creation.
    mc = services["create-bucket"]
    need(re.fullmatch(r"minio/mc:RELEASE\.2025-\d\d-\d\dT\d\d-\d\d-\d\dZ", mc.get("image", "")) is not None,
         f"create-bucket: image must be a pinned 2025 minio/mc release, got {mc.get('image')}")
    need((mc.get("depends_on") or {}).get("minio", {}).get("condition") == "service_healthy",
         "create-bucket: must wait for minio to be healthy")
    command = mc.get("command") or []
    command = command if isinstance(command, list) else str(command).split()
    need(command[:2] == ["mb", "--ignore-existing"] and command[-1].endswith("/" + BUCKET),
         f"create-bucket: must run `mb --ignore-existing ALIAS/{BUCKET}`, got {command}")
    alias = command[-1].split("/", 1)[0] if command else ""
    mc_host = (mc.get("environment") or {}).get(f"MC_HOST_{alias}", "")
    need(mc_host == f"http://{user}:{password}@minio:9000",
         f"create-bucket: MC_HOST_{alias} must point at minio:9000 with the MinIO credentials")
    need(str(mc.get("restart", "no")) == "no", "create-bucket: a one-shot service must not restart")

    # The nodes.
    compose_dir = os.path.dirname(os.path.abspath(path))
    node_ids, host_ports = set(), set()
    for name in NODES:
        svc = services[name]
        build = svc.get("build") or {}
        context = os.path.normpath(os.path.join(compose_dir, build.get("context", ".")))
        dockerfile = os.path.join(context, build.get("dockerfile", "Dockerfile"))
        need(os.path.isfile(dockerfile), f"{name}: build file {dockerfile} does not exist")
        env = svc.get("environment") or {}
        need(isinstance(env, dict), f"{name}: environment must be a mapping")
        for key, value in env.items():
            need(isinstance(value, str), f"{name}: {key} must be a string (quote it), got {value!r}")
        expected = {
            "SHALE_OBJECT_STORE": OBJECT_STORE,
            "AWS_ENDPOINT_URL": "http://minio:9000",
            "AWS_ALLOW_HTTP": "true",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": user,
            "AWS_SECRET_ACCESS_KEY": password,
            "SHALE_LISTEN": "0.0.0.0:8080",
            "SHALE_ADVERTISE_URL": f"http://{name}:8080",
        }
        for key, value in expected.items():
            need(env.get(key) == value, f"{name}: {key} must be {value!r}, got {env.get(key)!r}")
        need(svc.get("hostname", name) == name, f"{name}: hostname must be the service name it advertises")
        node_id = env.get("SHALE_NODE_ID", "")
        need(re.fullmatch(r"node-\d+", node_id) is not None, f"{name}: SHALE_NODE_ID must be node-N, got {node_id!r}")
        need(node_id not in node_ids, f"{name}: SHALE_NODE_ID {node_id} is used twice")
        node_ids.add(node_id)
        ports = svc.get("ports") or []
        need(len(ports) == 1, f"{name}: one published port expected, got {ports}")
        for port in ports:
            parts = str(port).split(":")
            need(parts[-1] == "8080", f"{name}: must publish container port 8080, got {port}")
            need(parts[-2] not in host_ports, f"{name}: host port {parts[-2]} is used twice")
            host_ports.add(parts[-2])
        depends = svc.get("depends_on") or {}
        need(depends.get("minio", {}).get("condition") == "service_healthy",
             f"{name}: must wait for minio (service_healthy)")
        need(depends.get("create-bucket", {}).get("condition") == "service_completed_successfully",
             f"{name}: must wait for the bucket (create-bucket: service_completed_successfully)")
        test = (svc.get("healthcheck") or {}).get("test") or []
        need(any("/readyz" in str(t) or "/healthz" in str(t) for t in test),
             f"{name}: healthcheck must probe /readyz or /healthz")
        need(svc.get("stop_signal", "SIGTERM") == "SIGTERM", f"{name}: stop_signal must be SIGTERM (drain)")
        drain = duration_s(env.get("SHALE_DRAIN_TIMEOUT_MS", "30s"))
        grace = duration_s(svc.get("stop_grace_period", "10s"))
        need(grace > drain, f"{name}: stop_grace_period ({grace:g} s) must exceed the drain timeout ({drain:g} s)")
        need(any(str(v).split(":")[1:2] == [env.get("SHALE_DATA_DIR", "/var/lib/shale")]
                 for v in svc.get("volumes") or []),
             f"{name}: the data directory must be a volume")
    need(host_ports == {"8080", "8081", "8082"}, f"host ports must be 8080, 8081, 8082; got {sorted(host_ports)}")
    return problems


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "deploy/compose.yaml"
    problems = check(path)
    for problem in problems:
        print(f"{path}: {problem}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"{path}: structure ok (minio, create-bucket, {', '.join(NODES)})", file=sys.stderr)


if __name__ == "__main__":
    main()
