//! `/openapi/v2`: the Swagger 2.0 document in JSON and in gnostic's protobuf form (what
//! client-go's `OpenAPISchema()` asks for), both tagged with one ETag.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use kube::client::Body;
use prost::Message;
use rkube_apiserver_tests::start;
use serde_json::Value;

const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

async fn get(
    client: &kube::Client,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, http::HeaderMap, Vec<u8>) {
    let mut request = http::Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .send(request.body(Body::from(Vec::new())).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect_bytes().await.unwrap();
    (status, headers, body.to_vec())
}

async fn json_document(client: &kube::Client) -> Value {
    let (status, _, body) = get(client, "/openapi/v2", &[("Accept", "application/json")]).await;
    assert_eq!(status, 200);
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn the_v2_document_is_served_in_json_with_kinds_and_patch_strategies() {
    let t = start().await;
    let doc = json_document(&t.client).await;
    assert_eq!(doc["swagger"], "2.0");
    let pod_spec = &doc["definitions"]["io.k8s.api.core.v1.PodSpec"];
    assert_eq!(
        pod_spec["properties"]["containers"]["x-kubernetes-patch-merge-key"],
        "name"
    );
    assert_eq!(
        doc["definitions"]["io.k8s.api.core.v1.Pod"]["x-kubernetes-group-version-kind"][0]["kind"],
        "Pod"
    );
    assert!(doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["get"].is_object());
}

#[tokio::test]
async fn the_protobuf_form_decodes_with_gnostics_schema_and_matches_the_json() {
    let t = start().await;
    let json = json_document(&t.client).await;
    let (status, headers, body) = get(&t.client, "/openapi/v2", &[("Accept", PROTOBUF)]).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["content-type"],
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    );
    let doc = gnostic::Document::decode(body.as_slice()).expect("an openapi.v2.Document");
    assert_eq!(doc.swagger, "2.0");
    assert_eq!(doc.info.as_ref().unwrap().title, "Kubernetes");
    assert_eq!(doc.security[0].additional_properties[0].name, "BearerToken");

    // Every definition and path of the JSON form, and nothing else.
    let definitions = &doc.definitions.as_ref().unwrap().additional_properties;
    let names: BTreeSet<&str> = definitions.iter().map(|d| d.name.as_str()).collect();
    let json_names: BTreeSet<&str> = json["definitions"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, json_names);
    let paths = &doc.paths.as_ref().unwrap().path;
    let path_names: BTreeSet<&str> = paths.iter().map(|p| p.name.as_str()).collect();
    let json_paths: BTreeSet<&str> = json["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(path_names, json_paths);

    // What kubectl reads: kinds, patch strategies, types, references, required fields.
    let definition = |name: &str| {
        definitions
            .iter()
            .find(|d| d.name == name)
            .and_then(|d| d.value.as_ref())
            .unwrap()
    };
    let deployment = definition("io.k8s.api.apps.v1.Deployment");
    assert_eq!(
        deployment
            .extension("x-kubernetes-group-version-kind")
            .unwrap(),
        json["definitions"]["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"]
    );
    let pod_spec = definition("io.k8s.api.core.v1.PodSpec");
    assert_eq!(
        pod_spec.required,
        ["containers"],
        "the JSON form's required list"
    );
    let containers = pod_spec.property("containers");
    assert_eq!(containers.r#type.as_ref().unwrap().value, ["array"]);
    assert_eq!(
        containers.items.as_ref().unwrap().schema[0].r#ref,
        "#/definitions/io.k8s.api.core.v1.Container"
    );
    assert_eq!(
        containers
            .extension("x-kubernetes-patch-merge-key")
            .unwrap(),
        "name"
    );
    assert_eq!(
        containers.extension("x-kubernetes-patch-strategy").unwrap(),
        "merge"
    );

    let item = paths
        .iter()
        .find(|p| p.name == "/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        .and_then(|p| p.value.as_ref())
        .unwrap();
    let patch = item.patch.as_ref().unwrap();
    assert_eq!(
        gnostic::extension(&patch.vendor_extension, "x-kubernetes-action").unwrap(),
        "patch"
    );
    assert_eq!(
        gnostic::extension(&patch.vendor_extension, "x-kubernetes-group-version-kind").unwrap()["kind"],
        "Deployment"
    );
    let parameters: Vec<&gnostic::Parameter> = patch
        .parameters
        .iter()
        .chain(&item.parameters)
        .filter_map(|p| p.parameter.as_ref())
        .collect();
    let body = parameters
        .iter()
        .find_map(|p| p.body_parameter.as_ref())
        .unwrap();
    assert!(body.required);
    assert_eq!(
        body.schema.as_ref().unwrap().r#ref,
        "#/definitions/io.k8s.api.apps.v1.Deployment"
    );
    assert!(parameters.iter().any(|p| {
        p.non_body_parameter
            .as_ref()
            .and_then(|n| n.query_parameter_sub_schema.as_ref())
            .is_some_and(|q| {
                q.name == "fieldValidation" && q.r#type == "string" && q.r#in == "query"
            })
    }));
    assert!(parameters.iter().any(|p| {
        p.non_body_parameter
            .as_ref()
            .and_then(|n| n.path_parameter_sub_schema.as_ref())
            .is_some_and(|q| q.name == "name" && q.required && q.r#type == "string")
    }));
    let codes: Vec<&str> = patch
        .responses
        .as_ref()
        .unwrap()
        .response_code
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert!(codes.contains(&"200"), "{codes:?}");
}

#[tokio::test]
async fn both_forms_carry_one_etag_and_a_client_holding_it_gets_not_modified() {
    let t = start().await;
    let (_, json_headers, json) =
        get(&t.client, "/openapi/v2", &[("Accept", "application/json")]).await;
    let (_, pb_headers, _) = get(&t.client, "/openapi/v2", &[("Accept", PROTOBUF)]).await;
    let etag = json_headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(pb_headers["etag"], etag.as_str());
    let digest = ring::digest::digest(&ring::digest::SHA512, &json);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(etag, format!("\"{hex}\""));
    assert_eq!(json_headers["vary"], "Accept");

    let (status, headers, body) = get(
        &t.client,
        "/openapi/v2",
        &[("Accept", PROTOBUF), ("If-None-Match", &etag)],
    )
    .await;
    assert_eq!(status, 304);
    assert!(body.is_empty());
    assert_eq!(headers["etag"], etag.as_str());
    let (status, _, _) = get(
        &t.client,
        "/openapi/v2",
        &[("Accept", "application/json"), ("If-None-Match", "\"old\"")],
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_legacy_path_serves_the_protobuf_form_and_other_types_are_not_acceptable() {
    let t = start().await;
    let (_, _, current) = get(&t.client, "/openapi/v2", &[("Accept", PROTOBUF)]).await;
    let (status, _, legacy) = get(&t.client, "/swagger-2.0.0.pb-v1", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(legacy, current);
    let (status, _, _) = get(&t.client, "/openapi/v2", &[("Accept", "text/html")]).await;
    assert_eq!(status, 406);
}

/// The part of gnostic's `openapi.v2` messages (OpenAPIv2.proto) the tests read, written
/// from the schema's field numbers, as an independent decoder of the served bytes.
mod gnostic {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Document {
        #[prost(string, tag = "1")]
        pub swagger: String,
        #[prost(message, optional, tag = "2")]
        pub info: Option<Info>,
        #[prost(message, optional, tag = "8")]
        pub paths: Option<Paths>,
        #[prost(message, optional, tag = "9")]
        pub definitions: Option<Definitions>,
        #[prost(message, repeated, tag = "12")]
        pub security: Vec<SecurityRequirement>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Info {
        #[prost(string, tag = "1")]
        pub title: String,
        #[prost(string, tag = "2")]
        pub version: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SecurityRequirement {
        #[prost(message, repeated, tag = "1")]
        pub additional_properties: Vec<NamedStringArray>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedStringArray {
        #[prost(string, tag = "1")]
        pub name: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Paths {
        #[prost(message, repeated, tag = "2")]
        pub path: Vec<NamedPathItem>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedPathItem {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<PathItem>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PathItem {
        #[prost(message, optional, tag = "2")]
        pub get: Option<Operation>,
        #[prost(message, optional, tag = "8")]
        pub patch: Option<Operation>,
        #[prost(message, repeated, tag = "9")]
        pub parameters: Vec<ParametersItem>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Operation {
        #[prost(string, tag = "5")]
        pub operation_id: String,
        #[prost(message, repeated, tag = "8")]
        pub parameters: Vec<ParametersItem>,
        #[prost(message, optional, tag = "9")]
        pub responses: Option<Responses>,
        #[prost(message, repeated, tag = "13")]
        pub vendor_extension: Vec<NamedAny>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ParametersItem {
        #[prost(message, optional, tag = "1")]
        pub parameter: Option<Parameter>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Parameter {
        #[prost(message, optional, tag = "1")]
        pub body_parameter: Option<BodyParameter>,
        #[prost(message, optional, tag = "2")]
        pub non_body_parameter: Option<NonBodyParameter>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct BodyParameter {
        #[prost(string, tag = "2")]
        pub name: String,
        #[prost(bool, tag = "4")]
        pub required: bool,
        #[prost(message, optional, tag = "5")]
        pub schema: Option<Schema>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NonBodyParameter {
        #[prost(message, optional, tag = "3")]
        pub query_parameter_sub_schema: Option<QueryParameterSubSchema>,
        #[prost(message, optional, tag = "4")]
        pub path_parameter_sub_schema: Option<PathParameterSubSchema>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct QueryParameterSubSchema {
        #[prost(string, tag = "2")]
        pub r#in: String,
        #[prost(string, tag = "4")]
        pub name: String,
        #[prost(string, tag = "6")]
        pub r#type: String,
        #[prost(bool, tag = "20")]
        pub unique_items: bool,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PathParameterSubSchema {
        #[prost(bool, tag = "1")]
        pub required: bool,
        #[prost(string, tag = "4")]
        pub name: String,
        #[prost(string, tag = "5")]
        pub r#type: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Responses {
        #[prost(message, repeated, tag = "1")]
        pub response_code: Vec<NamedResponseValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedResponseValue {
        #[prost(string, tag = "1")]
        pub name: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Definitions {
        #[prost(message, repeated, tag = "1")]
        pub additional_properties: Vec<NamedSchema>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedSchema {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<Schema>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Schema {
        #[prost(string, tag = "1")]
        pub r#ref: String,
        #[prost(string, tag = "4")]
        pub description: String,
        #[prost(string, repeated, tag = "19")]
        pub required: Vec<String>,
        #[prost(message, optional, tag = "22")]
        pub r#type: Option<TypeItem>,
        #[prost(message, optional, tag = "23")]
        pub items: Option<ItemsItem>,
        #[prost(message, optional, tag = "25")]
        pub properties: Option<Properties>,
        #[prost(message, repeated, tag = "31")]
        pub vendor_extension: Vec<NamedAny>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeItem {
        #[prost(string, repeated, tag = "1")]
        pub value: Vec<String>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ItemsItem {
        #[prost(message, repeated, tag = "1")]
        pub schema: Vec<Schema>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Properties {
        #[prost(message, repeated, tag = "1")]
        pub additional_properties: Vec<NamedSchema>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamedAny {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<Any>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Any {
        #[prost(string, tag = "2")]
        pub yaml: String,
    }

    impl Schema {
        pub fn property(&self, name: &str) -> &Schema {
            self.properties
                .iter()
                .flat_map(|p| &p.additional_properties)
                .find(|p| p.name == name)
                .and_then(|p| p.value.as_ref())
                .unwrap_or_else(|| panic!("property {name}"))
        }

        pub fn extension(&self, name: &str) -> Option<serde_json::Value> {
            extension(&self.vendor_extension, name)
        }
    }

    pub fn extension(list: &[NamedAny], name: &str) -> Option<serde_json::Value> {
        let any = list.iter().find(|e| e.name == name)?.value.as_ref()?;
        Some(serde_json::from_str(&any.yaml).expect("the extension's YAML (JSON) text"))
    }
}
