//! The sandbox ("pause") image, made by the agent itself: a one-layer OCI image whose only
//! file is a tiny static program that waits for signals forever. The agent imports it into
//! containerd at start, so pods run without any registry holding a pause image.

use std::fmt::Write;

use ring::digest::{SHA256, digest};

/// A static ELF executable for this machine that blocks in a loop of pause(2) (ppoll on
/// arm64, which has no pause), or `None` on other architectures.
pub fn pause_program() -> Option<Vec<u8>> {
    let (machine, code): (u16, Vec<u8>) = match std::env::consts::ARCH {
        // mov eax, 34 (pause); syscall; jmp back to the mov.
        "x86_64" => (62, vec![0xb8, 0x22, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7]),
        // mov x0..x3, #0; mov x8, #73 (ppoll); svc #0; b back to the first mov.
        "aarch64" => (
            183,
            [
                0xd280_0000u32,
                0xd280_0001,
                0xd280_0002,
                0xd280_0003,
                0xd280_0928,
                0xd400_0001,
                0x17ff_fffa,
            ]
            .iter()
            .flat_map(|i| i.to_le_bytes())
            .collect(),
        ),
        _ => return None,
    };
    const BASE: u64 = 0x40_0000;
    const HEADERS: u64 = 64 + 56;
    let size = HEADERS + code.len() as u64;
    let mut elf = Vec::with_capacity(size as usize);
    // ELF header: 64-bit, little endian, current version, System V ABI, executable.
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // e_type: EXEC
    elf.extend_from_slice(&machine.to_le_bytes());
    elf.extend_from_slice(&1u32.to_le_bytes()); // e_version
    elf.extend_from_slice(&(BASE + HEADERS).to_le_bytes()); // e_entry
    elf.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    elf.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
    elf.extend_from_slice(&56u16.to_le_bytes()); // e_phentsize
    elf.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    elf.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    elf.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    elf.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    // One loadable, readable and executable segment holding the whole file.
    elf.extend_from_slice(&1u32.to_le_bytes()); // p_type: LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // p_flags: R + X
    elf.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_vaddr
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_paddr
    elf.extend_from_slice(&size.to_le_bytes()); // p_filesz
    elf.extend_from_slice(&size.to_le_bytes()); // p_memsz
    elf.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
    elf.extend_from_slice(&code);
    Some(elf)
}

/// A file in a tar archive.
pub struct TarEntry<'a> {
    /// The path inside the archive (no leading slash).
    pub path: &'a str,
    /// The mode bits.
    pub mode: u32,
    /// Contents; `None` for a directory.
    pub data: Option<&'a [u8]>,
}

/// A ustar archive of these entries (owner root, time 0).
pub fn tar(entries: &[TarEntry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        let mut header = [0u8; 512];
        let name = entry.path.as_bytes();
        header[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
        let size = entry.data.map_or(0, <[u8]>::len);
        let octal = |field: &mut [u8], value: u64| {
            let text = format!("{:0width$o}\0", value, width = field.len() - 1);
            field.copy_from_slice(text.as_bytes());
        };
        octal(&mut header[100..108], u64::from(entry.mode));
        octal(&mut header[108..116], 0);
        octal(&mut header[116..124], 0);
        octal(&mut header[124..136], size as u64);
        octal(&mut header[136..148], 0);
        header[156] = if entry.data.is_some() { b'0' } else { b'5' };
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
        let text = format!("{sum:06o}\0 ");
        header[148..156].copy_from_slice(text.as_bytes());
        out.extend_from_slice(&header);
        if let Some(data) = entry.data {
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// The `sha256:<hex>` digest of bytes.
pub fn sha256(data: &[u8]) -> String {
    let hash = digest(&SHA256, data);
    let mut hex = String::from("sha256:");
    for b in hash.as_ref() {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// An OCI image layout archive (what `ctr images import` reads) holding the pause image under
/// `name`, or `None` where no pause program can be made for this machine.
pub fn pause_image_archive(name: &str) -> Option<Vec<u8>> {
    let program = pause_program()?;
    let layer = tar(&[TarEntry {
        path: "pause",
        mode: 0o755,
        data: Some(&program),
    }]);
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let layer_digest = sha256(&layer);
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    })
    .to_string();
    let config_digest = sha256(config.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    })
    .to_string();
    let manifest_digest = sha256(manifest.as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": name,
            },
            "platform": {"architecture": arch, "os": "linux"},
        }],
    })
    .to_string();
    let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let (layer_path, config_path, manifest_path) = (
        blob(&layer_digest),
        blob(&config_digest),
        blob(&manifest_digest),
    );
    Some(tar(&[
        TarEntry {
            path: "oci-layout",
            mode: 0o644,
            data: Some(br#"{"imageLayoutVersion":"1.0.0"}"#),
        },
        TarEntry {
            path: "index.json",
            mode: 0o644,
            data: Some(index.as_bytes()),
        },
        TarEntry {
            path: "blobs/",
            mode: 0o755,
            data: None,
        },
        TarEntry {
            path: "blobs/sha256/",
            mode: 0o755,
            data: None,
        },
        TarEntry {
            path: &layer_path,
            mode: 0o644,
            data: Some(&layer),
        },
        TarEntry {
            path: &config_path,
            mode: 0o644,
            data: Some(config.as_bytes()),
        },
        TarEntry {
            path: &manifest_path,
            mode: 0o644,
            data: Some(manifest.as_bytes()),
        },
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_headers_carry_a_valid_checksum() {
        let archive = tar(&[TarEntry {
            path: "a",
            mode: 0o644,
            data: Some(b"hello"),
        }]);
        assert_eq!(archive.len(), 512 + 512 + 1024);
        let header = &archive[..512];
        let stored = std::str::from_utf8(&header[148..154]).unwrap_or_default();
        let mut copy = header.to_vec();
        copy[148..156].copy_from_slice(b"        ");
        let sum: u32 = copy.iter().map(|b| u32::from(*b)).sum();
        assert_eq!(u32::from_str_radix(stored, 8).ok(), Some(sum));
        assert_eq!(&archive[512..517], b"hello");
    }

    #[test]
    fn the_pause_program_is_an_elf_executable() {
        if let Some(elf) = pause_program() {
            assert_eq!(&elf[..4], b"\x7fELF");
            assert_eq!(
                elf.len(),
                120 + if cfg!(target_arch = "x86_64") { 9 } else { 28 }
            );
        }
    }
}
