"""Density benchmark: a real `rkube server --disable-agent` with `rkube sim` hollow nodes beside
it; Deployments summing to the pod count are created at a controlled rate and every pod is
followed by one watch, from when the watch first sees it to when it sees it Running.

One line per figure:
  bench=density case=<nodes>-nodes-<pods>-pods metric=<metric> value=<number> unit=<unit>
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def usage(pid):
    """CPU seconds (user + system) and RSS bytes of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss


class Sampler:
    """Samples a process's CPU and RSS every second while running."""

    def __init__(self, pid):
        self.pid, self.stop, self.peak_rss = pid, threading.Event(), 0
        self.start_cpu, self.start_time = usage(pid)[0], time.monotonic()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.wait(1.0):
            self.peak_rss = max(self.peak_rss, usage(self.pid)[1])

    def finish(self):
        self.stop.set()
        self.thread.join()
        cpu, rss = usage(self.pid)
        self.peak_rss = max(self.peak_rss, rss)
        elapsed = time.monotonic() - self.start_time
        return 100.0 * (cpu - self.start_cpu) / elapsed, self.peak_rss / 2**20


def percentile(values, p):
    if not values:
        return 0.0
    values = sorted(values)
    return values[max(0, min(len(values), int(-(-len(values) * p // 1))) - 1)]


class Api:
    def __init__(self, base):
        self.base = base

    def call(self, method, path, body=None, content_type="application/json"):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read() or b"{}")

    def text(self, path):
        with urllib.request.urlopen(self.base + path, timeout=60) as r:
            return r.read().decode()


class PodWatch:
    """One watch of every pod in the namespace: when each was first seen, bound, Running.
    When the server ends the stream (a watcher that fell behind), it watches again from the
    last version seen, or lists again when that version is gone (410)."""

    def __init__(self, base, namespace):
        self.seen, self.bound, self.running, self.gone = {}, {}, {}, {}
        self.lock = threading.Lock()
        self.base, self.namespace, self.version = base, namespace, None
        self.restarts = 0
        threading.Thread(target=self.run, daemon=True).start()

    def observe(self, kind, pod, now):
        uid = pod["metadata"].get("uid")
        with self.lock:
            self.seen.setdefault(uid, now)
            if pod.get("spec", {}).get("nodeName"):
                self.bound.setdefault(uid, now)
            if pod.get("status", {}).get("phase") == "Running":
                self.running.setdefault(uid, now)
            if kind == "DELETED":
                self.gone.setdefault(uid, now)

    def relist(self):
        """Lists the pods; those known before and missing now were deleted meanwhile."""
        url = f"{self.base}/api/v1/namespaces/{self.namespace}/pods"
        with urllib.request.urlopen(url, timeout=600) as r:
            listed = json.loads(r.read())
        now, present = time.monotonic(), set()
        for pod in listed["items"]:
            present.add(pod["metadata"].get("uid"))
            self.observe("ADDED", pod, now)
        with self.lock:
            for uid in self.seen:
                if uid not in present:
                    self.gone.setdefault(uid, now)
        self.version = listed["metadata"]["resourceVersion"]

    def run(self):
        while True:
            url = (f"{self.base}/api/v1/namespaces/{self.namespace}/pods"
                   "?watch=1&allowWatchBookmarks=true")
            if self.version:
                url += f"&resourceVersion={self.version}"
            try:
                for line in urllib.request.urlopen(url, timeout=3600):
                    event = json.loads(line)
                    if event["type"] == "ERROR":
                        if event["object"].get("code") == 410:
                            self.relist()
                        break
                    self.version = event["object"]["metadata"].get("resourceVersion", self.version)
                    if event["type"] != "BOOKMARK":
                        self.observe(event["type"], event["object"], time.monotonic())
            except Exception:
                time.sleep(1)
            self.restarts += 1

    def counts(self):
        with self.lock:
            return len(self.seen), len(self.running), len(self.gone)


def api_p99(text):
    """p99 latency (ms) of each mutating verb and resource from the server's
    apiserver_request_duration_seconds histogram, interpolated within buckets as Prometheus's
    histogram_quantile does."""
    buckets = {}
    for row in text.splitlines():
        if not row.startswith("apiserver_request_duration_seconds_bucket{"):
            continue
        labels, value = row[row.index("{") + 1:].rsplit("} ", 1)
        fields = dict(part.split("=", 1) for part in labels.split('",'))
        fields = {k: v.strip('"') for k, v in fields.items()}
        if fields["verb"] not in ("POST", "PUT", "PATCH", "APPLY", "DELETE"):
            continue
        resource = fields["resource"] + ("_" + fields["subresource"] if fields["subresource"] else "")
        le = float("inf") if fields["le"] == "+Inf" else float(fields["le"])
        key = (fields["verb"], resource)
        buckets.setdefault(key, {})
        buckets[key][le] = buckets[key].get(le, 0) + float(value)
    out = []
    for key, counts in sorted(buckets.items()):
        bounds = sorted(counts)
        total = counts[bounds[-1]]
        if total == 0:
            continue
        rank, lower, below = 0.99 * total, 0.0, 0.0
        for bound in bounds:
            if counts[bound] >= rank:
                if bound == float("inf"):
                    value = lower
                else:
                    within = counts[bound] - below
                    value = lower + (bound - lower) * ((rank - below) / within if within else 1)
                out.append((key, 1000 * value))
                break
            lower, below = bound, counts[bound]
    return out


def deployment(name, replicas):
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "containers": [
                        {
                            "name": "app",
                            "image": "registry.k8s.io/pause:3.10",
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                        }
                    ],
                },
            },
        },
    }


def wait_for(what, check, timeout, interval=0.5):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(interval)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rkube", required=True)
    p.add_argument("--nodes", type=int, default=100)
    p.add_argument("--pods", type=int, default=3000)
    p.add_argument("--pods-per-deployment", type=int, default=100)
    p.add_argument("--rate", type=float, default=50.0, help="pods created per second")
    p.add_argument("--startup-delay", default="200ms")
    p.add_argument("--keep", action="store_true", help="keep the data directory")
    p.add_argument("--idle-seconds", type=float, default=10.0,
                   help="how long the idle server with every pod Running is watched")
    args = p.parse_args()
    case = f"{args.nodes}-nodes-{args.pods}-pods"

    def line(metric, value, unit):
        print(f"bench=density case={case} metric={metric} value={value:.2f} unit={unit}", flush=True)

    work = tempfile.mkdtemp(prefix="rkube-density-", dir="/var/tmp")
    procs = []
    try:
        port = free_port()
        server = subprocess.Popen(
            [args.rkube, "server", "--disable-agent", "--bind-address", "127.0.0.1",
             "--https-listen-port", str(port), "--data-dir", f"{work}/server",
             # A /24 per node for up to 32768 nodes.
             "--cluster-cidr", "10.128.0.0/9", "--service-cidr", "10.43.0.0/16"],
            stdout=open(f"{work}/server.log", "w"), stderr=subprocess.STDOUT)
        procs.append(server)
        kubeconfig = f"{work}/server/kubeconfig.yaml"
        wait_for("the server", lambda: os.path.exists(kubeconfig), 120)
        proxy_port = free_port()
        procs.append(subprocess.Popen(
            ["kubectl", "--kubeconfig", kubeconfig, "proxy", "--port", str(proxy_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        api = Api(f"http://127.0.0.1:{proxy_port}")

        def answers():
            try:
                api.call("GET", "/api/v1/namespaces/default")
                return True
            except Exception:
                return False

        wait_for("the API", answers, 120)
        started = time.monotonic()
        # The simulator joins as `rkube sim --help` documents: the server's URL and join token.
        with open(f"{work}/server/node-token") as f:
            token = f.read().strip()
        sim = subprocess.Popen(
            [args.rkube, "sim", "--server", f"https://127.0.0.1:{port}", "--token", token,
             "--nodes", str(args.nodes),
             "--startup-delay", args.startup_delay, "--state-dir", f"{work}/sim"],
            stdout=open(f"{work}/sim.log", "w"), stderr=subprocess.STDOUT)
        procs.append(sim)

        def ready_nodes():
            items = api.call("GET", "/api/v1/nodes")["items"]
            return sum(
                1 for n in items
                for c in n.get("status", {}).get("conditions", [])
                if c["type"] == "Ready" and c["status"] == "True")

        # Each look lists every node (some 4 KB each): at thousands of nodes, looking twice a
        # second would be a good part of the server's work while they join.
        wait_for("the hollow nodes", lambda: ready_nodes() >= args.nodes, 600,
                 interval=max(0.5, args.nodes / 2500))
        line("nodes_ready", time.monotonic() - started, "s")
        time.sleep(5)
        idle = Sampler(server.pid)
        time.sleep(10)
        cpu, rss = idle.finish()
        line("server_cpu_idle_nodes_only", cpu, "%")
        line("server_rss_idle_nodes_only", rss, "MiB")

        watch = PodWatch(api.base, "default")
        busy, busy_sim = Sampler(server.pid), Sampler(sim.pid)
        names, created = [], 0
        t0 = time.monotonic()
        while created < args.pods:
            replicas = min(args.pods_per_deployment, args.pods - created)
            name = f"density-{len(names)}"
            api.call("POST", "/apis/apps/v1/namespaces/default/deployments",
                     deployment(name, replicas))
            names.append(name)
            created += replicas
            # The next Deployment when these pods' share of the rate has passed.
            delay = t0 + created / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        wait_for("every pod Running", lambda: watch.counts()[1] >= args.pods, 1800)
        cpu, rss = busy.finish()
        sim_cpu, sim_rss = busy_sim.finish()
        with watch.lock:
            latencies = [1000 * (watch.running[u] - watch.seen[u]) for u in watch.running]
            bound = sorted(watch.bound.values())
        line("startup_p50", percentile(latencies, 0.50), "ms")
        line("startup_p90", percentile(latencies, 0.90), "ms")
        line("startup_p99", percentile(latencies, 0.99), "ms")
        if len(bound) > 1:
            line("scheduling_throughput", (len(bound) - 1) / (bound[-1] - bound[0]), "pods/s")
        line("all_running", time.monotonic() - t0, "s")
        for (verb, resource), p99 in api_p99(api.text("/metrics")):
            line(f"api_p99_{verb}_{resource}", p99, "ms")
        line("server_cpu_busy", cpu, "%")
        line("server_rss_peak", rss, "MiB")
        line("sim_cpu_busy", sim_cpu, "%")
        line("sim_rss_peak", sim_rss, "MiB")
        time.sleep(5)
        idle = Sampler(server.pid)
        rss_before = usage(server.pid)[1] / 2**20
        time.sleep(args.idle_seconds)
        cpu, rss = idle.finish()
        line("server_cpu_idle_with_pods", cpu, "%")
        line("server_rss_idle_with_pods", rss, "MiB")
        # Growth over the idle window: the last sample against the first.
        line("server_rss_idle_growth", usage(server.pid)[1] / 2**20 - rss_before, "MiB")

        t1 = time.monotonic()
        for name in names:
            api.call("PATCH", f"/apis/apps/v1/namespaces/default/deployments/{name}/scale",
                     {"spec": {"replicas": 0}}, "application/merge-patch+json")
        wait_for("every pod gone", lambda: watch.counts()[2] >= args.pods, 1800)
        line("scale_to_zero", time.monotonic() - t1, "s")
        line("pod_watch_restarts", watch.restarts, "")
        for name in names:
            api.call("DELETE", f"/apis/apps/v1/namespaces/default/deployments/{name}")
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        if args.keep:
            print(f"# data and logs kept in {work}", file=sys.stderr)
        else:
            subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
