#!/usr/bin/env bash
# End-to-end on a real node (node.sh): images made from the release binaries without Docker,
# the chart installed with the operator running in the cluster, a Shop with a managed
# PostgreSQL (the image of scripts/image/postgres), then:
#   - every migration Job ran `souk migrate` and completed; six Deployments Available through
#     their readiness probes; the Shop Ready with its status fields;
#   - the gateway answers through its Service; `helm test` passes;
#   - the operator settles: over 20 s no child's generation moves and its reconcile counter
#     (its own /metrics) grows by at most one;
#   - drift: a deleted Service and a hand-scaled Deployment come back;
#   - upgrade: `version` moves to UP_TAG, whose binary carries one more product migration
#     (upgrade-binaries.sh builds it): while that Job runs all six Deployments stay on TAG, the
#     Shop Ready and the gateway answering; then all roll, Ready at UP_TAG, the migration in
#     souk_product's _sqlx_migrations, no new ReplicaSet older than the last Job's end;
#   - a failed upgrade to BAD_TAG (a migration that fails): Degraded/MigrationFailed naming
#     product, every Deployment still on UP_TAG, Ready at UP_TAG, nothing of it recorded;
#   - rollback to TAG: its Jobs accept the newer migration, Ready at TAG; a trickle of reads
#     through the gateway loses none from the upgrade to here;
#   - deleting the Shop removes its children and its database volume claim;
#   - the network guard stopped nothing.
#
# Needs kubectl and helm on PATH (ci.sh provides them) and the release binaries
# (`cargo build --release -p souk -p souk-operator`, in $CARGO_TARGET_DIR).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
CACHE="$HOME/.cache/souk"
TARGET="${CARGO_TARGET_DIR:-$CACHE/target}"
PROFILE="${SOUK_E2E_PROFILE:-release}" # the binaries the images are made from
TAG="${SOUK_E2E_TAG:-e2e1}"
UP_TAG=e2e2      # TAG plus a harmless product migration (upgrade-binaries.sh)
BAD_TAG=e2e3-bad # UP_TAG plus a product migration that fails
NS=shop
SHOP=demo
IMAGES="$CACHE/images"
ADMIN_PASSWORD="e2e-admin-$(date +%s)"

step() { printf '\n==> %s\n' "$*"; }
fail() { echo "node-e2e: FAILED: $*" >&2; exit 1; }
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
since() { echo $(($(date +%s) - $1)); }

wait_for() { # what seconds command...
  local what=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  fail "timed out after ${secs}s waiting for $what"
}

host_pids=()
node_ours=""
NODE_STATE="${SOUK_NODE_STATE:-/dev/shm/souk-node}"
cleanup() {
  local rc=$?
  local pid
  for pid in "${host_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # Leave the guard's class, so node.sh can remove it.
  echo $$ >/sys/fs/cgroup/net_cls/cgroup.procs 2>/dev/null || true
  if ((rc != 0)) && [[ -n ${KUBECONFIG:-} ]]; then
    echo "--- diagnostics" >&2
    kubectl get all,pvc,pv -A -o wide >&2 || true
    kubectl -n "$NS" get shop "$SHOP" -o yaml >&2 || true
    kubectl -n souk-system logs deploy/souk-souk-operator --tail 30 >&2 || true
  fi
  # Only a node this run started: never another run's.
  if [[ -n $node_ours ]]; then
    echo "stopping the node" >&2
    bash "$HERE/node.sh" stop || rc=1
  fi
  exit "$rc"
}
trap cleanup EXIT

step "images (OCI tarballs, no Docker)"
for b in souk souk-operator; do
  [[ -x $TARGET/$PROFILE/$b ]] || fail "$TARGET/$PROFILE/$b missing: cargo build --release -p souk -p souk-operator"
done
mkdir -p "$IMAGES"
work="$(mktemp -d)"
python3 "$ROOT/scripts/image/oci.py" dockerfile "$ROOT/Dockerfile" "$TARGET/$PROFILE/souk" \
  "localhost/souk:$TAG" "$work/souk.tar"
python3 "$ROOT/scripts/image/oci.py" dockerfile "$ROOT/operator/Dockerfile" "$TARGET/$PROFILE/souk-operator" \
  "localhost/souk-operator:$TAG" "$work/operator.tar"
# The two upgrade releases: builds of a scratch copy of this tree with extra migrations.
t=$(date +%s)
up_dir="$(bash "$HERE/upgrade-binaries.sh" "$UP_TAG" "$BAD_TAG")"
echo "upgrade binaries ($UP_TAG, $BAD_TAG) ready in $(since "$t") s"
for t in "$UP_TAG" "$BAD_TAG"; do
  python3 "$ROOT/scripts/image/oci.py" dockerfile "$ROOT/Dockerfile" "$up_dir/$t/souk" \
    "localhost/souk:$t" "$work/souk-$t.tar"
done
pg_version="$(dpkg-query -W -f='${Version}' postgresql-15 2>/dev/null || echo none)"
pg_tar="$IMAGES/souk-postgres-15-$pg_version.tar"
if [[ ! -f $pg_tar ]]; then
  bash "$ROOT/scripts/image/postgres/build.sh" localhost/souk-postgres:15 "$pg_tar.tmp"
  mv "$pg_tar.tmp" "$pg_tar"
fi

step "node"
started=$(date +%s)
if [[ -e $NODE_STATE ]]; then
  # Another run's node: never touch it while any of its daemons lives; a dead one's leftovers
  # (bridge, chains, mounts) are cleared so this run can start.
  for pidfile in "$NODE_STATE"/*.pid; do
    [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null &&
      fail "$NODE_STATE exists and its $(basename "$pidfile" .pid) runs: another node runs (node.sh stop ends it)"
  done
  echo "clearing what a dead node left in $NODE_STATE"
  bash "$HERE/node.sh" stop
fi
node_ours=1
node_env="$(bash "$HERE/node.sh" start)" || fail "the node did not start"
eval "$node_env"
echo "node Ready in $(since "$started") s"
bash "$HERE/node.sh" import "$work/souk.tar" "$work/souk-$UP_TAG.tar" "$work/souk-$BAD_TAG.tar" \
  "$work/operator.tar" "$pg_tar"
rm -rf "$work"

step "chart: CRD, RBAC, operator in the cluster (leader election)"
# v1.20's OpenAPI does not know the CRD's CEL rules (x-kubernetes-validations, enforced from
# 1.25): skip Helm's client-side check; the server drops the field on create.
kubectl create namespace "$NS" # the chart's Role for the operator lives there
helm install souk "$ROOT/helm/souk-operator" -n souk-system --create-namespace \
  --disable-openapi-validation \
  --set image.repository=localhost/souk-operator --set image.tag="$TAG" --set image.pullPolicy=Never \
  --set watchNamespace="$NS" \
  --set test.shop="$SHOP" --set test.namespace="$NS" --set test.image="localhost/souk:$TAG" \
  --wait --timeout 3m
kubectl -n souk-system get pods -o wide

step "host services for the pods, on the bridge address: Stripe emulator, SMTP sink"
# This shell and what it starts are guarded like the node's own processes.
echo $$ >/sys/fs/cgroup/net_cls/souk-node/cgroup.procs
NODE_IP=10.244.0.1
maildir="$(mktemp -d)"
mkdir -p "$maildir"/{cur,new,tmp}
chmod 755 "$maildir"
stripe_port=$(free_port)
python3 "$ROOT/tests/support/stripe_emulator.py" --port "$stripe_port" >"$maildir.stripe.log" 2>&1 &
host_pids+=($!)
# The emulator listens on loopback only; pods reach it through this forwarder.
python3 "$HERE/forward.py" "$NODE_IP:$stripe_port" "127.0.0.1:$stripe_port" &
host_pids+=($!)
python3 -m aiosmtpd -n -l "$NODE_IP:2525" -c aiosmtpd.handlers.Mailbox "$maildir" &
host_pids+=($!)
wait_for "the Stripe emulator" 30 curl -sf -o /dev/null -u sk_test_e2e: "http://$NODE_IP:$stripe_port/v1/customers"

step "secrets, a volume for PostgreSQL, the Shop"
kubectl -n "$NS" create secret generic stripe --from-literal=secret-key=sk_test_e2e \
  --from-literal=webhook-secret=whsec_e2e
kubectl -n "$NS" create secret generic smtp --from-literal=url="smtp://$NODE_IP:2525"
kubectl -n "$NS" create secret generic admin --from-literal=email=admin@example.com \
  --from-literal=password="$ADMIN_PASSWORD"
# No dynamic provisioner here: a pre-created hostPath volume the StatefulSet's claim binds to.
pv_dir="$NODE_STATE/pv/data-0"
mkdir -p "$pv_dir"
chown 999:999 "$pv_dir"
kubectl apply -f - <<EOF
apiVersion: v1
kind: PersistentVolume
metadata: {name: souk-e2e-data-0}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Delete
  storageClassName: ""
  hostPath: {path: $pv_dir, type: Directory}
EOF
applied=$(date +%s)
kubectl -n "$NS" apply -f - <<EOF
apiVersion: souk.dev/v1alpha1
kind: Shop
metadata: {name: $SHOP}
spec:
  image: localhost/souk
  version: "$TAG"
  database:
    mode: managed
    managed: {image: "localhost/souk-postgres:15", storage: 1Gi}
  admin:
    email: {name: admin, key: email}
    password: {name: admin, key: password}
  stripe:
    secretKey: {name: stripe, key: secret-key}
    webhookSecret: {name: stripe, key: webhook-secret}
    apiBase: "http://$NODE_IP:$stripe_port/"
  smtp:
    url: {name: smtp, key: url}
    from: shop@example.com
EOF

step "Ready"
ready() {
  [[ $(kubectl -n "$NS" get shop "$SHOP" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]]
}
wait_for "Shop Ready" 300 ready
echo "apply -> Ready: $(since "$applied") s"
for svc in user product cart order payment; do
  job="$(kubectl -n "$NS" get jobs -l "app.kubernetes.io/component=migrate,souk.dev/service=$svc" -o name)"
  [[ -n $job ]] || fail "no migration Job for $svc"
  [[ $(kubectl -n "$NS" get "$job" -o jsonpath='{.status.succeeded}') == 1 ]] || fail "$job did not succeed"
  kubectl -n "$NS" logs "$job" | grep -q "$svc: migrations applied" || fail "$job did not run souk migrate"
done
for svc in user product cart order payment gateway; do
  [[ $(kubectl -n "$NS" get deploy "$SHOP-$svc" -o jsonpath='{.status.conditions[?(@.type=="Available")].status}') == True ]] ||
    fail "$SHOP-$svc not Available"
done
[[ $(kubectl -n "$NS" get shop "$SHOP" -o jsonpath='{.status.version}') == "$TAG" ]] || fail "status.version"
[[ $(kubectl -n "$NS" get shop "$SHOP" -o jsonpath='{.status.database}') == statefulset ]] || fail "status.database"
kubectl -n "$NS" get shop "$SHOP"
# Its first line may not be readable through the kubelet yet right after Ready: wait for it.
first_log_line_is_json() {
  # Python reads all of it: `head` would leave kubectl a broken pipe (a failure under pipefail).
  kubectl -n "$NS" logs deploy/"$SHOP-gateway" |
    python3 -c 'import json,sys; json.loads(sys.stdin.readline()); sys.stdin.read()'
}
wait_for "the gateway's first log line, in JSON" 30 first_log_line_is_json

step "the gateway through its Service; helm test"
gw_ip="$(kubectl -n "$NS" get svc "$SHOP-gateway" -o jsonpath='{.spec.clusterIP}')"
curl -sf "http://$gw_ip:8080/healthz" >/dev/null || fail "gateway /healthz through its ClusterIP"
curl -sf "http://$gw_ip:8080/readyz" >/dev/null || fail "gateway /readyz through its ClusterIP"
helm test souk -n souk-system --timeout 2m

step "the journey through the gateway's Service"
curl -sf -o /dev/null -u sk_test_e2e: "http://127.0.0.1:$stripe_port/_config/webhooks/souk" \
  -d "url=http://$gw_ip:8080/api/v1/payments/webhook" -d secret=whsec_e2e \
  -d 'events[]=payment_intent.succeeded' -d 'events[]=payment_intent.payment_failed' \
  -d 'events[]=charge.refunded'
python3 "$ROOT/tests/e2e/journey.py" --gateway "http://$gw_ip:8080" \
  --admin-email admin@example.com --admin-password "$ADMIN_PASSWORD" --maildir "$maildir"

step "scaling adds running pods; killing one of two loses no read"
kubectl -n "$NS" patch shop "$SHOP" --type merge -p '{"spec":{"services":{"product":{"replicas":2}}}}'
two_ready() {
  [[ $(kubectl -n "$NS" get deploy "$SHOP-product" -o jsonpath='{.status.readyReplicas}') == 2 ]]
}
wait_for "two ready product pods" 120 two_ready
python3 "$ROOT/tests/e2e/trickle.py" "http://$gw_ip:8080/api/v1/products" 15 &
trickle=$!
sleep 3
victim="$(kubectl -n "$NS" get pods -l app.kubernetes.io/component=product -o jsonpath='{.items[0].metadata.name}')"
kubectl -n "$NS" delete pod "$victim" --wait=false
wait "$trickle" || fail "reads were lost while a product pod was killed"
wait_for "two ready product pods again" 120 two_ready

step "the operator settles (its /metrics, generations)"
leader="$(kubectl -n souk-system get lease souk-operator -o jsonpath='{.spec.holderIdentity}')"
leader_ip="$(kubectl -n souk-system get pod "$leader" -o jsonpath='{.status.podIP}')"
reconciles() {
  curl -sf "http://$leader_ip:8080/metrics" | awk '/^souk_operator_reconciles_total/ { s += $2 } END { print s + 0 }'
}
generations() {
  kubectl -n "$NS" get deploy,sts,svc,cm,secret,networkpolicy,pdb,job -o \
    jsonpath='{range .items[*]}{.kind}/{.metadata.name}={.metadata.generation}{"\n"}{end}' | sort
}
sleep 5
g0="$(generations)"
r0="$(reconciles)"
sleep 20
g1="$(generations)"
r1="$(reconciles)"
echo "reconciles in 20 s of a stable Shop: $((r1 - r0))"
[[ $g0 == "$g1" ]] || { diff <(echo "$g0") <(echo "$g1") >&2; fail "generations moved on a stable Shop"; }
((r1 - r0 <= 1)) || fail "$((r1 - r0)) reconciles in 20 s of a stable Shop"

step "drift is repaired"
old_uid="$(kubectl -n "$NS" get svc "$SHOP-product" -o jsonpath='{.metadata.uid}')"
kubectl -n "$NS" delete svc "$SHOP-product"
svc_back() {
  local uid
  uid="$(kubectl -n "$NS" get svc "$SHOP-product" -o jsonpath='{.metadata.uid}')"
  [[ -n $uid && $uid != "$old_uid" ]]
}
wait_for "the product Service back" 60 svc_back
kubectl -n "$NS" scale deploy "$SHOP-cart" --replicas 3
one_cart() { [[ $(kubectl -n "$NS" get deploy "$SHOP-cart" -o jsonpath='{.spec.replicas}') == 1 ]]; }
wait_for "cart back to 1 replica" 60 one_cart

step "memory: RSS per pod (its processes), the node"
rss_kib() { # PIDs -> total VmRSS in KiB
  local total=0 pid kb
  for pid in "$@"; do
    kb=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
    total=$((total + ${kb:-0}))
  done
  echo "$total"
}
pods_kib=0
for p in $(kubectl get pods -A --field-selector=status.phase=Running -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}/{.metadata.uid}{" "}{end}'); do
  cg="$(find /sys/fs/cgroup/memory/souk-node -maxdepth 3 -type d -name "pod${p##*/}" | head -1)"
  [[ -n $cg ]] || continue
  kib=$(rss_kib $(cat "$cg"/*/cgroup.procs 2>/dev/null))
  pods_kib=$((pods_kib + kib))
  printf '%-55s %6d KiB\n' "${p%/*}" "$kib"
done
node_kib=$(rss_kib $(cat "$NODE_STATE"/*.pid))
echo "node processes (etcd, apiserver, controller-manager, scheduler, kubelet, kube-proxy, containerd, dnsmasq, DNS poller): $((node_kib / 1024)) MiB"
echo "pods: $((pods_kib / 1024)) MiB; node total: $(((node_kib + pods_kib) / 1024)) MiB"

step "upgrade to $UP_TAG (one new product migration): the old version serves until it has run"
# Reads through the gateway never fail, from here through the failed upgrade and the rollback.
python3 "$ROOT/tests/e2e/trickle.py" "http://$gw_ip:8080/api/v1/products" 900 0.1 &
upgrade_trickle=$!
host_pids+=("$upgrade_trickle")
shop_field() { kubectl -n "$NS" get shop "$SHOP" -o jsonpath="$1"; }
condition() { # type -> status/reason
  shop_field "{.status.conditions[?(@.type==\"$1\")].status}/{.status.conditions[?(@.type==\"$1\")].reason}"
}
images() { # each Deployment of the Shop and its image, one per line
  kubectl -n "$NS" get deploy -l "app.kubernetes.io/instance=$SHOP" -o \
    jsonpath='{range .items[*]}{.metadata.name}={.spec.template.spec.containers[0].image}{"\n"}{end}'
}
all_on() { # tag: all six Deployments run it
  [[ $(images | grep -c "=localhost/souk:$1\$") == 6 ]]
}
ready_at() { # tag: Ready, every service rolled out, status.version the tag
  [[ $(condition Ready) == True/* && $(shop_field '{.status.version}') == "$1" ]]
}
jobs_of() { # tag [service]
  kubectl -n "$NS" get jobs -l "app.kubernetes.io/component=migrate,app.kubernetes.io/version=$1${2:+,souk.dev/service=$2}" "${@:3}"
}
has_job() { [[ -n $(jobs_of "$1" "$2" -o name) ]]; }
job_succeeded() { [[ $(jobs_of "$1" "$2" -o jsonpath='{.items[*].status.succeeded}') == 1 ]]; }
product_migrations() { # the versions recorded as applied in souk_product
  kubectl -n "$NS" exec "$SHOP-postgres-0" -- \
    psql -U postgres -d souk_product -tAc 'SELECT version FROM _sqlx_migrations WHERE success ORDER BY version'
}
gateway_reads() { curl -sf -o /dev/null "http://$gw_ip:8080/api/v1/products"; }
UP_MIGRATION=99990101000001  # operator/tests/support/upgrade/product/
BAD_MIGRATION=99990101000002

kubectl -n "$NS" patch shop "$SHOP" --type merge -p "{\"spec\":{\"version\":\"$UP_TAG\"}}"
upgraded=$(date +%s)
wait_for "product's migration Job for $UP_TAG" 60 has_job "$UP_TAG" product
migrating() { [[ $(condition Progressing) == True/Migrating ]]; }
wait_for "Progressing/Migrating" 30 migrating
# That migration holds its Job for 10 s. While it runs, nothing may move. Each look reads the
# Job's state last: when it is still unfinished, everything read before was read meanwhile.
looks=0
for ((i = 0; i < 120; i++)); do
  now="$(images)"
  ready="$(condition Ready)"
  progressing="$(condition Progressing)"
  answered=yes
  gateway_reads || answered=no
  job_succeeded "$UP_TAG" product && break
  [[ $(grep -c "=localhost/souk:$TAG\$" <<<"$now") == 6 ]] ||
    fail "a Deployment left $TAG before product's migration to $UP_TAG succeeded: $now"
  [[ $ready == True/* ]] || fail "not Ready while the migration to $UP_TAG ran: $ready"
  [[ $progressing == True/Migrating ]] || fail "Progressing while the migration ran: $progressing"
  [[ $answered == yes ]] || fail "the gateway did not answer while the migration to $UP_TAG ran"
  looks=$((looks + 1))
  sleep 1
done
job_succeeded "$UP_TAG" product || fail "product's migration Job for $UP_TAG did not succeed"
((looks >= 3)) || fail "only $looks looks while product's migration to $UP_TAG ran (it sleeps 10 s)"
echo "$looks looks while the migration ran: all six Deployments on $TAG, Ready, the gateway answering"
wait_for "all six Deployments on $UP_TAG" 120 all_on "$UP_TAG"
wait_for "Shop Ready at $UP_TAG" 300 ready_at "$UP_TAG"
echo "spec.version -> Ready at $UP_TAG: $(since "$upgraded") s"
# By the API server's clock: no ReplicaSet of the new version before the last migration ended.
last_job="$(jobs_of "$UP_TAG" "" -o jsonpath='{range .items[*]}{.status.completionTime}{"\n"}{end}' | sort | tail -1)"
first_rs="$(kubectl -n "$NS" get rs -l "app.kubernetes.io/instance=$SHOP,app.kubernetes.io/version=$UP_TAG" \
  -o jsonpath='{range .items[*]}{.metadata.creationTimestamp}{"\n"}{end}' | sort | head -1)"
[[ -n $last_job && -n $first_rs && ! $first_rs < $last_job ]] ||
  fail "a ReplicaSet of $UP_TAG ($first_rs) predates its last migration's end ($last_job)"
product_migrations | grep -qx "$UP_MIGRATION" || fail "$UP_MIGRATION not in souk_product's _sqlx_migrations"
kubectl -n "$NS" logs "job/$(jobs_of "$UP_TAG" product -o jsonpath='{.items[0].metadata.name}')" |
  grep -q "product: migrations applied" || fail "product's Job for $UP_TAG did not run souk migrate"

step "a failed upgrade to $BAD_TAG (its product migration fails): Degraded, $UP_TAG serves on"
kubectl -n "$NS" patch shop "$SHOP" --type merge \
  -p "{\"spec\":{\"version\":\"$BAD_TAG\",\"migration\":{\"backoffLimit\":1}}}"
degraded() { [[ $(condition Degraded) == True/MigrationFailed ]]; }
wait_for "Degraded/MigrationFailed" 240 degraded
msg="$(shop_field '{.status.conditions[?(@.type=="Degraded")].message}')"
echo "Degraded: $msg"
[[ $msg == *product* && $msg == *BackoffLimitExceeded* ]] || fail "Degraded's message: $msg"
for svc in user cart order payment; do
  job_succeeded "$BAD_TAG" "$svc" || fail "$svc's migration Job for $BAD_TAG did not succeed"
done
kubectl -n "$NS" logs "job/$(jobs_of "$BAD_TAG" product -o jsonpath='{.items[0].metadata.name}')" |
  grep -q "division by zero" || fail "product's Job for $BAD_TAG did not fail in its migration"
sleep 5 # the operator has seen the failure; nothing may move now or later
all_on "$UP_TAG" || fail "Deployments left $UP_TAG after a failed upgrade: $(images)"
ready_at "$UP_TAG" || fail "not Ready at $UP_TAG after a failed upgrade: $(condition Ready), $(shop_field '{.status.version}')"
[[ $(condition Progressing) == False/MigrationFailed ]] || fail "Progressing: $(condition Progressing)"
gateway_reads || fail "the gateway did not answer after a failed upgrade"
recorded="$(product_migrations)"
grep -qx "$UP_MIGRATION" <<<"$recorded" || fail "$UP_MIGRATION not in souk_product's _sqlx_migrations"
! grep -qx "$BAD_MIGRATION" <<<"$recorded" || fail "the failed migration $BAD_MIGRATION is recorded"

step "rollback to $TAG: its binary accepts the newer migration in souk_product"
kubectl -n "$NS" patch shop "$SHOP" --type merge -p "{\"spec\":{\"version\":\"$TAG\"}}"
rolled_back=$(date +%s)
wait_for "all six Deployments on $TAG" 180 all_on "$TAG"
wait_for "Shop Ready at $TAG" 300 ready_at "$TAG"
echo "spec.version -> Ready at $TAG: $(since "$rolled_back") s"
[[ $(condition Degraded) == False/* ]] || fail "still Degraded after the rollback: $(condition Degraded)"
for svc in user product cart order payment; do
  job_succeeded "$TAG" "$svc" || fail "$svc's migration Job for $TAG did not succeed"
done
kubectl -n "$NS" logs "job/$(jobs_of "$TAG" product -o jsonpath='{.items[0].metadata.name}')" |
  grep -q "product: migrations applied" || fail "product's Job for $TAG did not run souk migrate"
product_migrations | grep -qx "$UP_MIGRATION" || fail "$UP_MIGRATION vanished from souk_product"
kill -TERM "$upgrade_trickle"
wait "$upgrade_trickle" || fail "reads through the gateway failed during the upgrades or the rollback"

step "deleting the Shop"
kubectl -n "$NS" delete shop "$SHOP" --timeout 2m
gone() {
  [[ -z $(kubectl -n "$NS" get deploy,sts,svc,job,pvc -o name) ]]
}
wait_for "children and the volume claim gone" 180 gone

step "network guard"
bash "$HERE/node.sh" guard
echo "node-e2e passed"
