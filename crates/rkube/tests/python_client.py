"""The official Python client (Debian's python3-kubernetes) against an rkube server:
create, list and watch pods. Prints one line per check; exits non-zero on failure."""

import sys
import threading
import time

from kubernetes import client, config, watch

config.load_kube_config(config_file=sys.argv[1])
core = client.CoreV1Api()

events = []
ready = threading.Event()


def collect():
    w = watch.Watch()
    ready.set()
    for event in w.stream(core.list_namespaced_pod, "default", timeout_seconds=5):
        events.append((event["type"], event["object"].metadata.name))
        if len(events) >= 3:
            w.stop()


watcher = threading.Thread(target=collect)
watcher.start()
ready.wait()
time.sleep(0.5)

pod = client.V1Pod(
    metadata=client.V1ObjectMeta(name="py-pod", labels={"from": "python"}),
    spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="nginx:1.27")]),
)
created = core.create_namespaced_pod("default", pod)
assert created.metadata.uid, "created pod has a uid"
assert created.status.phase == "Pending", created.status.phase
print("created", created.metadata.name)

listed = core.list_namespaced_pod("default", label_selector="from=python")
assert [p.metadata.name for p in listed.items] == ["py-pod"], listed.items
print("listed", len(listed.items))

core.patch_namespaced_pod("py-pod", "default", {"metadata": {"labels": {"seen": "yes"}}})
core.delete_namespaced_pod("py-pod", "default")
watcher.join(timeout=10)
assert events == [("ADDED", "py-pod"), ("MODIFIED", "py-pod"), ("DELETED", "py-pod")], events
print("watched", " ".join(t for t, _ in events))

try:
    core.read_namespaced_pod("py-pod", "default")
    raise AssertionError("deleted pod still readable")
except client.exceptions.ApiException as e:
    assert e.status == 404, e.status
    print("gone", e.status)
