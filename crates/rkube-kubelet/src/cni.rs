//! The pod network's CNI configuration: a bridge per node with host-local addresses from the
//! node's podCIDR, loopback, and portmap for hostPorts (Debian's containernetworking-plugins).

use std::path::Path;

/// The network's name in CNI results and IPAM state.
pub const NETWORK_NAME: &str = "rkube";

/// The conflist for a node whose pods take addresses from `pod_cidr`.
pub fn conflist(pod_cidr: &str, bridge: &str, ipam_dir: &Path) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": ipam_dir.display().to_string(),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true},
            {"type": "loopback"},
        ],
    })
    .to_string()
}

/// Writes the conflist where containerd reads it (atomically: containerd watches the directory).
pub fn write(
    conf_dir: &Path,
    pod_cidr: &str,
    bridge: &str,
    ipam_dir: &Path,
) -> std::io::Result<()> {
    std::fs::create_dir_all(conf_dir)?;
    std::fs::create_dir_all(ipam_dir)?;
    let path = conf_dir.join("10-rkube.conflist");
    let text = conflist(pod_cidr, bridge, ipam_dir);
    if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    let tmp = conf_dir.join(".10-rkube.conflist.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bridge_takes_addresses_from_the_node_cidr() {
        let text = conflist("10.42.3.0/24", "rkube0", Path::new("/d/agent/cni"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(
            v["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            "10.42.3.0/24"
        );
        assert_eq!(v["plugins"][0]["bridge"], "rkube0");
        assert_eq!(v["plugins"][1]["type"], "portmap");
    }
}
