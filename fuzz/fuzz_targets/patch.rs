//! The three patch formats on arbitrary documents and patches: the first byte picks the
//! format and the kind, the rest is `document \n patch` as JSON. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rkube_api::{patch, registry};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let mut parts = rest.splitn(2, |b| *b == b'\n');
    let (Some(doc), Some(p)) = (parts.next(), parts.next()) else { return };
    let (Ok(doc), Ok(p)) = (
        serde_json::from_slice::<serde_json::Value>(doc),
        serde_json::from_slice::<serde_json::Value>(p),
    ) else {
        return;
    };
    let types = registry::all().types();
    let rt = &types[usize::from(selector >> 2) % types.len()];
    let _ = match selector & 3 {
        0 => patch::json_patch(&doc, &p),
        1 => patch::merge_patch(&doc, &p),
        _ => patch::strategic_merge_patch(rt.group, rt.kind, &doc, &p),
    };
});
