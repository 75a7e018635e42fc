#!/usr/bin/env bash
# Lints and validates the deployment files (Dockerfile, helm/, k8s/) without a cluster or a
# container engine; only a first run needs the network, to pip-install missing Python packages.
#   0) static checks of the Dockerfile and .dockerignore
#   a) Helm lint (helm-sdkpy, Python bindings of the Helm library) of the chart with the default
#      values and with every k8s/examples/values-*.yaml
#   b) values files against helm/is-messenger/values.schema.json (Helm's own check and python
#      jsonschema), plus a negative test: scripts/testdata/values-bad.yaml must be rejected with
#      messages naming each offending key
#   c) `kubectl kustomize` of k8s/base and every overlay and the Helm render of the chart for every
#      values set, validated with `kubernetes-validate --strict` against a pinned Kubernetes
#      version; k8s/base must stay equivalent to the chart's default render
#
# Usage: scripts/lint-deploy.sh     (env: KUBE_VERSION=1.33.0, KEEP_RENDERS=1, PYTHON=python3)
# Exit status is non-zero on any failure. The script is idempotent: it writes only to a temporary
# directory (removed on exit) and installs Python packages only when they cannot be imported.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="$ROOT/helm/is-messenger"
# Kubernetes version the manifests are validated against (schemas shipped by kubernetes-validate).
KUBE_VERSION="${KUBE_VERSION:-1.33.0}"
# Custom resources that kubernetes-validate has no schema for. They are allowed only in Helm
# renders (optional ServiceMonitor and PrometheusRule) and get a structural check of their own; the kustomize
# overlays must not contain any.
CRD_KINDS="ServiceMonitor PrometheusRule"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/lint-deploy.XXXXXX")"
cleanup() {
  if [[ "${KEEP_RENDERS:-0}" == "1" ]]; then echo "renders kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

FAILURES=0
step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; FAILURES=$((FAILURES + 1)); }

step "Tooling"
PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null || { echo "python3 is required" >&2; exit 2; }
command -v kubectl >/dev/null || { echo "kubectl is required (for kubectl kustomize)" >&2; exit 2; }
pip_install() { "$PY" -m pip install --quiet --disable-pip-version-check "$@"; }
"$PY" -c 'import helm_sdkpy, cffi' 2>/dev/null || pip_install --ignore-requires-python helm-sdkpy cffi
"$PY" -c 'import kubernetes_validate' 2>/dev/null || pip_install kubernetes-validate
"$PY" -c 'import jsonschema, yaml' 2>/dev/null || pip_install jsonschema pyyaml
PY_BIN_DIR="$(dirname "$(command -v "$PY")")"
if [[ -x "$PY_BIN_DIR/kubernetes-validate" ]]; then KV=("$PY_BIN_DIR/kubernetes-validate")
elif command -v kubernetes-validate >/dev/null; then KV=(kubernetes-validate)
else KV=("$PY" -m kubernetes_validate); fi
"$PY" - <<'PY'
import importlib.metadata as m
for p in ("helm-sdkpy", "kubernetes-validate", "jsonschema"):
    print(f"{p} {m.version(p)}")
PY
echo "kubectl $(kubectl version --client 2>/dev/null | head -n1 | sed 's/^Client Version: //'), validating against Kubernetes $KUBE_VERSION"

# validate_manifests NAME FILE ALLOW_CRDS(0|1)
# Runs kubernetes-validate --strict on FILE. A kind without a schema is a failure unless it is a
# listed CRD kind and ALLOW_CRDS=1, in which case it is checked structurally instead.
validate_manifests() {
  local name="$1" file="$2" allow_crds="$3" filtered="$WORK/validated/$1.yaml" out rc=0
  mkdir -p "$WORK/validated"
  if ! "$PY" - "$file" "$filtered" "$allow_crds" "$CRD_KINDS" <<'PY'
import sys, yaml
src, dst, allow, crd_kinds = sys.argv[1], sys.argv[2], sys.argv[3] == "1", set(sys.argv[4].split())
docs = [d for d in yaml.safe_load_all(open(src)) if d]
keep, bad = [], 0
for d in docs:
    kind = d.get("kind")
    if kind in crd_kinds:
        where = f"{kind}/{d.get('metadata', {}).get('name')}"
        if not allow:
            print(f"  {where}: custom resources are not allowed here"); bad += 1; continue
        spec = d.get("spec") or {}
        if kind == "PrometheusRule":
            ok = (d.get("apiVersion") == "monitoring.coreos.com/v1" and spec.get("groups")
                  and all(g.get("name") and g.get("rules") and all(
                      (r.get("alert") or r.get("record")) and isinstance(r.get("expr"), str) and r["expr"].strip()
                      for r in g["rules"]) for g in spec["groups"]))
        else:
            ok = (d.get("apiVersion") == "monitoring.coreos.com/v1" and isinstance(spec.get("selector"), dict)
                  and spec.get("endpoints") and all(isinstance(e, dict) and e.get("port") for e in spec["endpoints"]))
        print(f"  {where}: {'structure ok (CRD, no upstream schema)' if ok else 'INVALID structure'}")
        bad += 0 if ok else 1
        continue
    keep.append(d)
if not keep:
    print("  no resources rendered"); bad += 1
yaml.safe_dump_all(keep, open(dst, "w"), sort_keys=False)
kinds = {}
for d in keep:
    kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
print("  " + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items())))
sys.exit(1 if bad else 0)
PY
  then fail "$name: resource filter"; fi
  out="$("${KV[@]}" --strict --quiet -k "$KUBE_VERSION" - <"$filtered" 2>&1)" || rc=$?
  if [[ -n "$out" ]]; then printf '%s\n' "$out" | sed 's/^/  /'; fi
  # kubernetes-validate only warns when it has no schema for a kind; treat that as a failure too.
  if [[ $rc -ne 0 ]] || grep -qE '^(WARN|ERROR|FATAL)' <<<"$out"; then
    fail "$name: kubernetes-validate --strict (Kubernetes $KUBE_VERSION)"
  else
    echo "  $name: valid (strict, Kubernetes $KUBE_VERSION)"
  fi
}

step "Dockerfile and .dockerignore (static checks; no container engine here)"
if ! "$PY" - "$ROOT" <<'PY'
import fnmatch, json, os, re, sys
root = sys.argv[1]
df = open(os.path.join(root, "Dockerfile")).read()
froms = re.findall(r"^FROM\s+(\S+)", df, re.M)
checks = {
    "Rust 1.95 bookworm builder": re.search(r"^ARG RUST_VERSION=1\.95$", df, re.M) and froms and froms[0] == "rust:${RUST_VERSION}-bookworm",
    "dependency layer cached with cargo-chef": "cargo chef prepare" in df and "cargo chef cook --release" in df,
    "release build of the ism package, locked": re.search(r"cargo build --release --locked -p ism\b", df),
    "distroless nonroot runtime": froms and froms[-1] == "gcr.io/distroless/cc-debian12:nonroot",
    "non-root user": re.search(r"^USER\s+(65532|nonroot)", df, re.M),
    "entrypoint": re.search(r"^ENTRYPOINT\s+(\[.*\])$", df, re.M) and json.loads(re.search(r"^ENTRYPOINT\s+(\[.*\])$", df, re.M).group(1)) == ["/usr/local/bin/ism"],
    "default command": re.search(r"^CMD\s+(\[.*\])$", df, re.M) and json.loads(re.search(r"^CMD\s+(\[.*\])$", df, re.M).group(1)) == ["serve", "all"],
}
patterns = [l.strip() for l in open(os.path.join(root, ".dockerignore")) if l.strip() and not l.startswith("#")]
needed = ["Cargo.toml", "Cargo.lock", "proto", "shared", "services", "cli", "tests"]
excluded = [n for n in needed if any(fnmatch.fnmatch(n, p.rstrip("/")) for p in patterns if not p.startswith("!"))]
checks["build inputs kept in the context"] = not excluded
bad = [k for k, ok in checks.items() if not ok]
for k, ok in checks.items():
    print(f"  {'ok  ' if ok else 'FAIL'} {k}" + (f" (excluded: {', '.join(excluded)})" if k.startswith("build inputs") and excluded else ""))
sys.exit(1 if bad else 0)
PY
then
  fail "Dockerfile checks"
fi

step "Helm lint, values schema and Helm render (helm-sdkpy)"
# Everything Helm-related runs in one Python process: helm-sdkpy loads the Helm Go library once.
if ! "$PY" - "$ROOT" "$WORK" <<'PY'
import asyncio, base64, glob, gzip, json, os, re, shutil, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import helm_sdkpy
import jsonschema
import yaml

ROOT, WORK = sys.argv[1], sys.argv[2]
CHART = os.path.join(ROOT, "helm", "is-messenger")
RELEASE, NAMESPACE = "is-messenger", "is-messenger"
SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}
failures = []


def fail(msg):
    failures.append(msg)
    print(f"  FAIL: {msg}")


def coalesce(defaults, user):
    """Helm's value merge: user values win, maps merge recursively, null deletes a default."""
    out = dict(defaults)
    for k, v in (user or {}).items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = coalesce(out[k], v)
        else:
            out[k] = v
    return out


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f) or {}


DEFAULTS = load_yaml(os.path.join(CHART, "values.yaml"))
with open(os.path.join(CHART, "values.schema.json")) as f:
    SCHEMA = json.load(f)
jsonschema.Draft7Validator.check_schema(SCHEMA)
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)


def schema_errors(user_values):
    merged = coalesce(DEFAULTS, user_values)
    errs = []
    for e in sorted(VALIDATOR.iter_errors(merged), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in e.absolute_path) or "(root)"
        errs.append(f"{path}: {e.message}")
    return errs


def lint(user_values, label):
    """helm lint. helm-sdkpy lints with the chart's values.yaml only, so the values under test are
    merged into values.yaml of a scratch copy of the chart (the same coalescing helm lint -f does)."""
    scratch = os.path.join(WORK, "lint-" + re.sub(r"[^a-z0-9]+", "-", label.lower()), "is-messenger")
    shutil.copytree(CHART, scratch)
    with open(os.path.join(scratch, "values.yaml"), "w") as f:
        yaml.safe_dump(coalesce(DEFAULTS, user_values), f, sort_keys=False)
    cfg = helm_sdkpy.Configuration(namespace=NAMESPACE)
    result = asyncio.run(helm_sdkpy.Lint(cfg).run(scratch))
    messages = result.get("Messages") or []
    errors = result.get("Errors") or []
    bad = bool(errors) or any(int(m.get("Severity", 0)) >= 3 for m in messages)
    for m in messages:
        err = m.get("Err")
        text = err if isinstance(err, str) and err else (json.dumps(err) if err not in ({}, None, "") else "(no text from the library)")
        print(f"    lint [{SEVERITY.get(m.get('Severity'), m.get('Severity'))}] {m.get('Path')}: {text}")
    if bad and not any(isinstance(m.get("Err"), str) and m.get("Err") for m in messages):
        print("    (helm-sdkpy returns lint errors without their text; Helm's message is in the render step)")
    return not bad, len(errors)


# --- helm template through helm-sdkpy -------------------------------------------------------
# helm-sdkpy exposes install/upgrade but no client-only (template) mode. Install renders the chart
# (schema validation included) and then stores the release before creating anything, so it is
# pointed at a minimal API discovery stub on 127.0.0.1: the stub answers discovery, captures the
# release record Helm writes (it contains the rendered manifest and hooks) and refuses every
# write, so nothing is ever applied anywhere.
API = {
    ("", "v1"): [("configmaps", "ConfigMap", True), ("secrets", "Secret", True), ("services", "Service", True),
                 ("serviceaccounts", "ServiceAccount", True), ("namespaces", "Namespace", False), ("pods", "Pod", True)],
    ("apps", "v1"): [("deployments", "Deployment", True), ("statefulsets", "StatefulSet", True)],
    ("batch", "v1"): [("jobs", "Job", True)],
    ("autoscaling", "v2"): [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)],
    ("policy", "v1"): [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    ("networking.k8s.io", "v1"): [("networkpolicies", "NetworkPolicy", True), ("ingresses", "Ingress", True)],
    ("monitoring.coreos.com", "v1"): [("servicemonitors", "ServiceMonitor", True), ("prometheusrules", "PrometheusRule", True)],
}
KUBE_MINOR = os.environ.get("KUBE_VERSION", "1.33.0").split(".")[1]
CAPTURED = []


class Stub(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def status(self, code, reason, message):
        self.reply(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
                          "code": code, "message": message})

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/version":
            return self.reply(200, {"major": "1", "minor": KUBE_MINOR, "gitVersion": f"v1.{KUBE_MINOR}.0",
                                    "platform": "linux/amd64"})
        if path == "/api":
            return self.reply(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
        if path == "/apis":
            groups = [{"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                       "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}} for (g, v) in API if g]
            return self.reply(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        for (g, v), resources in API.items():
            if path == (f"/apis/{g}/{v}" if g else f"/api/{v}"):
                return self.reply(200, {
                    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{g}/{v}" if g else v,
                    "resources": [{"name": n, "singularName": k.lower(), "namespaced": ns, "kind": k,
                                   "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
                                  for n, k, ns in resources]})
        if path.endswith("/secrets"):  # Helm's release history lookup: none yet
            return self.reply(200, {"kind": "SecretList", "apiVersion": "v1", "metadata": {}, "items": []})
        return self.status(404, "NotFound", "not found")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?")[0].endswith("/secrets"):
            # Helm's release record: base64 of the gzipped release JSON (gzip base64 starts "H4sI").
            m = re.search(rb"H4sI[A-Za-z0-9+/=]+", body)
            if m:
                CAPTURED.append(m.group(0))
        return self.status(403, "Forbidden", "render-only API stub: writes are refused")

    do_PUT = do_PATCH = do_DELETE = do_POST


server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
threading.Thread(target=server.serve_forever, daemon=True).start()
KUBECONFIG = f"""apiVersion: v1
kind: Config
clusters:
- name: render-stub
  cluster:
    server: http://127.0.0.1:{server.server_address[1]}
contexts:
- name: render-stub
  context:
    cluster: render-stub
    user: render-stub
    namespace: {NAMESPACE}
current-context: render-stub
users:
- name: render-stub
  user: {{}}
"""


def render(user_values):
    """Returns (manifest_yaml, notes, error_text)."""
    CAPTURED.clear()
    cfg = helm_sdkpy.Configuration(namespace=NAMESPACE, kubeconfig=KUBECONFIG)
    error = None
    try:
        asyncio.run(helm_sdkpy.Install(cfg).run(RELEASE, CHART, values=user_values or None, wait=False, timeout=30))
    except helm_sdkpy.HelmError as e:
        error = str(e)
    if not CAPTURED:
        return None, None, error or "no release was rendered"
    rel = json.loads(gzip.decompress(base64.b64decode(CAPTURED[-1])))
    parts = [rel.get("manifest") or ""]
    for hook in rel.get("hooks") or []:
        parts.append(f"---\n# Source: {hook.get('path')} (hook: {', '.join(hook.get('events') or [])})\n{hook.get('manifest')}")
    return "\n".join(parts), (rel.get("info") or {}).get("notes"), None


def outbound_egress(label, manifest, values):
    """The outbound URLs' ports the operator lists are open from the gateway and integrations,
    and from no other service."""
    np = values["networkPolicy"]
    if not np["enabled"]:
        return
    wanted = set(np["egress"]["providers"]["ports"])
    others = {np["egress"][d]["port"] for d in ("postgres", "redis", "amqp", "otlp")} | {53, values["ports"]["grpc"]}
    for doc in yaml.safe_load_all(manifest):
        if not doc or doc.get("kind") != "NetworkPolicy":
            continue
        component = doc["metadata"]["labels"].get("app.kubernetes.io/component")
        ports = {p["port"] for rule in doc["spec"].get("egress") or [] for p in rule.get("ports") or []}
        if component in ("gateway", "integrations"):
            if not wanted <= ports:
                fail(f"{label}: {component} egress lacks outbound ports {sorted(wanted - ports)}")
        elif ports - others:
            fail(f"{label}: {component} egress opens {sorted(ports - others)}")
    print(f"    egress: outbound ports {sorted(wanted)} from gateway and integrations only")


def dashboard(label, manifest):
    """The Grafana dashboard, when rendered, is JSON whose every query reads a metric family the
    services export (or the process collector's)."""
    with open(os.path.join(ROOT, "shared", "platform", "src", "metrics.rs")) as f:
        families = set(re.findall(r'"(ism_[a-z_]+)"', f.read()))
    for doc in yaml.safe_load_all(manifest):
        if not doc or doc.get("kind") != "ConfigMap" or "is-messenger.json" not in (doc.get("data") or {}):
            continue
        board = json.loads(doc["data"]["is-messenger.json"])
        exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
        used = {re.sub(r"_bucket$", "", m) for e in exprs for m in re.findall(r"\b(ism_[a-z_]+)", e)}
        unknown = sorted(used - families)
        if unknown:
            fail(f"{label}: the dashboard queries unknown metrics {unknown}")
        else:
            print(f"    dashboard: {len(board['panels'])} panels, {len(used)} metric families, all exported")


cases = [("default values", os.path.join(CHART, "values.yaml"), {})]
for path in sorted(glob.glob(os.path.join(ROOT, "k8s", "examples", "values-*.yaml"))):
    cases.append((os.path.relpath(path, ROOT), path, load_yaml(path)))

for label, path, user in cases:
    print(f"  -- {label}")
    errs = schema_errors(user)
    if errs:
        for e in errs:
            print(f"    schema: {e}")
        fail(f"{label}: values do not match values.schema.json")
    else:
        print("    schema: ok (jsonschema, draft-07)")
    ok, nerr = lint(user, label)
    if ok:
        print("    lint: ok")
    else:
        fail(f"{label}: helm lint reported {nerr} error(s)")
    manifest, notes, error = render(user)
    if manifest is None:
        fail(f"{label}: helm render failed: {error}")
        continue
    name = "helm-" + re.sub(r"[^a-z0-9]+", "-", os.path.basename(path).lower().replace(".yaml", ""))
    with open(os.path.join(WORK, name + ".yaml"), "w") as f:
        f.write(manifest)
    if not notes or "grpcurl" not in notes:
        fail(f"{label}: NOTES.txt did not render")
    outbound_egress(label, manifest, coalesce(DEFAULTS, user))
    dashboard(label, manifest)
    print(f"    render: ok ({manifest.count(chr(10) + 'kind: ')} resources) -> {name}.yaml")

# --- negative test ---------------------------------------------------------------------------
bad_path = os.path.join(ROOT, "scripts", "testdata", "values-bad.yaml")
print(f"  -- negative test: {os.path.relpath(bad_path, ROOT)} must be rejected")
bad = load_yaml(bad_path)
expected = {
    "wrong type": ("services.gateway.replicaCount", "replicaCount"),
    "unknown service name": ("services", "billing"),
    "missing secret name": ("secrets.redis", "existingSecret"),
}
errs = schema_errors(bad)
for e in errs:
    print(f"    schema rejects: {e}")
for what, (where, key) in expected.items():
    if not any(e.startswith(where) and key in e for e in errs):
        fail(f"negative test: jsonschema did not report the {what} ({where} / {key})")
ok, _ = lint(bad, "values-bad")
if ok:
    fail("negative test: helm lint accepted values-bad.yaml")
else:
    print("    helm lint rejects it (as expected)")
manifest, _, error = render(bad)
if manifest is not None or not error:
    fail("negative test: Helm rendered values-bad.yaml")
else:
    print(f"    helm install/template rejects it: {error}")
    for what, (_, key) in expected.items():
        if key not in error:
            fail(f"negative test: Helm's message does not name {key} ({what})")
if not any(f.startswith("negative test") for f in failures):
    print("    negative test: ok (rejected, every offending key named)")

server.shutdown()
sys.exit(1 if failures else 0)
PY
then
  fail "helm chart checks"
fi

step "Kustomize renders (kubectl kustomize)"
for dir in "$ROOT/k8s/base" "$ROOT"/k8s/overlays/*/; do
  dir="${dir%/}"
  name="kustomize-$(basename "$dir")"
  if kubectl kustomize "$dir" >"$WORK/$name.yaml" 2>"$WORK/$name.err"; then
    echo "  ${dir#"$ROOT"/}: rendered"
  else
    sed 's/^/  /' "$WORK/$name.err"
    fail "kubectl kustomize ${dir#"$ROOT"/}"
  fi
done

step "k8s/base matches the chart's default render"
if [[ -s "$WORK/helm-values.yaml" && -s "$WORK/kustomize-base.yaml" ]]; then
  if ! "$PY" - "$WORK/helm-values.yaml" "$WORK/kustomize-base.yaml" <<'PY'
import copy, sys, yaml
load = lambda p: {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(open(p)) if d}
helm, base = load(sys.argv[1]), load(sys.argv[2])
diffs = []
# Known, intended differences: Helm hooks (migration Jobs, their ServiceAccount and NetworkPolicy)
# are an init container in the base; labels/annotations differ (Helm vs kustomize); the ConfigMap
# name carries kustomize's hash suffix.
cm = lambda objs: next((d["data"] for (k, _), d in objs.items() if k == "ConfigMap"), None)
if cm(helm) != cm(base):
    diffs.append("ConfigMap data")
for key, h in helm.items():
    if key[0] in ("Job", "ConfigMap") or key[1].endswith("-migrations"):
        continue
    b = base.get(key)
    if b is None:
        diffs.append(f"{key[0]}/{key[1]} missing from k8s/base")
        continue
    if key[0] == "ServiceAccount":
        same = h.get("automountServiceAccountToken") == b.get("automountServiceAccountToken")
    else:
        hs, bs = copy.deepcopy(h["spec"]), copy.deepcopy(b["spec"])
        if key[0] == "Deployment":
            for s in (hs, bs):
                s["template"]["metadata"] = {}
                s["template"]["spec"].pop("initContainers", None)
                for c in s["template"]["spec"]["containers"]:
                    c["envFrom"] = []
        same = hs == bs
    if not same:
        diffs.append(f"{key[0]}/{key[1]} differs")
extra = [k for k in base if k not in helm and k[0] != "ConfigMap"]
diffs += [f"{k[0]}/{k[1]} only in k8s/base" for k in extra]
for d in diffs:
    print(f"  {d}")
print(f"  {len(helm)} chart resources compared" + ("" if diffs else ": equivalent"))
sys.exit(1 if diffs else 0)
PY
  then fail "k8s/base drifted from the chart defaults (update one or the other)"; fi
else
  fail "missing renders for the base/chart comparison"
fi

step "Strict schema validation (kubernetes-validate, Kubernetes $KUBE_VERSION)"
for f in "$WORK"/kustomize-*.yaml; do
  [[ -s "$f" ]] || continue
  n="$(basename "$f" .yaml)"; echo "  -- $n"
  validate_manifests "$n" "$f" 0
done
shopt -s nullglob
renders=("$WORK"/helm-*.yaml)
[[ ${#renders[@]} -gt 0 ]] || fail "no Helm renders to validate"
for f in "${renders[@]}"; do
  n="$(basename "$f" .yaml)"; echo "  -- $n"
  validate_manifests "$n" "$f" 1
done

echo
if [[ $FAILURES -gt 0 ]]; then
  echo "lint-deploy: $FAILURES check(s) FAILED"
  exit 1
fi
echo "lint-deploy: all checks passed"
