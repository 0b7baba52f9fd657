#!/usr/bin/env python3
"""Run a throwaway OCI distribution registry on loopback for end-to-end tests.

Library use:

    import registry
    proc, addr = registry.start("/tmp/some-dir")      # addr == "127.0.0.1:PORT"
    ...
    registry.stop(proc)

Command line:

    python3 tools/test-images/registry.py serve --root DIR [--port N]
        [--storage DIR] [--htpasswd USER:PASSWORD]

The registry is the distribution v2 server shipped as ``docker-registry``;
it stores blobs on the filesystem under ``ROOT/storage`` (or ``--storage``,
so a second registry can serve what the first holds), listens only on
127.0.0.1 and allows deletes. It has no authentication unless
``--htpasswd`` names the one user allowed in (basic authentication).
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

DEFAULT_BINARY = "docker-registry"
READY_TIMEOUT = 30.0

CONFIG_TEMPLATE = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
  fields:
    service: rkube-test-registry
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {addr}
  secret: rkube-test-registry-not-secret
  headers:
    X-Content-Type-Options: [nosniff]
"""

AUTH_TEMPLATE = """\
auth:
  htpasswd:
    realm: rkube-test-registry
    path: {path}
"""

# A direct opener: the registry is on loopback, never go through a proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port():
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _htpasswd_line(user_password):
    """An htpasswd line with a bcrypt hash, the only kind the registry reads."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # bcrypt through the C library (libxcrypt)

    user, _, password = user_password.partition(":")
    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))
    if not hashed or not hashed.startswith("$2"):
        raise RuntimeError("the C library cannot make bcrypt hashes")
    return "%s:%s\n" % (user, hashed)


def write_config(root_dir, addr, storage=None, htpasswd=None):
    """Write the registry configuration under root_dir and return its path."""
    root_dir = os.path.abspath(root_dir)
    storage = os.path.abspath(storage) if storage else os.path.join(root_dir, "storage")
    os.makedirs(storage, exist_ok=True)
    path = os.path.join(root_dir, "config.yml")
    text = CONFIG_TEMPLATE.format(storage=storage, addr=addr)
    if htpasswd:
        users = os.path.join(root_dir, "htpasswd")
        with open(users, "w", encoding="utf-8") as f:
            f.write(_htpasswd_line(htpasswd))
        text += AUTH_TEMPLATE.format(path=users)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def ping(addr, timeout=2.0, auth=False):
    """True when GET /v2/ on addr answers 200 (401 for a registry asking for credentials)."""
    try:
        with _OPENER.open("http://%s/v2/" % addr, timeout=timeout) as resp:
            return resp.status == 200
    except urllib.error.HTTPError as e:
        return auth and e.code == 401
    except (urllib.error.URLError, OSError):
        return False


def _log_tail(path, limit=4000):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", "replace")


def start(root_dir, port=0, binary=None, timeout=READY_TIMEOUT, storage=None, htpasswd=None):
    """Start a registry storing under root_dir, listening on 127.0.0.1:port.

    port=0 picks a free loopback port. Returns (Popen, "127.0.0.1:PORT")
    once GET /v2/ answers 200. The server's output goes to
    root_dir/registry.log. Raises RuntimeError if it does not come up.
    """
    binary = binary or os.environ.get("RKUBE_TEST_REGISTRY_BIN") or DEFAULT_BINARY
    exe = shutil.which(binary)
    if exe is None:
        raise RuntimeError("registry binary %r not found in PATH" % binary)
    root_dir = os.path.abspath(root_dir)
    os.makedirs(root_dir, exist_ok=True)
    if not port:
        port = free_port()
    addr = "127.0.0.1:%d" % port
    config = write_config(root_dir, addr, storage=storage, htpasswd=htpasswd)
    log_path = os.path.join(root_dir, "registry.log")
    log = open(log_path, "ab")
    try:
        proc = subprocess.Popen(
            [exe, "serve", config],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=root_dir,
        )
    finally:
        log.close()

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                "registry exited with status %s before becoming ready:\n%s"
                % (proc.returncode, _log_tail(log_path))
            )
        if ping(addr, timeout=1.0, auth=bool(htpasswd)):
            return proc, addr
        if time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(
                "registry on %s not ready after %.0fs:\n%s"
                % (addr, timeout, _log_tail(log_path))
            )
        time.sleep(0.1)


def stop(proc, timeout=10.0):
    """Terminate a registry started by start(); kill it if it lingers."""
    if proc.poll() is not None:
        return proc.returncode
    proc.terminate()
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _serve(args):
    received = []

    def _forward(signum, _frame):
        # Only record and pass the signal on; the main loop does the waiting.
        received.append(signum)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    proc = None
    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)
    proc, addr = start(
        args.root,
        port=args.port,
        binary=args.binary,
        storage=args.storage,
        htpasswd=args.htpasswd,
    )
    if received:
        stop(proc)
        return 128 + received[0]
    print(addr, flush=True)

    deadline = None
    while True:
        try:
            rc = proc.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            pass
        if received:
            if deadline is None:
                deadline = time.monotonic() + 10.0
            elif time.monotonic() > deadline:
                proc.kill()
    if received:
        return 128 + received[0]
    print("registry exited with status %d" % rc, file=sys.stderr)
    return rc if rc else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run a registry in the foreground")
    serve.add_argument("--root", required=True, help="directory for config and storage")
    serve.add_argument("--port", type=int, default=0, help="loopback port (0 = pick a free one)")
    serve.add_argument("--binary", default=None, help="registry executable (default docker-registry)")
    serve.add_argument("--storage", default=None, help="serve this storage directory (default ROOT/storage)")
    serve.add_argument("--htpasswd", default=None, help="USER:PASSWORD, the one user let in")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
