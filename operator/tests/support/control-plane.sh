#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, without Docker: etcd + kube-apiserver +
# kube-controller-manager v1.20.2, built once from Debian's own source package.
#
#   control-plane.sh start   # prints `export KUBECONFIG=...`; state in $SOUK_KUBE_STATE
#   control-plane.sh stop    # stops what `start` started and removes the state directory
#   control-plane.sh build   # only install packages and build (cached) binaries
#
# Binaries are cached in $SOUK_KUBE_CACHE (default $HOME/.cache/souk/kube/v1.20.2), so only the
# first run on a machine builds (about 4 minutes on 2 cores). No kubelet or scheduler runs: pods
# are created but never started; tests play the kubelet's part through the API.
set -euo pipefail

KUBE_DEB_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
CACHE="${SOUK_KUBE_CACHE:-$HOME/.cache/souk/kube/v1.20.2}"
STATE="${SOUK_KUBE_STATE:-/dev/shm/souk-kube-$$}"
PACKAGES=(golang-go etcd-server golang-github-modern-go-reflect2-dev dpkg-dev rsync openssl curl gcc libc6-dev ${EXTRA_PACKAGES[@]+"${EXTRA_PACKAGES[@]}"})

log() { echo "control-plane: $*" >&2; }

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)

built() {
  local b
  for b in "${BINARIES[@]}" pause; do [[ -x "$CACHE/$b" ]] || return 1; done
}

# A deb-src entry for the machine's own Debian archive: the URIs of its configured `deb` sources
# for the release's main suite (deb822 *.sources or one-line sources.list), never a fixed host.
deb_src_entry() {
  python3 - "$@" <<'PY'
import glob, re, sys
uris = []
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        f = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            k, v = line.split(":", 1)
            f[k.strip().lower()] = v.split()
        if "deb" in f.get("types", []) and "bookworm" in f.get("suites", []):
            uris += [u for u in f.get("uris", []) if u not in uris]
for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        w = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(w) >= 3 and w[0] == "deb" and w[2] == "bookworm" and w[1] not in uris:
            uris.append(w[1])
if not uris:
    sys.exit("control-plane: no Debian bookworm `deb` source in /etc/apt to derive a deb-src entry from")
print("Types: deb-src")
print("URIs: " + " ".join(uris))
print("Suites: bookworm bookworm-updates")
print("Components: main")
print("Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg")
PY
}

build() {
  install_packages
  built && return
  mkdir -p "$CACHE"
  exec 9>"$CACHE.lock"
  flock 9 # another run may be building right now
  built && return
  log "building ${BINARIES[*]} v1.20.2 from Debian source (once)"
  local src_list=/etc/apt/sources.list.d/souk-deb-src.sources
  if [[ ! -f $src_list ]]; then
    deb_src_entry >"$src_list.tmp"
    mv "$src_list.tmp" "$src_list"
    apt-get update -qq
  fi
  local work
  work="$(mktemp -d /var/tmp/souk-kube-build.XXXXXX)"
  (
    cd "$work"
    apt-get source -qq --download-only "kubernetes=$KUBE_DEB_VERSION" >/dev/null
    dpkg-source -x ./kubernetes_*.dsc src >/dev/null
    cd src
    # Debian's vendored reflect2 panics on go1.19 at the first CRD create; use Debian's 1.0.2.
    local r=vendor/github.com/modern-go/reflect2
    rm -f "$r"/*.go "$r"/*.s
    cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go "$r"/
    cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$r"/ 2>/dev/null || true
    rm -f "$r"/*_test.go
    GOFLAGS= CGO_ENABLED=0 make WHAT="${BINARIES[*]/#/cmd/}" >build.log 2>&1 ||
      { tail -40 build.log >&2; exit 1; }
    # The pod sandbox ("pause") image's one binary, from the same source.
    gcc -Os -static -o pause build/pause/linux/pause.c
  )
  mkdir -p "$CACHE"
  local found
  for b in "${BINARIES[@]}"; do
    found="$(find "$work/src/_output" -type f -name "$b" -perm -u+x | head -1)"
    [[ -n $found ]] || { log "$b not built"; exit 1; }
    install -m 0755 "$found" "$CACHE/$b"
  done
  install -m 0755 "$work/src/pause" "$CACHE/pause"
  rm -rf "$work"
  log "binaries cached in $CACHE"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

certs() {
  local d="$STATE/pki"
  mkdir -p "$d"
  cd "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=souk-test-ca" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
  # X.509 v3 with key usages: rustls (kube-rs) refuses v1 certificates.
  printf '%s\n' 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc,IP:10.0.0.1' \
    'basicConstraints=CA:FALSE' 'keyUsage=digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' >san.ext
  printf '%s\n' 'basicConstraints=CA:FALSE' 'keyUsage=digitalSignature,keyEncipherment' 'extendedKeyUsage=clientAuth' >client.ext
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 2 -extfile san.ext 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=admin" 2>/dev/null
  openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 2 -extfile client.ext 2>/dev/null
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  cd - >/dev/null
}

kubeconfig() {
  local port=$1 d="$STATE/pki"
  cat >"$STATE/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: souk-test
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority-data: $(base64 -w0 "$d/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(base64 -w0 "$d/admin.crt")
    client-key-data: $(base64 -w0 "$d/admin.key")
contexts:
- name: souk-test
  context: {cluster: souk-test, user: admin, namespace: default}
current-context: souk-test
EOF
  chmod 600 "$STATE/kubeconfig"
}

start() {
  build
  mkdir -p "$STATE"
  chmod 700 "$STATE"
  certs
  local etcd_port etcd_peer api_port
  etcd_port=$(free_port)
  etcd_peer=$(free_port)
  api_port=$(free_port)
  local d="$STATE/pki"
  etcd --name souk --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "souk=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync \
    >"$STATE/etcd.log" 2>&1 &
  echo $! >"$STATE/etcd.pid"
  "$CACHE/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" --insecure-port 0 \
    --tls-cert-file "$d/apiserver.crt" --tls-private-key-file "$d/apiserver.key" \
    --client-ca-file "$d/ca.crt" \
    --service-account-key-file "$d/sa.pub" --service-account-signing-key-file "$d/sa.key" \
    --service-account-issuer https://kubernetes.default.svc --api-audiences https://kubernetes.default.svc \
    --service-cluster-ip-range 10.0.0.0/24 --authorization-mode RBAC \
    --endpoint-reconciler-type none --enable-priority-and-fairness=false \
    >"$STATE/apiserver.log" 2>&1 &
  echo $! >"$STATE/apiserver.pid"
  kubeconfig "$api_port"
  local ok=""
  for _ in $(seq 1 120); do
    if curl -sf --cacert "$d/ca.crt" --cert "$d/admin.crt" --key "$d/admin.key" \
      "https://127.0.0.1:$api_port/readyz" >/dev/null 2>&1; then
      ok=1
      break
    fi
    sleep 0.5
  done
  [[ -n $ok ]] || { tail -30 "$STATE/apiserver.log" >&2; log "apiserver did not get ready"; exit 1; }
  "$CACHE/kube-controller-manager" --kubeconfig "$STATE/kubeconfig" --leader-elect=false \
    --bind-address 127.0.0.1 --secure-port 0 --port 0 \
    --service-account-private-key-file "$d/sa.key" --root-ca-file "$d/ca.crt" \
    --use-service-account-credentials=false \
    --controllers '*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service,-route,-attachdetach,-persistentvolume-binder,-persistentvolume-expander,-ttl' \
    >"$STATE/controller-manager.log" 2>&1 &
  echo $! >"$STATE/controller-manager.pid"
  ok=""
  for _ in $(seq 1 120); do
    if curl -sf --cacert "$d/ca.crt" --cert "$d/admin.crt" --key "$d/admin.key" \
      "https://127.0.0.1:$api_port/api/v1/namespaces/default/serviceaccounts/default" >/dev/null 2>&1; then
      ok=1
      break
    fi
    sleep 0.5
  done
  [[ -n $ok ]] || { tail -30 "$STATE/controller-manager.log" >&2; log "controller-manager did not create serviceaccount/default"; exit 1; }
  log "ready: https://127.0.0.1:$api_port (state $STATE)"
  echo "export KUBECONFIG=$STATE/kubeconfig"
}

stop() {
  [[ -d $STATE ]] || return 0
  for c in controller-manager apiserver etcd; do
    if [[ -f "$STATE/$c.pid" ]]; then
      local pid
      pid=$(cat "$STATE/$c.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$STATE"
  log "stopped ($STATE removed)"
}

# node.sh sources this file for `build`, `free_port` and the certificates.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    build) build ;;
    *) echo "usage: $0 start|stop|build" >&2; exit 2 ;;
  esac
fi
