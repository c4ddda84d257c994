#!/usr/bin/env bash
# A real single-node Kubernetes v1.20.2 without Docker: the control plane of control-plane.sh
# plus kube-scheduler, kubelet and kube-proxy, containerd + runc + CNI plugins from Debian, a
# bridge network, and dnsmasq as cluster DNS fed from Services. Pods really run.
#
#   node.sh start          # prints `export KUBECONFIG=...`; returns once the node is Ready
#   node.sh import TAR...  # imports OCI image tarballs into the node's containerd
#   node.sh guard          # prints the network guard's counters; fails if it stopped anything
#   node.sh stop           # stops what `start` started (recorded PIDs) and removes the
#                          # bridge, iptables chains, mounts, cgroups and state it made
#
# The network guard is not optional: every process started here is in a net_cls cgroup whose
# outgoing traffic may only go to loopback, the bridge, the pod range and the service range
# (anything else is REJECTed and counted); pod traffic entering from the bridge for anything
# else is DROPped in the raw table (counted); CNI does no masquerading; kubelet's cloud
# metadata lookup is off and it has its own resolv.conf; DNS never forwards.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
EXTRA_PACKAGES=(containerd runc containernetworking-plugins iptables conntrack dnsmasq-base)
# shellcheck source=control-plane.sh
source "$HERE/control-plane.sh"
STATE="${SOUK_NODE_STATE:-/dev/shm/souk-node}"
BRIDGE=soukbr0
NODE_IP=10.244.0.1
NODE_NAME=souk-node
POD_CIDR=10.244.0.0/24
CLUSTER_CIDR=10.244.0.0/16
SVC_CIDR=10.96.0.0/24
CLASSID=0x50560001 # net_cls class of everything started here
GUARD=SOUK-NODE-GUARD
RAW_GUARD=SOUK-NODE-RAW
PAUSE_IMAGE=localhost/pause:3.2
SOCK="$STATE/containerd.sock"
# Directories kubelet and CNI use whatever their configured roots (removed on stop if made here).
FIXED_DIRS=(/var/lib/kubelet /var/log/pods /var/log/containers /var/lib/cni)

pki() { echo "$STATE/pki"; }

node_certs() {
  local d
  d="$(pki)"
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=souk-node-ca" 2>/dev/null
    printf '%s\n' 'basicConstraints=CA:FALSE' 'keyUsage=digitalSignature,keyEncipherment' 'extendedKeyUsage=clientAuth' >client.ext
    printf '%s\n' "subjectAltName=IP:$NODE_IP,IP:127.0.0.1,IP:${SVC_CIDR%.0/*}.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:$NODE_NAME" \
      'basicConstraints=CA:FALSE' 'keyUsage=digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' >server.ext
    sign() { # name subject extfile
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 2 -extfile "$3" 2>/dev/null
    }
    sign apiserver "/CN=kube-apiserver" server.ext
    sign kubelet-serving "/CN=$NODE_NAME" server.ext
    sign admin "/O=system:masters/CN=admin" client.ext
    sign kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" client.ext
    sign apiserver-kubelet "/O=system:masters/CN=kube-apiserver-kubelet-client" client.ext
    sign controller-manager "/CN=system:kube-controller-manager" client.ext
    sign scheduler "/CN=system:kube-scheduler" client.ext
    sign proxy "/CN=system:kube-proxy" client.ext
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

kubeconfig_for() { # user server file
  local d
  d="$(pki)"
  cat >"$3" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: souk-node
  cluster:
    server: $2
    certificate-authority-data: $(base64 -w0 "$d/ca.crt")
users:
- name: $1
  user:
    client-certificate-data: $(base64 -w0 "$d/$1.crt")
    client-key-data: $(base64 -w0 "$d/$1.key")
contexts:
- name: souk-node
  context: {cluster: souk-node, user: $1, namespace: default}
current-context: souk-node
EOF
  chmod 600 "$3"
}

# Runs a daemon in the background, logging to $STATE/NAME.log, its PID in $STATE/NAME.pid.
daemon() {
  local name=$1
  shift
  "$@" >"$STATE/$name.log" 2>&1 &
  echo $! >"$STATE/$name.pid"
  echo "$name" >>"$STATE/daemons"
}

wait_until() { # what seconds command...
  local what=$1 secs=$2
  shift 2
  local i
  for ((i = 0; i < secs * 2; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "timed out after ${secs}s waiting for $what"
  return 1
}

cgroup_mounts() {
  local c
  for c in net_cls net_prio hugetlb perf_event; do
    if ! grep -qE "^cgroup /sys/fs/cgroup/$c " /proc/mounts; then
      mkdir -p "/sys/fs/cgroup/$c"
      mount -t cgroup -o "$c" "$c" "/sys/fs/cgroup/$c"
      echo "/sys/fs/cgroup/$c" >>"$STATE/mounts"
    fi
  done
  # kubelet's cgroupRoot, in every hierarchy; in net_cls it is the guard's class (children
  # inherit the classid, so pods carry it too).
  for c in /sys/fs/cgroup/*/; do
    [[ $c == */unified/ ]] && continue
    mkdir -p "$c/souk-node"
  done
  cat /sys/fs/cgroup/cpuset/cpuset.cpus >/sys/fs/cgroup/cpuset/souk-node/cpuset.cpus
  cat /sys/fs/cgroup/cpuset/cpuset.mems >/sys/fs/cgroup/cpuset/souk-node/cpuset.mems
  echo "$CLASSID" >/sys/fs/cgroup/net_cls/souk-node/net_cls.classid
  # This shell and everything it starts from now on (pods included) carry the class.
  echo $$ >/sys/fs/cgroup/net_cls/souk-node/cgroup.procs
}

network() {
  ip link add "$BRIDGE" type bridge
  ip addr add "$NODE_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  iptables -N "$GUARD"
  iptables -A "$GUARD" -o lo -j RETURN
  iptables -A "$GUARD" -o "$BRIDGE" -j RETURN
  iptables -A "$GUARD" -d "$CLUSTER_CIDR" -j RETURN
  iptables -A "$GUARD" -d "$SVC_CIDR" -j RETURN
  iptables -A "$GUARD" -j REJECT
  iptables -I OUTPUT 1 -m cgroup --cgroup "$CLASSID" -j "$GUARD"
  iptables -t raw -N "$RAW_GUARD"
  iptables -t raw -A "$RAW_GUARD" -d "$CLUSTER_CIDR" -j RETURN
  iptables -t raw -A "$RAW_GUARD" -d "$SVC_CIDR" -j RETURN
  iptables -t raw -A "$RAW_GUARD" -j DROP
  iptables -t raw -I PREROUTING 1 -i "$BRIDGE" -j "$RAW_GUARD"
  mkdir -p "$STATE/cni" "$STATE/dns"
  cat >"$STATE/cni/10-souk.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "souk",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$STATE/cni-ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  printf 'nameserver %s\nsearch cluster.local\n' "$NODE_IP" >"$STATE/resolv.conf"
}

containerd_start() {
  cat >"$STATE/containerd.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni"
EOF
  daemon containerd containerd --config "$STATE/containerd.toml"
  wait_until containerd 30 ctr --address "$SOCK" version
  # The pod sandbox image: pause, built from the Kubernetes source with the binaries.
  local tmp
  tmp="$(mktemp -d)"
  install -D -m 0755 "$CACHE/pause" "$tmp/rootfs/pause"
  echo '{"Entrypoint": ["/pause"], "User": "65535:65535"}' >"$tmp/config.json"
  python3 "$HERE/../../../scripts/image/oci.py" rootfs "$tmp/rootfs" "$tmp/config.json" "$PAUSE_IMAGE" "$tmp/pause.tar" >/dev/null
  import_images "$tmp/pause.tar"
  rm -rf "$tmp"
}

import_images() {
  local t
  for t in "$@"; do
    ctr --address "$SOCK" -n k8s.io images import --no-unpack=false "$t" >&2
  done
}

control_plane() {
  local d etcd_port etcd_peer
  d="$(pki)"
  etcd_port=$(free_port)
  etcd_peer=$(free_port)
  API_PORT=$(free_port)
  echo "$API_PORT" >"$STATE/api-port"
  daemon etcd etcd --name souk --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "souk=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync
  daemon apiserver "$CACHE/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port "$API_PORT" --insecure-port 0 \
    --tls-cert-file "$d/apiserver.crt" --tls-private-key-file "$d/apiserver.key" --client-ca-file "$d/ca.crt" \
    --kubelet-client-certificate "$d/apiserver-kubelet.crt" --kubelet-client-key "$d/apiserver-kubelet.key" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-key-file "$d/sa.pub" --service-account-signing-key-file "$d/sa.key" \
    --service-account-issuer https://kubernetes.default.svc --api-audiences https://kubernetes.default.svc \
    --service-cluster-ip-range "$SVC_CIDR" --authorization-mode Node,RBAC \
    --enable-admission-plugins NodeRestriction --enable-priority-and-fairness=false
  local server="https://$NODE_IP:$API_PORT"
  kubeconfig_for admin "$server" "$STATE/kubeconfig"
  for u in kubelet controller-manager scheduler proxy; do kubeconfig_for "$u" "$server" "$STATE/$u.kubeconfig"; done
  wait_until "the API server" 60 curl -sf --cacert "$d/ca.crt" --cert "$d/admin.crt" --key "$d/admin.key" "$server/readyz"
  daemon controller-manager "$CACHE/kube-controller-manager" --kubeconfig "$STATE/controller-manager.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port 0 --port 0 \
    --service-account-private-key-file "$d/sa.key" --root-ca-file "$d/ca.crt" --use-service-account-credentials \
    --controllers '*,-cloud-node-lifecycle,-route,-service' \
    --allocate-node-cidrs --cluster-cidr "$CLUSTER_CIDR" --node-cidr-mask-size 24 --service-cluster-ip-range "$SVC_CIDR"
  daemon scheduler "$CACHE/kube-scheduler" --kubeconfig "$STATE/scheduler.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port 0 --port 0
}

kubelet_start() {
  local d
  d="$(pki)"
  cat >"$STATE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $(free_port)
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $(free_port)
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $d/ca.crt}
authorization: {mode: AlwaysAllow}
tlsCertFile: $d/kubelet-serving.crt
tlsPrivateKeyFile: $d/kubelet-serving.key
cgroupDriver: cgroupfs
cgroupRoot: /souk-node
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
resolvConf: $STATE/resolv.conf
failSwapOn: false
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
EOF
  # kubelet 1.20 links the AWS credential provider, which calls the cloud metadata address.
  AWS_EC2_METADATA_DISABLED=true daemon kubelet "$CACHE/kubelet" --config "$STATE/kubelet.yaml" \
    --kubeconfig "$STATE/kubelet.kubeconfig" --root-dir "$STATE/kubelet" --cert-dir "$STATE/kubelet-pki" \
    --container-runtime remote --container-runtime-endpoint "unix://$SOCK" --runtime-request-timeout 2m \
    --node-ip "$NODE_IP" --hostname-override "$NODE_NAME"
  daemon proxy "$CACHE/kube-proxy" --kubeconfig "$STATE/proxy.kubeconfig" --proxy-mode iptables \
    --cluster-cidr "$CLUSTER_CIDR" --hostname-override "$NODE_NAME" --conntrack-max-per-core 0 \
    --metrics-bind-address "127.0.0.1:$(free_port)" --healthz-bind-address "127.0.0.1:$(free_port)"
}

# Cluster DNS: dnsmasq answers from a hosts directory that the poller rewrites every second
# from Services and Endpoints (headless Services, StatefulSet pods); it never forwards.
dns_start() {
  daemon dnsmasq dnsmasq --keep-in-foreground --no-resolv --no-hosts --hostsdir="$STATE/dns" \
    --address=/#/ --bind-interfaces --listen-address="$NODE_IP" --port 53 --user=root \
    --pid-file="$STATE/dnsmasq.real.pid"
  daemon dns-poller python3 "$HERE/cluster-dns.py" "$STATE/kubeconfig" "$STATE/dns/cluster"
}

start() {
  [[ ! -e $STATE ]] || { log "$STATE exists: stop the running node first (node.sh stop)"; exit 1; }
  build
  mkdir -p "$STATE"
  chmod 700 "$STATE"
  local d
  for d in "${FIXED_DIRS[@]}"; do [[ -e $d ]] || echo "$d" >>"$STATE/made-dirs"; done
  # kubelet and kube-proxy add KUBE-* chains; remove them on stop unless some were here before.
  iptables-save | grep -q '^:KUBE-' || touch "$STATE/kube-chains-ours"
  cgroup_mounts
  network
  node_certs
  containerd_start
  control_plane
  kubelet_start
  export KUBECONFIG="$STATE/kubeconfig"
  dns_start
  wait_until "node $NODE_NAME Ready" 120 bash -c \
    "kubectl get node $NODE_NAME -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
  wait_until "serviceaccount/default" 60 kubectl get serviceaccount default
  log "node Ready: $NODE_NAME at $NODE_IP (state $STATE)"
  echo "export KUBECONFIG=$STATE/kubeconfig"
}

# The guard's counters; non-zero means something tried to leave the sandbox.
guard() {
  local rejected dropped
  rejected=$(iptables -L "$GUARD" -v -n -x | awk '$3 == "REJECT" { print $1 }')
  dropped=$(iptables -t raw -L "$RAW_GUARD" -v -n -x | awk '$3 == "DROP" { print $1 }')
  echo "network guard: $rejected packets rejected (processes), $dropped dropped (pods)"
  if [[ $rejected != 0 || $dropped != 0 ]]; then
    iptables -L "$GUARD" -v -n -x >&2
    iptables -t raw -L "$RAW_GUARD" -v -n -x >&2
    return 1
  fi
}

stop() {
  [[ -d $STATE ]] || return 0
  local name pid
  if [[ -f $STATE/daemons ]]; then
    # Reverse start order: kubelet and the control plane before containerd.
    for name in $(tac "$STATE/daemons"); do
      [[ -f $STATE/$name.pid ]] || continue
      pid=$(cat "$STATE/$name.pid")
      if [[ $name == kubelet ]] && [[ -S $SOCK ]]; then
        # Pods first, while containerd still runs: their sandboxes, mounts and veths go too.
        kill "$pid" 2>/dev/null || true
        crictl_stop_all || true
      fi
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    done
  fi
  # Leftover container processes (shims) of this node's containerd.
  pkill_shims
  "$CACHE/kube-proxy" --cleanup >/dev/null 2>&1 || true
  [[ -f $STATE/kube-chains-ours ]] && remove_kube_chains
  iptables -D OUTPUT -m cgroup --cgroup "$CLASSID" -j "$GUARD" 2>/dev/null || true
  iptables -F "$GUARD" 2>/dev/null || true
  iptables -X "$GUARD" 2>/dev/null || true
  iptables -t raw -D PREROUTING -i "$BRIDGE" -j "$RAW_GUARD" 2>/dev/null || true
  iptables -t raw -F "$RAW_GUARD" 2>/dev/null || true
  iptables -t raw -X "$RAW_GUARD" 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null || true
  # Mounts under the state dir (pod volumes, overlay snapshots, sandboxes' /dev/shm).
  local m
  for m in $(awk -v s="$STATE/" 'index($2, s) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount -l "$m" || true
  done
  # This shell leaves the class so the cgroups can go.
  echo $$ >/sys/fs/cgroup/net_cls/cgroup.procs 2>/dev/null || true
  find /sys/fs/cgroup/*/souk-node -depth -type d -exec rmdir {} \; 2>/dev/null || true
  if [[ -f $STATE/mounts ]]; then
    while read -r m; do umount "$m" 2>/dev/null && rmdir "$m" 2>/dev/null || true; done <"$STATE/mounts"
  fi
  if [[ -f $STATE/made-dirs ]]; then
    while read -r d; do rm -rf "$d"; done <"$STATE/made-dirs"
  fi
  rm -rf "$STATE"
  log "node stopped ($STATE removed)"
}

# The KUBE-* chains kubelet and kube-proxy made, and the jumps to them.
remove_kube_chains() {
  local t rule chain
  for t in filter nat mangle raw; do
    { iptables -t "$t" -S | grep -E '^-A [A-Z]+ .*-j KUBE-' | grep -vE '^-A KUBE-' || true; } |
      sed 's/^-A /-D /' | while read -r rule; do eval "iptables -t $t $rule" || true; done
    for chain in $(iptables -t "$t" -S | awk '$1 == "-N" && $2 ~ /^KUBE-/ { print $2 }'); do
      iptables -t "$t" -F "$chain"
    done
    for chain in $(iptables -t "$t" -S | awk '$1 == "-N" && $2 ~ /^KUBE-/ { print $2 }'); do
      iptables -t "$t" -X "$chain"
    done
  done
}

crictl_stop_all() {
  local ids
  ids=$(ctr --address "$SOCK" -n k8s.io tasks ls -q 2>/dev/null || true)
  for id in $ids; do ctr --address "$SOCK" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
}

# The shims (and container processes) of this node's containerd, by the PIDs it recorded.
pkill_shims() {
  local f
  for f in "$STATE"/containerd/state/io.containerd.runtime.v2.task/*/*/{init,shim}.pid; do
    [[ -f $f ]] && kill -9 "$(cat "$f")" 2>/dev/null || true
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  guard) guard ;;
  import) shift; import_images "$@" ;;
  *) echo "usage: $0 start|stop|guard|import TAR..." >&2; exit 2 ;;
esac
