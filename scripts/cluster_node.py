"""The real node of `scripts/cluster up --real-node`: configuration and clean-up, no process management.

Pods run for real on this machine: Debian's containerd (an instance of our own, not Docker's) with runc,
Debian's CNI plugins (bridge + host-local), a kubelet, kube-proxy (iptables) and CoreDNS, all on the host.
`scripts/cluster` starts and stops the processes; this module writes their configuration, sets up and
tears down the network the project owns, and removes what a crashed run can leave behind.

Addresses stay on this machine: the Pods live on the bridge `aitr0` (10.244.0.0/24) that this module
creates; the node's address is the bridge's own (10.244.0.1), which is where kube-apiserver, the kubelet
and CoreDNS listen for Pods. Services are 10.0.0.0/24, both clear of Docker's 172.17.0.0/16.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

#: The real node's name and address: the address of the bridge its Pods are on.
NODE_NAME = "aitr-node"
NODE_IP = "10.244.0.1"
BRIDGE = "aitr0"
POD_CIDR = "10.244.0.0/24"
POD_PREFIX = 24
CLUSTER_CIDR = "10.244.0.0/16"
DNS_SERVICE_IP = "10.0.0.10"
CLUSTER_DOMAIN = "cluster.local"
PAUSE_IMAGE = "ai-traiding.local/pause:3.10"
CNI_BIN = Path("/usr/lib/cni")
CTR_NAMESPACE = "k8s.io"
#: Which state folder's node holds the bridge and the node address (one real node per machine).
REAL_NODE_OWNER = Path("/run/ai-traiding/real-node-owner")  # the containerd namespace of the CRI plugin
#: Debian packages the node needs (containerd brings ctr).
PACKAGES = ("containerd", "runc", "containernetworking-plugins", "iptables", "conntrack")
#: iptables chains the CNI plugins, the kubelet and kube-proxy create (nothing else on the machine uses these).
IPTABLES_CHAIN_PREFIXES = ("CNI-", "KUBE-")


def node_dir(state: Path) -> Path:
    return state / "node"


def containerd_socket(state: Path) -> Path:
    return node_dir(state) / "containerd.sock"


def kubelet_root(state: Path) -> Path:
    return node_dir(state) / "kubelet"


def containerd_config(state: Path) -> str:
    """containerd 1.6 (config version 2) with only what the kubelet needs, rooted in the state folder.

    `restrict_oom_score_adj`: this machine refuses a negative oom_score_adj, which the pause container asks
    for; without it every sandbox fails with "can't get final child's PID from pipe". The root (images) is
    kept between clusters, so an imported image need not be imported again.
    """
    node = node_dir(state)
    return f"""version = 2
root = "{state / "containerd-root"}"
state = "{node / "containerd-state"}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "{containerd_socket(state)}"

[ttrpc]
  address = "{node / "containerd.ttrpc.sock"}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_cdi = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{node / "cni"}"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
"""


def cni_config(state: Path) -> dict[str, Any]:
    """One bridge network on `aitr0`: Pods get 10.244.0.x, the bridge (node) address is their gateway."""
    return {
        "cniVersion": "0.4.0",
        "name": "ai-traiding",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(node_dir(state) / "cni-ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(state: Path, certs: Path, port: int, healthz_port: int) -> dict[str, Any]:
    """KubeletConfiguration for this machine.

    `failCgroupV1: false` and `cgroupDriver: cgroupfs`: this machine has cgroup v1 and no systemd (kubelet
    deprecates v1 and warns). Eviction and image GC thresholds are low so a full disk elsewhere does not
    evict test Pods or delete imported images (there is no registry to pull them back from).
    """
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(certs / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{containerd_socket(state)}",
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": str(node_dir(state) / "resolv.conf"),
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 99,
        "imageGCLowThresholdPercent": 98,
        "serializeImagePulls": False,
        "staticPodPath": "",
        "registerNode": True,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "shutdownGracePeriod": "0s",
        "logging": {"format": "text"},
    }


def kube_proxy_config(kubeconfig: Path, healthz_port: int, metrics_port: int) -> dict[str, Any]:
    """iptables mode; NodePorts only on the bridge; masquerade all Service traffic so replies from a Pod on
    the same bridge come back through the host (no dependency on bridge netfilter settings)."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "clusterCIDR": CLUSTER_CIDR,
        "hostnameOverride": NODE_NAME,
        "bindAddress": "127.0.0.1",
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "nodePortAddresses": [POD_CIDR],
        "iptables": {"masqueradeAll": True},
        # 0 leaves the machine's conntrack settings as they are (setting them needs a writable /proc/sys).
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }


def corefile(kubeconfig: Path, ready_port: int) -> str:
    """CoreDNS on the node address: Services and Pods of cluster.local from the API server; nothing else
    (there is no upstream to forward to on this machine)."""
    return f""".:53 {{
    bind {NODE_IP}
    errors
    ready 127.0.0.1:{ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    cache 30
}}
"""


def coredns_rbac() -> list[tuple[str, dict[str, Any]]]:
    """(API path, object) pairs: what CoreDNS's kubernetes plugin reads, bound to its client certificate."""
    name = "ai-traiding:coredns"
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": [
            {"apiGroups": [""], "resources": ["services", "pods", "namespaces"], "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}],
    }
    return [
        ("/apis/rbac.authorization.k8s.io/v1/clusterroles", role),
        ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding),
    ]


def dns_service() -> list[tuple[str, dict[str, Any]]]:
    """The `kube-dns` Service at the conventional address, its endpoint the CoreDNS on the node address."""
    ports = [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
        "spec": {"clusterIP": DNS_SERVICE_IP, "ports": [{**p, "targetPort": 53} for p in ports]},
    }
    slice_ = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "kube-dns-node",
            "namespace": "kube-system",
            "labels": {
                "kubernetes.io/service-name": "kube-dns",
                "endpointslice.kubernetes.io/managed-by": "scripts.ai-traiding.io",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}, "nodeName": NODE_NAME}],
        "ports": ports,
    }
    return [
        ("/api/v1/namespaces/kube-system/services", service),
        ("/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices", slice_),
    ]


def write_configs(state: Path, certs: Path, kubeconfigs: Path, ports: dict[str, int]) -> dict[str, Path]:
    """Write every node configuration file; returns their paths by component."""
    node = node_dir(state)
    (node / "cni").mkdir(parents=True, exist_ok=True)
    files = {
        "containerd": node / "containerd.toml",
        "cni": node / "cni" / "10-ai-traiding.conflist",
        "kubelet": node / "kubelet.yaml",
        "kube-proxy": node / "kube-proxy.yaml",
        "coredns": node / "Corefile",
    }
    files["containerd"].write_text(containerd_config(state))
    files["cni"].write_text(json.dumps(cni_config(state), indent=2) + "\n")
    # JSON is YAML: no YAML library needed.
    config = kubelet_config(state, certs, ports["kubelet"], ports["kubelet_healthz"])
    files["kubelet"].write_text(json.dumps(config, indent=2) + "\n")
    proxy = kube_proxy_config(kubeconfigs / "kube-proxy.kubeconfig", ports["proxy_healthz"], ports["proxy_metrics"])
    files["kube-proxy"].write_text(json.dumps(proxy, indent=2) + "\n")
    files["coredns"].write_text(corefile(kubeconfigs / "coredns.kubeconfig", ports["coredns_ready"]))
    # Pods with dnsPolicy Default get this; ClusterFirst Pods get CoreDNS. No host resolver leaks in.
    (node / "resolv.conf").write_text(f"nameserver {DNS_SERVICE_IP}\n")
    return files


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, check=False)


def bridge_up() -> None:
    """The Pods' bridge with the node address, before anything binds to that address."""
    if _run("ip", "link", "show", BRIDGE).returncode != 0:
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
    addresses = _run("ip", "-4", "-o", "addr", "show", "dev", BRIDGE).stdout
    if f"{NODE_IP}/" not in addresses:
        _run("ip", "addr", "add", f"{NODE_IP}/{POD_PREFIX}", "dev", BRIDGE)
    up = _run("ip", "link", "set", BRIDGE, "up")
    if up.returncode != 0:
        raise RuntimeError(f"cannot bring up bridge {BRIDGE}: {up.stderr.strip()}")
    # Pods reach the world of this machine (the node address) through the host; forwarding must be on.
    with contextlib.suppress(OSError):
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")


def ctr(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run("ctr", "--address", str(containerd_socket(state)), "--namespace", CTR_NAMESPACE, *args)


def running_tasks(state: Path) -> list[str]:
    """Ids of the tasks (container processes) that still run in our containerd."""
    listing = ctr(state, "tasks", "list").stdout.splitlines()[1:]  # TASK PID STATUS
    return [line.split()[0] for line in listing if line.split()[2:3] == ["RUNNING"]]


def remove_containers(state: Path) -> list[str]:
    """Kill and delete every task and container in our containerd (what a kubelet that died left); returns
    the ids it had to remove."""
    removed = []
    tasks = ctr(state, "tasks", "list", "--quiet")
    for task in tasks.stdout.split():
        ctr(state, "tasks", "kill", "--all", "--signal", "SIGKILL", task)
    for task in tasks.stdout.split():
        for _ in range(50):
            if ctr(state, "tasks", "delete", "--force", task).returncode == 0:
                break
    for container in ctr(state, "containers", "list", "--quiet").stdout.split():
        ctr(state, "containers", "delete", container)
        removed.append(container)
    return removed


def mounts_under(root: Path) -> list[str]:
    """Mount points below `root`, deepest first."""
    prefix = str(root).rstrip("/") + "/"
    points = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            point = line.split()[1].replace("\\040", " ")
            if point.startswith(prefix):
                points.append(point)
    return sorted(set(points), key=len, reverse=True)


def unmount_all(root: Path) -> None:
    for point in mounts_under(root):
        if _run("umount", point).returncode != 0:
            _run("umount", "-l", point)


def network_down(state: Path) -> None:
    """Remove the bridge, the iptables chains of the CNI plugins and the kubelet (kube-proxy removes its own
    with --cleanup), the plugins' address leases and leftover network namespaces."""
    _run("ip", "link", "delete", BRIDGE)
    for tool in ("iptables", "ip6tables"):
        for table in ("nat", "filter", "mangle"):
            _remove_chains(tool, table)
    shutil.rmtree(node_dir(state) / "cni-ipam", ignore_errors=True)
    for netns in Path("/var/run/netns").glob("cni-*"):
        _run("ip", "netns", "delete", netns.name)


def _remove_chains(tool: str, table: str) -> None:
    rules = _run(f"{tool}-save", "-t", table).stdout.splitlines()
    chains = {line[1:].split()[0] for line in rules if line.startswith(":") and _is_ours(line[1:])}
    if not chains:
        return
    for line in rules:
        # Jumps from the built-in chains into ours go first; then ours can be flushed and deleted.
        if not line.startswith("-A "):
            continue
        words = shlex.split(line)  # rules carry quoted comments
        target = words[words.index("-j") + 1] if "-j" in words else None
        if words[1] not in chains and target in chains:
            _run(tool, "-t", table, "-D", *words[1:])
    for chain in chains:
        _run(tool, "-t", table, "-F", chain)
    for chain in chains:
        _run(tool, "-t", table, "-X", chain)


def _is_ours(chain: str) -> bool:
    return chain.startswith(IPTABLES_CHAIN_PREFIXES)


def leftover_processes(state: Path) -> list[str]:
    """Processes of the node still running: shims of our containerd and the containers they ran."""
    socket = str(containerd_socket(state))
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if socket in cmdline and "containerd-shim" in cmdline:
            found.append(f"{entry.name} {cmdline.strip()[:120]}")
    return found


def clean_node_state(state: Path) -> None:
    """After everything stopped: unmount and delete the kubelet's and containerd's runtime state (the image
    store in containerd-root stays, so images need not be imported again)."""
    node = node_dir(state)
    unmount_all(node)
    unmount_all(state / "containerd-root")
    for sub in ("kubelet", "containerd-state"):
        shutil.rmtree(node / sub, ignore_errors=True)
