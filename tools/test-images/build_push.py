#!/usr/bin/env python3
"""Build a small busybox-based OCI image and push it to a registry over HTTP.

Command line:

    python3 tools/test-images/build_push.py --registry 127.0.0.1:PORT \\
        rkube-test/busybox:1 [--variant N] [--entrypoint JSON] [--cmd JSON]

Library use:

    import build_push
    ref, digest = build_push.build_and_push("127.0.0.1:5000", "rkube-test/busybox:1")

The image is an OCI image manifest (application/vnd.oci.image.manifest.v1+json)
with one gzip layer (application/vnd.oci.image.layer.v1.tar+gzip). The layer
holds a static busybox at /bin/busybox with a symlink per applet, /etc/passwd
and /etc/group, /var/www/index.html and /VERSION. Everything is built
deterministically: the same busybox binary and the same options give the same
manifest digest, and different variants give different digests.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request

MEDIA_TYPE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_TYPE_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

DEFAULT_BUSYBOX = "/bin/busybox"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_CMD = ["sh"]

# Fixed timestamp for every tar entry and the image "created" field.
EPOCH = 0
EPOCH_RFC3339 = "1970-01-01T00:00:00Z"

_REPO_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO_RE = re.compile(r"^%s(?:/%s)*$" % (_REPO_COMPONENT, _REPO_COMPONENT))
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

_ARCH_NAMES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "i386": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/home:/bin/false\n"
)
GROUP = (
    "root:x:0:\n"
    "nogroup:x:65534:\n"
)


def host_arch():
    """The OCI architecture name of this machine."""
    machine = platform.machine()
    try:
        return _ARCH_NAMES[machine.lower()]
    except KeyError:
        raise RuntimeError("unsupported machine architecture %r" % machine) from None


def sha256_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def busybox_applets(busybox=DEFAULT_BUSYBOX):
    """Applet names the given busybox binary provides, sorted."""
    out = subprocess.run(
        [busybox, "--list"], check=True, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    ).stdout.decode("ascii")
    names = set()
    for line in out.splitlines():
        name = line.strip()
        if name and "/" not in name and name != "busybox":
            names.add(name)
    return sorted(names)


def _entry(name, kind, mode, data=b"", target=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid = 0
    info.gid = 0
    info.uname = "root"
    info.gname = "root"
    info.mtime = EPOCH
    if kind == tarfile.SYMTYPE:
        info.linkname = target
        info.size = 0
    elif kind == tarfile.REGTYPE:
        info.size = len(data)
    else:
        info.size = 0
    return info, data


def layer_entries(variant, busybox=DEFAULT_BUSYBOX):
    """Map of path (no leading slash) -> (TarInfo, data) for the root filesystem."""
    with open(busybox, "rb") as f:
        busybox_bytes = f.read()
    index_html = (
        "<!DOCTYPE html>\n"
        "<html><head><title>rkube test image</title></head>\n"
        "<body><p>rkube test image variant %s</p></body></html>\n" % variant
    )

    entries = {}

    def directory(path, mode=0o755):
        entries[path] = _entry(path, tarfile.DIRTYPE, mode)

    def regular(path, data, mode=0o644):
        entries[path] = _entry(path, tarfile.REGTYPE, mode, data=data)

    def symlink(path, target):
        entries[path] = _entry(path, tarfile.SYMTYPE, 0o777, target=target)

    for d in ("bin", "dev", "etc", "home", "proc", "sys", "usr", "usr/bin",
              "usr/sbin", "var", "var/www"):
        directory(d)
    directory("root", 0o700)
    directory("tmp", 0o1777)

    regular("bin/busybox", busybox_bytes, 0o755)
    for applet in busybox_applets(busybox):
        symlink("bin/" + applet, "busybox")
    symlink("bin/sh", "busybox")
    symlink("usr/bin/env", "/bin/busybox")

    regular("etc/passwd", PASSWD.encode())
    regular("etc/group", GROUP.encode())
    regular("var/www/index.html", index_html.encode())
    regular("VERSION", ("%s\n" % variant).encode())
    return entries


def build_layer_tar(variant, busybox=DEFAULT_BUSYBOX):
    """Uncompressed, byte-for-byte reproducible layer tarball."""
    entries = layer_entries(variant, busybox)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        # Sorting the paths puts every directory before its contents.
        for path in sorted(entries):
            info, data = entries[path]
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def gzip_bytes(data):
    """gzip with no file name and a zero timestamp, so output is reproducible."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        gz.write(data)
    return buf.getvalue()


def _canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class Image:
    """A built image: its blobs keyed by digest and its manifest bytes."""

    def __init__(self, manifest, config, layers):
        self.manifest = manifest          # bytes
        self.config = config              # bytes
        self.layers = layers              # list of compressed layer bytes
        self.manifest_digest = sha256_digest(manifest)
        self.config_digest = sha256_digest(config)

    def blobs(self):
        """(digest, bytes) for the config and every layer, config first."""
        out = [(self.config_digest, self.config)]
        out.extend((sha256_digest(layer), layer) for layer in self.layers)
        return out


def build_image(variant=1, entrypoint=None, cmd=None, arch=None, busybox=DEFAULT_BUSYBOX):
    """Build the image in memory and return an Image.

    entrypoint and cmd are lists of strings or None. When neither is given the
    image runs ["sh"].
    """
    if entrypoint is None and cmd is None:
        cmd = list(DEFAULT_CMD)
    arch = arch or host_arch()

    layer_tar = build_layer_tar(variant, busybox)
    layer_gz = gzip_bytes(layer_tar)
    diff_id = sha256_digest(layer_tar)

    container_config = {
        "Env": ["PATH=" + DEFAULT_PATH],
        "WorkingDir": "/",
    }
    if entrypoint is not None:
        container_config["Entrypoint"] = list(entrypoint)
    if cmd is not None:
        container_config["Cmd"] = list(cmd)
    config = {
        "architecture": arch,
        "os": "linux",
        "created": EPOCH_RFC3339,
        "config": container_config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [
            {
                "created": EPOCH_RFC3339,
                "created_by": "rkube test image: busybox rootfs, variant %s" % variant,
            }
        ],
    }
    config_bytes = _canonical_json(config)

    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": {
            "mediaType": MEDIA_TYPE_CONFIG,
            "digest": sha256_digest(config_bytes),
            "size": len(config_bytes),
        },
        "layers": [
            {
                "mediaType": MEDIA_TYPE_LAYER,
                "digest": sha256_digest(layer_gz),
                "size": len(layer_gz),
            }
        ],
        "annotations": {
            "org.opencontainers.image.created": EPOCH_RFC3339,
            "org.opencontainers.image.version": str(variant),
        },
    }
    return Image(_canonical_json(manifest), config_bytes, [layer_gz])


# ---------------------------------------------------------------------------
# Registry HTTP API v2 client (no auth).

class RegistryError(RuntimeError):
    pass


class RegistryClient:
    def __init__(self, registry, plain_http=True, timeout=60.0):
        self.base = ("http://" if plain_http else "https://") + registry
        self.timeout = timeout
        # Never route through an HTTP proxy taken from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _request(self, method, url, data=None, headers=None, ok=(200,)):
        if not url.startswith(("http://", "https://")):
            url = self.base + url
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            resp = self._opener.open(req, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            resp = e
        with resp:
            body = resp.read()
            status = resp.status if hasattr(resp, "status") else resp.code
            if status not in ok:
                raise RegistryError(
                    "%s %s -> HTTP %d: %s"
                    % (method, url, status, body[:1000].decode("utf-8", "replace"))
                )
            return status, resp.headers, body

    def blob_exists(self, repo, digest):
        status, _, _ = self._request(
            "HEAD", "/v2/%s/blobs/%s" % (repo, digest), ok=(200, 404)
        )
        return status == 200

    def upload_blob(self, repo, digest, data):
        """Upload data unless the registry already has it. True if uploaded."""
        if self.blob_exists(repo, digest):
            return False
        _, headers, _ = self._request(
            "POST", "/v2/%s/blobs/uploads/" % repo,
            data=b"", headers={"Content-Length": "0"}, ok=(202,),
        )
        location = headers.get("Location")
        if not location:
            raise RegistryError("upload POST for %s returned no Location" % repo)
        url = urllib.parse.urljoin(self.base + "/v2/%s/blobs/uploads/" % repo, location)
        sep = "&" if urllib.parse.urlsplit(url).query else "?"
        url += sep + urllib.parse.urlencode({"digest": digest})
        _, headers, _ = self._request(
            "PUT", url, data=data,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(len(data)),
            },
            ok=(201,),
        )
        got = headers.get("Docker-Content-Digest")
        if got and got != digest:
            raise RegistryError("registry stored blob as %s, expected %s" % (got, digest))
        return True

    def put_manifest(self, repo, reference, manifest, media_type):
        _, headers, _ = self._request(
            "PUT", "/v2/%s/manifests/%s" % (repo, reference), data=manifest,
            headers={"Content-Type": media_type, "Content-Length": str(len(manifest))},
            ok=(201,),
        )
        return headers.get("Docker-Content-Digest")


def push_image(registry, repo, tag, image, plain_http=True):
    """Push an Image as repo:tag; return the manifest digest."""
    client = RegistryClient(registry, plain_http=plain_http)
    for digest, data in image.blobs():
        client.upload_blob(repo, digest, data)
    got = client.put_manifest(repo, tag, image.manifest, MEDIA_TYPE_MANIFEST)
    if got and got != image.manifest_digest:
        raise RegistryError(
            "registry reports manifest digest %s, expected %s" % (got, image.manifest_digest)
        )
    return image.manifest_digest


def parse_name(name):
    """Split "repo/path:tag" into (repo, tag); the tag defaults to "latest"."""
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        repo, tag = name[:colon], name[colon + 1:]
    else:
        repo, tag = name, "latest"
    if not _REPO_RE.match(repo):
        raise ValueError("invalid repository name %r" % repo)
    if not _TAG_RE.match(tag):
        raise ValueError("invalid tag %r" % tag)
    return repo, tag


def build_and_push(registry, name, variant=1, entrypoint=None, cmd=None,
                   plain_http=True, arch=None, busybox=DEFAULT_BUSYBOX):
    """Build the image for `variant` and push it to registry as name (repo:tag).

    Returns ("REGISTRY/REPO:TAG", "sha256:...").
    """
    repo, tag = parse_name(name)
    image = build_image(variant, entrypoint=entrypoint, cmd=cmd, arch=arch, busybox=busybox)
    digest = push_image(registry, repo, tag, image, plain_http=plain_http)
    return "%s/%s:%s" % (registry, repo, tag), digest


def _argv_list(text):
    """A JSON list of strings, or else a shell-style word list."""
    stripped = text.strip()
    if stripped.startswith("["):
        value = json.loads(stripped)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise argparse.ArgumentTypeError("expected a JSON list of strings: %r" % text)
        return value
    return shlex.split(text)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Build a busybox test image and push it to a registry."
    )
    parser.add_argument("name", metavar="IMAGE:TAG", help="repository and tag, e.g. rkube-test/busybox:1")
    parser.add_argument("--registry", required=True, help="registry host:port, e.g. 127.0.0.1:5000")
    scheme = parser.add_mutually_exclusive_group()
    scheme.add_argument("--plain-http", dest="plain_http", action="store_true", default=True,
                        help="talk HTTP to the registry (default)")
    scheme.add_argument("--https", dest="plain_http", action="store_false",
                        help="talk HTTPS to the registry")
    parser.add_argument("--variant", default="1",
                        help="variant written to /VERSION and index.html (default 1)")
    parser.add_argument("--entrypoint", type=_argv_list, default=None,
                        help='entrypoint as a JSON list, e.g. \'["/bin/sh","-c"]\'')
    parser.add_argument("--cmd", type=_argv_list, default=None,
                        help='command as a JSON list, e.g. \'["httpd","-f","-h","/var/www"]\' (default ["sh"])')
    parser.add_argument("--arch", default=None, help="image architecture (default: this machine's)")
    parser.add_argument("--busybox", default=DEFAULT_BUSYBOX, help="static busybox binary to install")
    args = parser.parse_args(argv)

    if not re.match(r"^[A-Za-z0-9_.-]+$", args.variant):
        parser.error("--variant must be a plain word such as 2")
    try:
        ref, digest = build_and_push(
            args.registry, args.name, variant=args.variant,
            entrypoint=args.entrypoint, cmd=args.cmd,
            plain_http=args.plain_http, arch=args.arch, busybox=args.busybox,
        )
    except (ValueError, RegistryError, OSError, subprocess.CalledProcessError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    print("%s %s" % (ref, digest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
