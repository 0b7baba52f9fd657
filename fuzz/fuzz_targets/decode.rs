//! Request bodies as the API server decodes them: protobuf or JSON, then the typed round trip,
//! defaulting and validation of whatever kind the body claims. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rkube_api::registry;

fuzz_target!(|data: &[u8]| {
    let object = if data.starts_with(b"k8s\0") {
        rkube_proto::decode(data).ok()
    } else {
        serde_json::from_slice::<serde_json::Value>(data).ok()
    };
    let Some(object) = object else { return };
    let _ = rkube_proto::encode(&object);
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let (group, _) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().unwrap_or("ConfigMap");
    let Some(rt) = registry::all().by_kind(group, kind) else { return };
    if let Ok(mut normalized) = (rt.normalize)(&object) {
        rkube_api::defaults::apply_defaults(rt.group, rt.kind, &mut normalized);
        let _ = rkube_api::validation::validate(rt.group, rt.kind, &normalized, Some(&object));
    }
    // JSON text decoded straight into the type gives what the parsed round trip gives.
    if !data.starts_with(b"k8s\0")
        && let Ok(direct) = (rt.normalize_json)(data)
    {
        assert_eq!(Ok(direct), (rt.normalize)(&object).map_err(|e| e.to_string()));
    }
});
