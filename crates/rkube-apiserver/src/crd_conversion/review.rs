//! Webhook conversion: the objects to convert go in one `ConversionReview` (v1, or v1beta1
//! when the definition prefers it) to the definition's `clientConfig`, through the admission
//! webhooks' client (HTTPS verified by `caBundle`, a Service resolved through its
//! endpoints). The answer is checked as upstream's `webhookConverter` checks it, with its
//! messages: the review's kind and uid, its result, the number of objects, each object's
//! apiVersion, kind, name, namespace and uid; of the metadata only labels and annotations
//! are taken from the webhook.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::app::App;
use crate::webhook::client;

/// Upstream's conversion requests carry a 30 s timeout.
const TIMEOUT: Duration = Duration::from_secs(30);

/// One conversion to make.
pub(super) struct Call<'a> {
    pub client_config: &'a Value,
    pub review_versions: &'a [String],
    /// `group/version` to convert to.
    pub desired: &'a str,
    /// The list kind, when the objects are a list's items.
    pub list_kind: Option<&'a str>,
}

impl Call<'_> {
    /// Converts `objects[i]` for every `i` in `pending` (at least one).
    pub(super) async fn convert(
        &self,
        app: &App,
        objects: &mut [Value],
        pending: &[usize],
    ) -> Result<(), String> {
        let first = &objects[pending[0]];
        // Go's GroupVersionKind as upstream prints the converted object (or list).
        let what = format!(
            "{}, Kind={}",
            first["apiVersion"].as_str().unwrap_or_default(),
            self.list_kind
                .unwrap_or_else(|| first["kind"].as_str().unwrap_or_default())
        );
        let review_version = self
            .review_versions
            .iter()
            .find(|v| matches!(v.as_str(), "v1" | "v1beta1"))
            .ok_or_else(|| "no supported conversion review versions".to_owned())?;
        let failed = |reason: String| format!("conversion webhook for {what} failed: {reason}");
        let config: k8s_openapi::api::admissionregistration::v1::WebhookClientConfig =
            serde_json::from_value(self.client_config.clone())
                .map_err(|e| failed(e.to_string()))?;
        let endpoint = app.endpoint(&config).await.map_err(failed)?;
        let uid = uuid::Builder::from_random_bytes(rand::random())
            .into_uuid()
            .to_string();
        let sent: Vec<Value> = pending.iter().map(|i| objects[*i].clone()).collect();
        let review = json!({
            "kind": "ConversionReview",
            "apiVersion": format!("apiextensions.k8s.io/{review_version}"),
            "request": {"uid": uid, "desiredAPIVersion": self.desired, "objects": sent},
        });
        let ca_bundle = config
            .ca_bundle
            .as_ref()
            .map(|b| b.0.as_slice())
            .unwrap_or_default();
        let answer = client::post(&endpoint, ca_bundle, &review, TIMEOUT)
            .await
            .map_err(|reason| {
                failed(
                    reason
                        .strip_prefix("failed to call webhook: ")
                        .unwrap_or(&reason)
                        .to_owned(),
                )
            })?;
        let converted = converted_objects(review_version, &uid, answer).map_err(failed)?;
        if converted.len() != pending.len() {
            return Err(format!(
                "conversion webhook for {what} returned {} objects, expected {}",
                converted.len(),
                pending.len()
            ));
        }
        let mut out = Vec::with_capacity(converted.len());
        for (index, (i, converted)) in pending.iter().zip(converted).enumerate() {
            out.push(self.accept(&what, index, &objects[*i], converted)?);
        }
        for (i, converted) in pending.iter().zip(out) {
            objects[*i] = converted;
        }
        Ok(())
    }

    /// One converted object, checked against the object sent; the sent metadata with the
    /// webhook's labels and annotations.
    fn accept(
        &self,
        what: &str,
        index: usize,
        original: &Value,
        mut converted: Value,
    ) -> Result<Value, String> {
        let list = self.list_kind.is_some();
        // Upstream counts the object before checking its version and kind in a list.
        let (invalid, invalid_at) = if list {
            (
                format!(
                    "conversion webhook for {what} returned invalid converted object at index {}",
                    index + 1
                ),
                format!(
                    "conversion webhook for {what} returned invalid converted object at index {index}"
                ),
            )
        } else {
            let single =
                format!("conversion webhook for {what} returned invalid object at index 0");
            (
                single,
                format!("conversion webhook for {what} returned invalid object"),
            )
        };
        let got_version = converted["apiVersion"].as_str().unwrap_or_default();
        if got_version != self.desired {
            return Err(format!(
                "{invalid}: invalid groupVersion (expected {}, received {got_version})",
                self.desired
            ));
        }
        let (kind, got_kind) = (
            original["kind"].as_str().unwrap_or_default(),
            converted["kind"].as_str().unwrap_or_default(),
        );
        if kind != got_kind {
            return Err(format!(
                "{invalid}: invalid kind (expected {kind}, received {got_kind})"
            ));
        }
        for (field, label) in [("name", "name"), ("namespace", "namespace"), ("uid", "UID")] {
            let (e, a) = (
                original["metadata"][field].as_str().unwrap_or_default(),
                converted["metadata"][field].as_str().unwrap_or_default(),
            );
            if e != a {
                return Err(format!(
                    "{invalid_at}: must have the same {label}: {e} != {a}"
                ));
            }
        }
        let invalid_meta = if list {
            format!(
                "conversion webhook for {what} returned invalid metadata in object at index {index}"
            )
        } else {
            format!("conversion webhook for {what} returned invalid metadata")
        };
        let meta = restore_metadata(original, &converted)
            .map_err(|why| format!("{invalid_meta}: {why}"))?;
        converted["metadata"] = Value::Object(meta);
        Ok(converted)
    }
}

/// The converted objects of an answer, checked as upstream does (v1beta1 answers are not
/// checked for kind and uid, for compatibility).
fn converted_objects(review_version: &str, uid: &str, answer: Value) -> Result<Vec<Value>, String> {
    if review_version == "v1" {
        let (api_version, kind) = (
            answer["apiVersion"].as_str().unwrap_or_default(),
            answer["kind"].as_str().unwrap_or_default(),
        );
        if api_version != "apiextensions.k8s.io/v1" || kind != "ConversionReview" {
            return Err(format!(
                "expected webhook response of apiextensions.k8s.io/v1, Kind=ConversionReview, got {api_version}, Kind={kind}"
            ));
        }
    }
    let Some(response) = answer.get("response").filter(|r| r.is_object()) else {
        return Err("no response provided".to_owned());
    };
    if review_version == "v1" {
        let got = response["uid"].as_str().unwrap_or_default();
        if got != uid {
            return Err(format!("expected response.uid={uid:?}, got {got:?}"));
        }
    }
    let status = response["result"]["status"].as_str().unwrap_or_default();
    if status != "Success" {
        return match response["result"]["message"].as_str() {
            Some(message) if !message.is_empty() => Err(message.to_owned()),
            _ => Err(format!(
                "response.result.status was '{status}', not 'Success'"
            )),
        };
    }
    Ok(response["convertedObjects"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// The original's metadata with the converted object's labels and annotations, which must
/// be maps of strings (upstream's `restoreObjectMeta`).
fn restore_metadata(original: &Value, converted: &Value) -> Result<Map<String, Value>, String> {
    let answered = match converted.get("metadata") {
        None => return Err("missing metadata in converted object".to_owned()),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(format!(
                "invalid metadata of type {} in converted object",
                go_type(other)
            ));
        }
    };
    let mut meta = original["metadata"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for field in ["labels", "annotations"] {
        match answered.get(field) {
            None | Some(Value::Null) => {
                meta.remove(field);
            }
            Some(Value::Object(map)) => {
                if let Some((key, value)) = map.iter().find(|(_, v)| !v.is_string()) {
                    return Err(format!(
                        "metadata.{field}[{key}] must be a string, but is {} in converted object",
                        go_type(value)
                    ));
                }
                meta.insert(field.to_owned(), Value::Object(map.clone()));
            }
            Some(other) => {
                return Err(format!(
                    "invalid metadata.{field} of type {} in converted object",
                    go_type(other)
                ));
            }
        }
    }
    Ok(meta)
}

/// The Go type a decoded JSON value has, as `%T` prints it.
fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "int64",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call<'a>(list_kind: Option<&'a str>, versions: &'a [String]) -> Call<'a> {
        Call {
            client_config: &Value::Null,
            review_versions: versions,
            desired: "stable.example.com/v2",
            list_kind,
        }
    }

    fn object(version: &str) -> Value {
        json!({"apiVersion": format!("stable.example.com/{version}"), "kind": "CronTab",
               "metadata": {"name": "a", "namespace": "default", "uid": "u1",
                            "resourceVersion": "7", "labels": {"x": "1"}},
               "spec": {"cronSpec": "* * * * *"}})
    }

    #[test]
    fn an_answer_must_be_a_successful_review_for_the_request() {
        let ok = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
                        "response": {"uid": "u", "result": {"status": "Success"},
                                     "convertedObjects": [{"a": 1}]}});
        assert_eq!(converted_objects("v1", "u", ok.clone()).unwrap().len(), 1);
        assert_eq!(
            converted_objects("v1", "other", ok).unwrap_err(),
            "expected response.uid=\"other\", got \"u\""
        );
        let failed = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
                            "response": {"uid": "u", "result": {"status": "Failure", "message": "no"}}});
        assert_eq!(converted_objects("v1", "u", failed).unwrap_err(), "no");
        let wrong = json!({"apiVersion": "v1", "kind": "Status"});
        assert_eq!(
            converted_objects("v1", "u", wrong).unwrap_err(),
            "expected webhook response of apiextensions.k8s.io/v1, Kind=ConversionReview, got v1, Kind=Status"
        );
        let empty = json!({"kind": "ConversionReview"});
        assert_eq!(
            converted_objects("v1beta1", "u", empty).unwrap_err(),
            "no response provided"
        );
    }

    #[test]
    fn a_converted_object_keeps_its_metadata_but_labels_and_annotations() {
        let versions = vec!["v1".to_owned()];
        let c = call(None, &versions);
        let mut converted = object("v2");
        converted["metadata"] = json!({"name": "a", "namespace": "default", "uid": "u1", "resourceVersion": "99",
                   "labels": {"y": "2"}, "annotations": {"a": "b"}});
        let accepted = c
            .accept(
                "stable.example.com/v1, Kind=CronTab",
                0,
                &object("v1"),
                converted,
            )
            .unwrap();
        assert_eq!(accepted["metadata"]["resourceVersion"], "7");
        assert_eq!(accepted["metadata"]["labels"], json!({"y": "2"}));
        assert_eq!(accepted["metadata"]["annotations"], json!({"a": "b"}));
        assert_eq!(accepted["apiVersion"], "stable.example.com/v2");
    }

    #[test]
    fn a_converted_object_must_be_the_same_object_in_the_desired_version() {
        let versions = vec!["v1".to_owned()];
        let what = "stable.example.com/v1, Kind=CronTab";
        let single = call(None, &versions);
        assert_eq!(
            single
                .accept(what, 0, &object("v1"), object("v1"))
                .unwrap_err(),
            "conversion webhook for stable.example.com/v1, Kind=CronTab returned invalid object at index 0: invalid groupVersion (expected stable.example.com/v2, received stable.example.com/v1)"
        );
        let mut renamed = object("v2");
        renamed["metadata"]["name"] = json!("b");
        assert_eq!(
            single
                .accept(what, 0, &object("v1"), renamed.clone())
                .unwrap_err(),
            "conversion webhook for stable.example.com/v1, Kind=CronTab returned invalid object: must have the same name: a != b"
        );
        let list = call(Some("CronTabList"), &versions);
        assert_eq!(
            list.accept(
                "stable.example.com/v1, Kind=CronTabList",
                1,
                &object("v1"),
                renamed
            )
            .unwrap_err(),
            "conversion webhook for stable.example.com/v1, Kind=CronTabList returned invalid converted object at index 1: must have the same name: a != b"
        );
        let mut bad_labels = object("v2");
        bad_labels["metadata"]["labels"] = json!({"n": 1});
        assert_eq!(
            single
                .accept(what, 0, &object("v1"), bad_labels)
                .unwrap_err(),
            "conversion webhook for stable.example.com/v1, Kind=CronTab returned invalid metadata: metadata.labels[n] must be a string, but is int64 in converted object"
        );
    }
}
