"""The Helm chart, checked with tools hubdir did not write, and turned into processes.

Usage:
  chart.py render CHART VALUES_JSON SECRETS_JSON OUT_DIR
      Lints the chart (helm lint --strict, the Helm 4 SDK that helm-python-sdk embeds),
      renders it, validates every manifest with kubernetes-validate --strict for two
      Kubernetes minor versions, checks the values schema refuses a mistyped config key, and
      checks every pod's security context. Then writes OUT_DIR/workloads.json: for the
      migration Job and each Deployment, the command, args, environment (secretKeyRef
      resolved from SECRETS_JSON, {name: {key: value}}) and probes its container gets, with a
      working directory under OUT_DIR holding its volumes as the kubelet would mount them
      (ConfigMap and Secret items, Secret files mode 0440, behind ..data symlinks), and
      OUT_DIR/every-key.toml: the config the chart renders with every key its schema allows.
  chart.py scenario PROTO_ROOT SCENARIO_JSON
      Probe, publish, discover, report and follow, through the addresses and tokens
      SCENARIO_JSON gives (see main_scenario).
Prints one line per check; exits non-zero at the first failure.
"""

import json
import os
import sys
import tempfile
import time

KUBE_VERSIONS = ("1.30", "1.33")
# Custom resources kubernetes-validate has no schema for; everything else must validate.
CRD_KINDS = {"GRPCRoute"}


def fail(message):
    print(f"FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def render(chart, values):
    import helm_python as helm

    with helm.Chart.load(chart) as loaded:
        rendered = loaded.render(values, name="hubdir", namespace="hubdir-test")
    import yaml

    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    notes = next((text for path, text in rendered.items() if path.endswith("NOTES.txt")), "")
    return docs, notes


def refused(chart, values, expected):
    import helm_python as helm

    try:
        render(chart, values)
    except helm.HelmError as err:
        if expected not in str(err):
            fail(f"rendering was refused, but not for {expected!r}: {err}")
        return
    fail(f"values the chart should refuse rendered: {expected}")


def lint(chart, values):
    import helm_python as helm

    report = helm.lint(chart, values, strict=True, namespace="hubdir-test", kube_version="v1.30.0")
    if report["errors"]:
        fail(f"helm lint --strict: {report['errors']}")
    print(f"ok helm lint --strict: {len(report['messages'])} notes, no errors")


def validate(docs):
    import kubernetes_validate as kv
    from kubernetes_validate.utils import SchemaNotFoundError

    for doc in docs:
        what = f"{doc['kind']}/{doc['metadata']['name']}"
        for version in KUBE_VERSIONS:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as err:
                fail(f"{what} is invalid for Kubernetes {version}: {'.'.join(map(str, err.path))}: {err.message}")
            except SchemaNotFoundError as err:
                if doc["kind"] not in CRD_KINDS:
                    fail(f"{what}: no schema for Kubernetes {version}: {err.message}")
    print(f"ok kubernetes-validate --strict {', '.join(KUBE_VERSIONS)}: {len(docs)} manifests")


def check_security(docs):
    pods = [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in docs if d["kind"] in ("Deployment", "Job")]
    for name, pod in pods:
        ctx = pod["securityContext"]
        if not (ctx.get("runAsNonRoot") and ctx.get("seccompProfile", {}).get("type") == "RuntimeDefault"):
            fail(f"{name}: pod security context {ctx}")
        if pod.get("automountServiceAccountToken") is not False:
            fail(f"{name}: a service account token is mounted")
        for container in pod["containers"]:
            c = container["securityContext"]
            if not (c.get("readOnlyRootFilesystem") and c.get("allowPrivilegeEscalation") is False
                    and c.get("capabilities", {}).get("drop") == ["ALL"]):
                fail(f"{name}: container security context {c}")
    print(f"ok security contexts: {len(pods)} pods non-root, read-only, no escalation, no capabilities, RuntimeDefault")


def check_network_policies(docs):
    policies = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "NetworkPolicy"}
    open_to_all = [name for name, spec in policies.items() for rule in spec.get("ingress", []) if "from" not in rule]
    if open_to_all != ["hubdir-federation"]:
        fail(f"policies open to every source: {open_to_all} (only the federation port should be)")
    ports = [p["port"] for rule in policies["hubdir-federation"]["ingress"] for p in rule["ports"]]
    if ports != [50051]:
        fail(f"the federation policy opens {ports}")
    for name, spec in policies.items():
        for rule in spec.get("egress", []):
            dns_only = all(p["port"] == 53 for p in rule.get("ports") or [{"port": None}])
            if not dns_only and not (rule.get("to") and rule.get("ports")):
                fail(f"{name}: an egress rule open to every destination or port: {rule}")
    print(f"ok network policies: {sorted(policies)}; only the federation port is open beyond the namespace")


def sample(schema):
    """A value the schema accepts, for every key it knows."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        out = {key: sample(sub) for key, sub in schema.get("properties", {}).items()}
        if isinstance(schema.get("additionalProperties"), dict) and "propertyNames" in schema:
            out["ZW"] = sample(schema["additionalProperties"])
        return out
    if kind == "array":
        return [sample(schema["items"])]
    return {"integer": max(schema.get("minimum", 1), 1), "number": 0.5, "boolean": True, "string": "info"}[kind]


def every_config_key(chart, values, out_dir):
    """Renders the chart with every config key the schema allows, and keeps its hubdir.toml:
    the test loads it with a real binary, so the schema lists no key hubdir does not have."""
    with open(os.path.join(chart, "values.schema.json")) as f:
        schema = json.load(f)
    every = dict(values, config=sample(schema["properties"]["config"]))
    docs, _ = render(chart, every)
    (config,) = [d["data"]["hubdir.toml"] for d in docs if d["kind"] == "ConfigMap"]
    with open(os.path.join(out_dir, "every-key.toml"), "w") as f:
        f.write(config)
    print(f"ok rendered every config key the schema allows ({config.count(' = ')} settings)")


def mount_secret(directory, items, mode):
    """Writes a Secret volume as the kubelet does: files in a timestamped directory behind a
    ..data symlink, each name a symlink into ..data."""
    os.makedirs(directory, exist_ok=True)
    stamp = os.path.join(directory, "..2026_11_27_00_00_00.000000000")
    os.makedirs(stamp, exist_ok=True)
    for path, value in items.items():
        target = os.path.join(stamp, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            f.write(value)
        os.chmod(target, mode)
    os.symlink(os.path.basename(stamp), os.path.join(directory, "..data"))
    for path in {p.split("/")[0] for p in items}:
        os.symlink(os.path.join("..data", path), os.path.join(directory, path))


def materialize(docs, secrets, out_dir):
    config_maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    workloads = []
    for doc in docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        name = doc["metadata"]["name"]
        pod = doc["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        workdir = container["workingDir"]
        root = os.path.join(out_dir, name)
        os.makedirs(root)
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            if not mount["mountPath"].startswith(workdir + "/"):
                fail(f"{name}: {mount['mountPath']} is outside the working directory {workdir}")
            target = os.path.join(root, mount["mountPath"][len(workdir) + 1:])
            volume = volumes[mount["name"]]
            if "emptyDir" in volume:
                os.makedirs(target)
            elif "configMap" in volume:
                os.makedirs(target)
                for key, value in config_maps[volume["configMap"]["name"]].items():
                    with open(os.path.join(target, key), "w") as f:
                        f.write(value)
            else:
                secret = secrets[volume["secret"]["secretName"]]
                items = volume["secret"].get("items") or [{"key": k, "path": k} for k in secret]
                mount_secret(target, {i["path"]: secret[i["key"]] for i in items}, volume["secret"]["defaultMode"])
        env = {}
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
            else:
                ref = var["valueFrom"]["secretKeyRef"]
                env[var["name"]] = secrets[ref["name"]][ref["key"]]
        probes = {
            kind: container[f"{kind}Probe"]["grpc"]
            for kind in ("liveness", "readiness", "startup")
            if f"{kind}Probe" in container
        }
        workloads.append({
            "name": name,
            "kind": doc["kind"],
            "binary": os.path.basename(container["command"][0]),
            "args": container.get("args", []),
            "env": env,
            "cwd": root,
            "ports": {p["name"]: p["containerPort"] for p in container.get("ports", [])},
            "probes": probes,
        })
    with open(os.path.join(out_dir, "workloads.json"), "w") as f:
        json.dump(workloads, f, indent=2)
    print(f"ok materialized {len(workloads)} workloads")


def check_readme(chart):
    import yaml

    with open(os.path.join(chart, "values.yaml")) as f:
        keys = list(yaml.safe_load(f))
    with open(os.path.join(chart, "README.md")) as f:
        readme = f.read()
    missing = [key for key in keys if f"| `{key}" not in readme and f", `{key}" not in readme]
    if missing:
        fail(f"the chart README's values table lacks {missing}")
    print(f"ok the chart README's values table has all {len(keys)} top-level values")


def check_variant(chart, values):
    """What the processes do not run: TLS with mTLS and probes on their own port, metrics,
    the URL in the values, the registry without autoscaling, PostgreSQL in the cluster, the
    federation Ingress. Rendered, validated and checked."""
    import copy

    variant = copy.deepcopy(values)
    variant.update(
        tls={"enabled": True, "existingSecret": "hubdir-tls", "requireClientCertificates": True},
        metrics={"prometheus": True},
        postgres={"url": "postgres://hubdir:secret@db:5432/hubdir", "existingSecret": "", "secretKey": "url"},
        registry={"autoscaling": {"enabled": False}},
        federation={"ingress": {"enabled": True, "host": "peers.example.zw", "tlsSecret": "peers-tls"}},
        networkPolicy={"postgres": {"podSelector": {"app": "postgresql"}},
                       "metricsFrom": [{"kubernetes.io/metadata.name": "monitoring"}]},
    )
    docs, _ = render(chart, variant)
    validate(docs)
    check_security(docs)
    check_network_policies(docs)
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    for name, deployment in by_kind["Deployment"].items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        ports = {container[f"{kind}Probe"]["grpc"]["port"] for kind in ("liveness", "readiness", "startup")}
        if ports != {50052}:
            fail(f"{name}: with TLS, probes must use the plaintext health port 50052, not {ports}")
    if "replicas" not in by_kind["Deployment"]["hubdir-registry"]["spec"] or "hubdir-registry" in by_kind.get(
            "HorizontalPodAutoscaler", {}):
        fail("the registry without autoscaling needs replicas and no HPA")
    secret = by_kind["Secret"]["hubdir-postgres"]
    if "pre-install" not in secret["metadata"]["annotations"]["helm.sh/hook"]:
        fail("the URL's Secret must exist before the migration Job")
    ingress = by_kind["Ingress"]["hubdir-federation"]
    if ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"] != "GRPCS":
        fail("with TLS the Ingress must speak GRPCS to its backends")
    config = by_kind["ConfigMap"]["hubdir-config"]["data"]["hubdir.toml"]
    if 'client_ca_file = "tls/ca.crt"' not in config or 'prometheus_listen = "0.0.0.0:9464"' not in config:
        fail(f"the TLS or metrics settings are missing:\n{config}")
    print(f"ok the TLS, metrics, in-cluster PostgreSQL variant: {len(docs)} manifests valid, probes on 50052")


def main_render(chart, values_json, secrets_json, out_dir):
    import copy

    values = json.loads(values_json)
    secrets = json.loads(secrets_json)
    check_readme(chart)
    lint(chart, values)
    docs, notes = render(chart, values)
    if "hubdir.v1.DiscoveryService" not in notes:
        fail(f"NOTES.txt does not list the services:\n{notes}")
    validate(docs)
    check_security(docs)
    check_network_policies(docs)
    typo = copy.deepcopy(values)
    typo.setdefault("config", {}).setdefault("server", {})["listn"] = "0.0.0.0:1"
    refused(chart, typo, "listn")
    unnamed = copy.deepcopy(values)
    unnamed["nodeId"] = ""
    refused(chart, unnamed, "nodeId is required")
    print("ok refused: a mistyped config key, a missing nodeId")
    check_variant(chart, values)
    every_config_key(chart, values, out_dir)
    materialize(docs, secrets, out_dir)


def main_scenario(proto_root, scenario_json):
    """{"registry", "discovery", "connectivity", "peer": addresses; "writer", "agent",
    "peer_reader", "peer_writer": tokens; "probes": [[address, service], ...]}."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from hubdir_client import bearer, load_stubs

    scenario = json.loads(scenario_json)
    with tempfile.TemporaryDirectory() as out_dir:
        s = load_stubs(proto_root, out_dir)
        site_pb2, reg, disc, conn = s["site"], s["registry"], s["discovery"], s["connectivity"]
        registry = s["registry_grpc"].RegistryServiceStub(grpc.insecure_channel(scenario["registry"]))
        discovery = s["discovery_grpc"].DiscoveryServiceStub(grpc.insecure_channel(scenario["discovery"]))
        connectivity = s["connectivity_grpc"].ConnectivityServiceStub(grpc.insecure_channel(scenario["connectivity"]))
        peer = s["registry_grpc"].RegistryServiceStub(grpc.insecure_channel(scenario["peer"]))

        for address, service in scenario["probes"]:
            health = health_pb2_grpc.HealthStub(grpc.insecure_channel(address))
            stream = health.Watch(health_pb2.HealthCheckRequest(service=service), timeout=60)
            if not any(update.status == health_pb2.HealthCheckResponse.SERVING for update in stream):
                fail(f"probe {service!r} at {address} never SERVING")
            stream.cancel()
        print(f"ok {len(scenario['probes'])} probes SERVING, as the kubelet would ask them")

        name = "sites/zw/chart-1"
        site = site_pb2.Site(
            name=name, display_name="Chart library", kind=site_pb2.KIND_PUBLIC_LIBRARY, operator="zw post",
            country_code="ZW", time_zone="Africa/Harare", location=site_pb2.LatLng(latitude=-17.8, longitude=31.0))
        registry.CreateSite(reg.CreateSiteRequest(site=site), metadata=bearer(scenario["writer"]), timeout=10)
        print("ok published through hubdir-registry")

        here = site_pb2.LatLng(latitude=-17.81, longitude=31.01)
        online = site_pb2.SiteFilter(connectivity_states=[site_pb2.CONNECTIVITY_STATE_ONLINE])

        def until_found(what, request, deadline=60, wanted=name):
            end = time.monotonic() + deadline
            while time.monotonic() < end:
                found = discovery.FindNearest(request, timeout=10)
                if any(r.site.name == wanted for r in found.results):
                    print(f"ok {what}")
                    return
                time.sleep(0.05)
            fail(f"never: {what}")

        until_found("discovered through hubdir-discovery", disc.FindNearestRequest(location=here, max_results=5))
        if any(r.site.name == name for r in discovery.FindNearest(
                disc.FindNearestRequest(location=here, max_results=5, filter=online), timeout=10).results):
            fail("an unreported site was found online")
        measured = conn.Measurement(site=name, online=True, download_mbps=30.0, idempotency_key="chart-1")
        measured.observe_time.GetCurrentTime()
        reply = connectivity.ReportStatus(iter([conn.ReportStatusRequest(measurements=[measured])]),
                                          metadata=bearer(scenario["agent"]), timeout=10)
        if reply.accepted_count != 1:
            fail(f"the report was not accepted: {reply}")
        until_found("online after a report through hubdir-connectivity",
                    disc.FindNearestRequest(location=here, max_results=5, filter=online))

        end = time.monotonic() + 60
        while True:
            try:
                got = peer.GetSite(reg.GetSiteRequest(name=name), metadata=bearer(scenario["peer_reader"]), timeout=10)
                print(f"ok the peer node followed hubdir-federation: {got.name}")
                break
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > end:
                    fail(f"the peer never got {name}: {err.code()} {err.details()}")
                time.sleep(0.05)

        # And this node follows the peer (its pinned key and token from the chart's values).
        theirs = site_pb2.Site(
            name="sites/fr/chart-2", display_name="Bureau de poste", kind=site_pb2.KIND_POST_OFFICE,
            operator="fr post", country_code="FR", time_zone="Europe/Paris",
            location=site_pb2.LatLng(latitude=48.85, longitude=2.35))
        peer.CreateSite(reg.CreateSiteRequest(site=theirs), metadata=bearer(scenario["peer_writer"]), timeout=10)
        until_found("the peer's site discovered here (hubdir-federation followed the peer)",
                    disc.FindNearestRequest(location=site_pb2.LatLng(latitude=48.85, longitude=2.35), max_results=5),
                    wanted=theirs.name)

if __name__ == "__main__":
    if sys.argv[1] == "render":
        main_render(*sys.argv[2:6])
    elif sys.argv[1] == "scenario":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        main_scenario(sys.argv[2], sys.argv[3])
    else:
        fail(f"unknown command {sys.argv[1]!r}")
