#!/bin/bash
# The node's processes: etcd, the API server, the scheduler, the controller-manager (its
# volume controllers only), containerd and the kubelet, each in the background with its log
# under /var/log/kube. The API server can be stopped and
# started again on its own (`node.sh apiserver`), as a test of an unreachable API does.
set -euo pipefail
k=/opt/kube
state=/var/lib/kube          # certificates, tokens, kubeconfigs (a volume: kept across restarts)
logs=/var/log/kube
ip=$(ip -4 -o addr show scope global | awk '{sub("/.*", "", $4); print $4; exit}')
name=${NODE_NAME:-node}
token_file=$state/token
LOCAL_VOLUMES=/var/lib/runner-local     # the directories of the fixture's local volumes
LOCAL_VOLUME_COUNT=${LOCAL_VOLUME_COUNT:-96}

apiserver() {
  exec "$k/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
    --advertise-address="$ip" --bind-address=0.0.0.0 --secure-port=6443 \
    --cert-dir="$state/apiserver" --token-auth-file="$state/tokens.csv" \
    --authorization-mode=Node,RBAC --service-cluster-ip-range=10.96.0.0/16 \
    --service-account-key-file="$state/sa.key" --service-account-signing-key-file="$state/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc \
    --allow-privileged=false --kubelet-preferred-address-types=InternalIP \
    --enable-admission-plugins=PodSecurityPolicy \
    >>"$logs/apiserver.log" 2>&1
}

if [ "${1:-}" = apiserver ]; then apiserver; fi

mkdir -p "$state" "$logs" /run/containerd
[ -s /etc/machine-id ] || head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >/etc/machine-id
# The Pods' cgroups go under /$CGROUP_ROOT in every hierarchy (the kubelet wants it made);
# cpuset's needs its parent's cpus and mems before anything can join it.
cgroup_root=${CGROUP_ROOT:-runner-test-kube}
for h in /sys/fs/cgroup/*/; do
  [ -L "${h%/}" ] && continue
  mkdir -p "$h$cgroup_root"
  if [ -f "${h}cpuset.cpus" ]; then
    cat "${h}cpuset.cpus" >"$h$cgroup_root/cpuset.cpus"
    cat "${h}cpuset.mems" >"$h$cgroup_root/cpuset.mems"
  fi
done
kubeconfig() {   # $1: file, $2: token, $3: the API server
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "${3:-https://127.0.0.1:6443}", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: "$2"}}]
contexts: [{name: test, context: {cluster: test, user: u, namespace: default}}]
current-context: test
KC
}
# A second node joins the first's API server (JOIN_SERVER, with the token the first made
# for it, JOIN_TOKEN): it runs containerd and a kubelet alone.
if [ -n "${JOIN_SERVER:-}" ]; then
  kubeconfig "$state/node.kubeconfig" "$JOIN_TOKEN" "$JOIN_SERVER"
else
  if [ ! -f "$token_file" ]; then     # once per cluster: its credentials
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$token_file"
    for node in "$name" "$name-2"; do
      head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$state/$node.token"
    done
    { printf '%s,admin,admin,system:masters\n' "$(cat "$token_file")"
      for node in "$name" "$name-2"; do
        printf '%s,system:node:%s,%s,system:nodes\n' "$(cat "$state/$node.token")" "$node" \
          "$node"
      done; } >"$state/tokens.csv"
    openssl genrsa -out "$state/sa.key" 2048 2>/dev/null
  fi
  kubeconfig "$state/admin.kubeconfig" "$(cat "$token_file")"
  kubeconfig "$state/node.kubeconfig" "$(cat "$state/$name.token")"
fi

# The Pods' network: containerd wants each Pod to get an eth0 with an address, and Pods must
# reach nothing. So eth0 is a private macvlan (no two Pods see each other) on a veth whose
# other end is in a namespace of its own with no address: a wire to nowhere. No route is
# given, so only the Pods' own /16 is "reachable", and nothing there answers.
if ! ip link show runner-void >/dev/null 2>&1; then
  ip netns add void
  ip link add runner-void type veth peer name void-end
  ip link set void-end netns void
  ip -n void link set void-end up
  ip link set runner-void up
fi

mkdir -p "$LOCAL_VOLUMES"
for i in $(seq -w 0 $((LOCAL_VOLUME_COUNT - 1))); do mkdir -p "$LOCAL_VOLUMES/pv-$i"; done
containerd --config /etc/containerd/config.toml >>"$logs/containerd.log" 2>&1 &
pids=($!)
if [ -z "${JOIN_SERVER:-}" ]; then
  etcd --data-dir=/var/lib/etcd --listen-client-urls=http://127.0.0.1:2379 \
    --advertise-client-urls=http://127.0.0.1:2379 --listen-peer-urls=http://127.0.0.1:2380 \
    >>"$logs/etcd.log" 2>&1 &
  pids+=($!)
  setsid "$0" apiserver </dev/null &     # not waited on: a test stops it and starts it again
  "$k/kube-scheduler" --kubeconfig="$state/admin.kubeconfig" --leader-elect=false \
    --bind-address=127.0.0.1 >>"$logs/scheduler.log" 2>&1 &
  pids+=($!)
  # Only the controllers a workspace claim needs: binding (to the local volumes the fixture
  # declares over the directories made here) and the protections that let a claim go once
  # no Pod uses it; with NODE_LIFECYCLE (a cluster of two nodes), the one that marks a node
  # that stopped answering (20 s without a word) and taints it, so nothing goes there.
  controllers=persistentvolume-binder,pvc-protection,pv-protection
  [ -n "${NODE_LIFECYCLE:-}" ] && controllers+=,nodelifecycle
  "$k/kube-controller-manager" --kubeconfig="$state/admin.kubeconfig" --leader-elect=false \
    --bind-address=127.0.0.1 --port=0 --controllers="$controllers" \
    --node-monitor-period=2s --node-monitor-grace-period=20s \
    >>"$logs/controller-manager.log" 2>&1 &
  pids+=($!)
fi
"$k/kubelet" --kubeconfig="$state/node.kubeconfig" --hostname-override="$name" \
  --node-ip="$ip" --container-runtime=remote \
  --container-runtime-endpoint=unix:///run/containerd/containerd.sock \
  --cgroup-driver=cgroupfs --cgroup-root="/$cgroup_root" \
  --fail-swap-on=false --make-iptables-util-chains=false --enforce-node-allocatable= \
  --eviction-hard='memory.available<1Mi,nodefs.available<1%,imagefs.available<1%' \
  --pod-infra-container-image=runner.test/pause:1 --root-dir=/var/lib/kubelet \
  --authentication-token-webhook=false --anonymous-auth=true --authorization-mode=AlwaysAllow \
  --serialize-image-pulls=false --v=1 >>"$logs/kubelet.log" 2>&1 &
pids+=($!)
wait -n "${pids[@]}" || true
echo "node: a process of the node exited" >&2
for f in "$logs"/*.log; do echo "== $f" >&2; tail -n 25 "$f" >&2; done
exit 1
