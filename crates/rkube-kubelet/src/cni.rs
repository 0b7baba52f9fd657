//! The pod network's CNI configuration: a bridge per node with host-local addresses from the
//! node's podCIDR, loopback, and portmap for hostPorts (Debian's containernetworking-plugins).

use std::path::Path;

/// The network's name in CNI results and IPAM state.
pub const NETWORK_NAME: &str = "rkube";

/// The nftables table that masquerades the node's pod traffic leaving the node.
pub fn masquerade_table(bridge: &str) -> String {
    format!("rkube-masq-{bridge}")
}

/// The nftables table the node's NetworkPolicy enforcement owns.
pub fn netpol_table(bridge: &str) -> String {
    format!("rkube-netpol-{bridge}")
}

/// The nftables table the node's service proxy owns.
pub fn proxy_table(bridge: &str) -> String {
    format!("rkube-proxy-{bridge}")
}

/// The nftables rule set for [`masquerade_table`]: traffic from the pods that leaves through
/// another interface than the bridge is masqueraded (one rule for the node, where the bridge
/// plugin's ipMasq adds iptables chains for every pod), unless it goes to another pod of the
/// cluster: pods see each other's own addresses.
pub fn masquerade_rules(bridge: &str, pod_cidr: &str, cluster_cidr: Option<&str>) -> String {
    let table = masquerade_table(bridge);
    let to_pods = cluster_cidr.map_or(String::new(), |c| format!("ip daddr != {c} "));
    format!(
        "table ip {table} {{}}\ndelete table ip {table}\ntable ip {table} {{\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    ip saddr {pod_cidr} {to_pods}oifname != \"{bridge}\" masquerade\n  }}\n}}\n"
    )
}

/// Applies the masquerade rules with `nft -f`; false when nft is missing or refuses them.
pub fn apply_masquerade(bridge: &str, pod_cidr: &str, cluster_cidr: Option<&str>) -> bool {
    use std::io::Write;
    let child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(masquerade_rules(bridge, pod_cidr, cluster_cidr).as_bytes());
    }
    match child.wait_with_output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            tracing::warn!(error = %String::from_utf8_lossy(&out.stderr).trim(), "nft refused the masquerade rules; the bridge plugin masquerades instead");
            false
        }
        Err(_) => false,
    }
}

/// The conflist for a node whose pods take addresses from `pod_cidr`; `ip_masq` has the
/// bridge plugin masquerade (when the node's own rule could not be applied).
pub fn conflist(pod_cidr: &str, bridge: &str, ipam_dir: &Path, ip_masq: bool) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": ip_masq,
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
    ip_masq: bool,
) -> std::io::Result<()> {
    std::fs::create_dir_all(conf_dir)?;
    std::fs::create_dir_all(ipam_dir)?;
    let path = conf_dir.join("10-rkube.conflist");
    let text = conflist(pod_cidr, bridge, ipam_dir, ip_masq);
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
        let text = conflist("10.42.3.0/24", "rkube0", Path::new("/d/agent/cni"), false);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(
            v["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            "10.42.3.0/24"
        );
        assert_eq!(v["plugins"][0]["bridge"], "rkube0");
        assert_eq!(v["plugins"][1]["type"], "portmap");
        assert_eq!(v["plugins"][0]["ipMasq"], false);
    }

    #[test]
    fn the_masquerade_table_is_replaced_whole() {
        let rules = masquerade_rules("rk0", "10.42.3.0/24", Some("10.42.0.0/16"));
        assert!(
            rules.contains(
                "ip saddr 10.42.3.0/24 ip daddr != 10.42.0.0/16 oifname != \"rk0\" masquerade"
            ),
            "{rules}"
        );
        assert!(rules.starts_with("table ip rkube-masq-rk0 {}\ndelete table ip rkube-masq-rk0\n"));
        let alone = masquerade_rules("rk0", "10.42.3.0/24", None);
        assert!(alone.contains("ip saddr 10.42.3.0/24 oifname != \"rk0\" masquerade"));
    }
}
