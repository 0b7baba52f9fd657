#!/usr/bin/env python3
"""Writes crates/rkube-proto/src/table.rs: the message descriptor table.

Structure (messages, field tags, wire types, which messages are kinds) is read
from the prost-generated sources of the k8s-pb crate; the exact JSON field
names and whether a field is optional are read from k8s-openapi's serde code.
Neither tree is needed at run time.

Usage: python3 tools/proto-gen/gen.py [K8S_PB_SRC] [K8S_OPENAPI_VERSION_DIR]
Defaults look in ~/.cargo/registry/src/*/ for k8s-pb-0.9.0 and k8s-openapi-0.29.0 (v1_33).
"""

import glob
import os
import re
import sys

ROOTS = ["api", "apimachinery"]
SKIP_DIRS = ["apimachinery/pkg/apis/testapigroup"]

# Messages whose JSON form is not an object of their fields.
SPECIAL = {
    "apimachinery.pkg.apis.meta.v1.Time": "Time",
    "apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "apimachinery.pkg.apis.meta.v1.Duration": "Duration",
    "apimachinery.pkg.apis.meta.v1.FieldsV1": "RawJson",
    "apimachinery.pkg.api.resource.Quantity": "Quantity",
    "apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "apimachinery.pkg.runtime.RawExtension": "RawJson",
}

# Pointer string fields upstream where "" means something different from unset,
# so an empty string read from the wire is kept (see the crate docs).
KEEP_EMPTY = {
    ("api.core.v1.PersistentVolumeClaimSpec", "storageClassName"),
    ("api.core.v1.PersistentVolumeClaimSpec", "volumeAttributesClassName"),
}

# Struct types upstream embeds with `json:",inline"`, for messages k8s-openapi lacks.
EMBEDDED = {"LocalObjectReference", "VolumeSource", "PersistentVolumeSource", "ProbeHandler",
            "IngressRuleValue", "RuleWithOperations", "Rule", "DeviceConfiguration",
            "EphemeralContainerCommon"}

# Kinds from meta/v1 that every group version carries.
META_KINDS = ["Status", "DeleteOptions", "WatchEvent", "ListOptions", "GetOptions",
              "CreateOptions", "PatchOptions", "UpdateOptions", "APIGroup",
              "APIGroupList", "APIResourceList", "APIVersions", "PartialObjectMetadata",
              "PartialObjectMetadataList"]

PROST_RE = re.compile(r'#\[prost\((.*)\)\]')
FIELD_RE = re.compile(r'pub (r#)?(\w+): (.*),$')
STRUCT_RE = re.compile(r'^pub struct (\w+) \{')


def find(pattern):
    hits = sorted(glob.glob(os.path.expanduser(pattern)))
    if not hits:
        sys.exit(f"not found: {pattern}")
    return hits[-1]


def norm(name):
    return re.sub(r'[^a-z0-9]', '', name.lower())


ACRONYMS = {"id": "ID", "uid": "UID", "io": "IO", "api": "API", "ip": "IP", "url": "URL", "tls": "TLS"}


def camel(snake):
    """Upstream JSON spelling of a prost field name that k8s-openapi does not know."""
    head, *rest = snake.split('_')
    return head + ''.join(ACRONYMS.get(p, p[:1].upper() + p[1:]) for p in rest)


def parse_pb(src):
    """Returns {pkg: {msg: [field]}} and [(api_version, kind, pkg.msg)]."""
    messages = {}
    kinds = []
    for root in ROOTS:
        for path in sorted(glob.glob(os.path.join(src, root, "**", "mod.rs"), recursive=True)):
            rel = os.path.relpath(os.path.dirname(path), src)
            if any(rel.startswith(s) for s in SKIP_DIRS):
                continue
            pkg = rel.replace(os.sep, ".")
            lines = open(path).read().split("\n")
            current = None
            attr = None
            impl_for = None
            api_version = None
            # rustfmt wraps long field types over several lines: join them first.
            joined = []
            for line in lines:
                last = joined[-1].strip() if joined else ""
                open_type = last.count("<") > last.count(">") or not last.endswith(",")
                if re.match(r'pub (r#)?\w+:', last) and open_type:
                    joined[-1] += " " + line.strip()
                else:
                    joined.append(line)
            for line in joined:
                s = line.strip()
                m = STRUCT_RE.match(line)
                if m:
                    current = messages.setdefault(pkg, {}).setdefault(m.group(1), [])
                    continue
                if line.startswith("}"):
                    current = None
                    continue
                m = re.match(r'impl crate::Resource for (\w+) \{', line)
                if m:
                    impl_for = m.group(1)
                    continue
                m = re.match(r'const API_VERSION: &\'static str = "(.*)";', s)
                if m and impl_for:
                    api_version = m.group(1)
                    continue
                m = re.match(r'const KIND: &\'static str = "(.*)";', s)
                if m and impl_for and api_version:
                    kinds.append((api_version, m.group(1), f"{pkg}.{impl_for}"))
                    impl_for = api_version = None
                    continue
                if current is None:
                    continue
                m = PROST_RE.match(s)
                if m:
                    attr = m.group(1)
                    continue
                m = FIELD_RE.match(s)
                if m and attr:
                    current.append(field_of(pkg, attr, m.group(2), m.group(3)))
                    attr = None
    return messages, kinds


def resolve(pkg, rust_type):
    """The qualified message name of the last type path in a prost field type."""
    inner = re.sub(r"\s+", "", rust_type)
    for wrapper in ["::core::option::Option<", "::prost::alloc::vec::Vec<",
                    "::prost::alloc::boxed::Box<"]:
        inner = inner.replace(wrapper, "")
    inner = inner.rstrip(">, ")
    if "BTreeMap<" in inner:
        inner = inner.split(",")[-1].strip()
    path = [p for p in inner.split("::") if p]
    base = pkg.split(".")
    while path and path[0] == "super":
        base.pop()
        path.pop(0)
    return ".".join(base + path)


def field_of(pkg, attr, name, rust_type):
    tag = int(re.search(r'tag = "(\d+)"', attr).group(1))
    f = {"tag": tag, "name": name, "repeated": False, "map": False}
    m = re.match(r'btree_map = "string, (\w+)"', attr)
    if m:
        f["map"] = True
        base = m.group(1)
    else:
        base = attr.split(",")[0].strip()
        f["repeated"] = "repeated" in attr
    if base.startswith("bytes"):
        base = "bytes"
    if base == "message":
        f["type"] = "message"
        f["message"] = resolve(pkg, rust_type)
    elif base in ("string", "bytes", "bool", "int32", "int64"):
        f["type"] = base
    else:
        sys.exit(f"unsupported prost type {base} in {pkg} field {name}")
    return f


def parse_openapi(root):
    """Returns {pkg: {struct: {norm(json): (json, optional)}}}."""
    out = {}
    for path in glob.glob(os.path.join(root, "**", "*.rs"), recursive=True):
        rel = os.path.relpath(os.path.dirname(path), root)
        pkg = rel.replace(os.sep, ".")
        text = open(path).read()
        m = re.search(r'^pub struct (\w+) \{(.*?)^\}', text, re.M | re.S)
        if not m:
            continue
        optional = {}
        for fm in re.finditer(r'^    pub (?:r#)?(\w+): (.*),$', m.group(2), re.M):
            optional[fm.group(1)] = fm.group(2).startswith("Option<")
        fields = {}
        for jm in re.finditer(r'"([^"]+)" => Field::Key_(\w+),', text):
            json, key = jm.group(1), jm.group(2)
            fields[norm(json)] = (json, optional.get(key, True))
        # prost spells acronyms in message names as words (AWS -> Aws), so match loosely.
        out.setdefault(pkg, {})[m.group(1).lower()] = fields
    return out


def main():
    pb_src = sys.argv[1] if len(sys.argv) > 1 else find("~/.cargo/registry/src/*/k8s-pb-0.9.0/src")
    oa = sys.argv[2] if len(sys.argv) > 2 else find(
        "~/.cargo/registry/src/*/k8s-openapi-0.29.0/src/v1_33")
    messages, kinds = parse_pb(pb_src)
    openapi = parse_openapi(oa)

    names = sorted(f"{pkg}.{msg}" for pkg in messages for msg in messages[pkg])
    index = {n: i for i, n in enumerate(names)}
    unmatched = []
    inlined = []
    out = []
    out.append("// @generated by tools/proto-gen/gen.py from k8s-pb 0.9.0 and k8s-openapi 0.29.0 (v1_33).")
    out.append("// Do not edit by hand: run `python3 tools/proto-gen/gen.py` and `cargo fmt`.")
    out.append("")
    out.append("use crate::descriptor::{Field, Kind, Message, Special, Type};")
    out.append("")
    out.append("/// Every message, sorted by qualified name; `Type::Message` holds an index into this.")
    out.append("pub(crate) static MESSAGES: &[Message] = &[")
    def special_of(name):
        special = SPECIAL.get(name)
        if special is None and name.endswith(("ExtraValue", "meta.v1.Verbs")):
            special = "StringList"
        return special

    def openapi_fields(name):
        pkg, msg = name.rsplit(".", 1)
        return openapi.get(pkg, {}).get(msg.lower())

    def fields_of(name):
        pkg, msg = name.rsplit(".", 1)
        if name not in index:
            sys.exit(f"unknown message {name}")
        return sorted(messages[pkg][msg], key=lambda f: f["tag"])

    def info(name, f):
        """(json name, optional, inline) of field f of message name."""
        oa_fields = openapi_fields(name)
        if oa_fields is not None and norm(f["name"]) in oa_fields:
            json, optional = oa_fields[norm(f["name"])]
            return json, optional, False
        target = f.get("message")
        if target and not f["repeated"] and not f["map"] and special_of(target) is None:
            if oa_fields is not None:
                # A Go struct embedded with `json:",inline"`: its fields sit in the parent.
                flat = flat_names(target)
                # Newer fields (k8s-pb is ahead of 1.33) may be missing, so most must match.
                known = sum(norm(n) in oa_fields for n in flat)
                if flat and known * 2 >= len(flat):
                    return "", True, True
            elif (target.rsplit(".", 1)[1] in EMBEDDED
                  and norm(f["name"]) == norm(target.rsplit(".", 1)[1])):
                # No k8s-openapi type to compare with (a version 1.33 does not serve):
                # the types upstream embeds, in a field named after the type.
                return "", True, True
        return camel(f["name"]), True, False

    flat_cache = {}

    def flat_names(name):
        if name not in flat_cache:
            flat_cache[name] = set()
            result = set()
            for f in fields_of(name):
                json, _, inline = info(name, f)
                result |= flat_names(f["message"]) if inline else {json}
            flat_cache[name] = result
        return flat_cache[name]

    for name in names:
        pkg, msg = name.rsplit(".", 1)
        special = special_of(name)
        oa_fields = openapi_fields(name)
        rows = []
        for f in fields_of(name):
            json, optional, inline = info(name, f)
            if inline:
                inlined.append(f"{name}.{f['name']} ({f['message']})")
            elif oa_fields is None or norm(f["name"]) not in oa_fields:
                if special is None:
                    unmatched.append(f"{name}.{f['name']} -> {json}")
            if f["type"] == "message":
                target = f["message"]
                if target not in index:
                    sys.exit(f"{name}.{f['name']}: unknown message {target}")
                ty = f"Type::Message({index[target]})"
            else:
                ty = {"string": "Type::String", "bytes": "Type::Bytes", "bool": "Type::Bool",
                      "int32": "Type::Int32", "int64": "Type::Int64"}[f["type"]]
            keep_empty = (not optional) or (name, json) in KEEP_EMPTY
            rows.append(
                f"Field {{ tag: {f['tag']}, json: {json!r}, ty: {ty}, repeated: {str(f['repeated']).lower()}, "
                f"map: {str(f['map']).lower()}, inline: {str(inline).lower()}, keep_empty: {str(keep_empty).lower()} }},".replace("'", '"'))
        out.append(f"    Message {{ name: \"{name}\", special: Special::{special or 'None'}, fields: &[")
        out.extend("        " + r for r in rows)
        out.append("    ] },")
    out.append("];")
    out.append("")

    table = set()
    extra = []
    for api_version, kind, name in kinds:
        table.add((api_version, kind, name))
        pkg, msg = name.rsplit(".", 1)
        if f"{msg}List" in messages[pkg]:
            table.add((api_version, f"{kind}List", f"{pkg}.{msg}List"))
    # Objects served only as subresources (Scale, Eviction, TokenRequest, Binding) have no
    # Resource impl in k8s-pb: any other message with ObjectMeta metadata is a kind too,
    # in the apiVersion its package's kinds use.
    package_version = {name.rsplit(".", 1)[0]: v for v, _, name in kinds}
    object_meta = "apimachinery.pkg.apis.meta.v1.ObjectMeta"
    kind_messages = {name for _, _, name in table}
    for name in names:
        pkg, msg = name.rsplit(".", 1)
        has_meta = any(f.get("message") == object_meta and f["name"] == "metadata"
                       for f in messages[pkg][msg])
        embedded_only = msg.endswith(("TemplateSpec", "ClaimTemplate"))
        if has_meta and name not in kind_messages and pkg in package_version and not embedded_only:
            table.add((package_version[pkg], msg, name))
            extra.append(f"{package_version[pkg]} {msg}")
    for kind in META_KINDS:
        for api_version in ["meta.k8s.io/v1", "v1"]:
            table.add((api_version, kind, f"apimachinery.pkg.apis.meta.v1.{kind}"))
    out.append("/// Every known kind as (apiVersion, kind, message index), sorted for binary search.")
    out.append("pub(crate) static KINDS: &[Kind] = &[")
    for api_version, kind, name in sorted(table):
        if name not in index:
            sys.exit(f"kind {api_version} {kind}: unknown message {name}")
        out.append(f"    Kind {{ api_version: \"{api_version}\", kind: \"{kind}\", message: {index[name]} }},")
    out.append("];")
    out.append("")

    here = os.path.dirname(os.path.abspath(__file__))
    dest = os.path.join(here, "..", "..", "crates", "rkube-proto", "src", "table.rs")
    with open(dest, "w") as fh:
        fh.write("\n".join(out))
    print(f"{len(names)} messages, {len(table)} kinds -> {os.path.normpath(dest)}")
    for u in extra:
        print(f"kind without a Resource impl: {u}", file=sys.stderr)
    for u in inlined:
        print(f"inline: {u}", file=sys.stderr)
    for u in unmatched:
        print(f"no k8s-openapi name, camelCase used: {u}", file=sys.stderr)


if __name__ == "__main__":
    main()
