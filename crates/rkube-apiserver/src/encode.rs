//! The last stage of a request: results and errors turned into responses, in the format the
//! client negotiated (JSON, YAML, protobuf, Table or metadata only). Errors map to
//! `metav1.Status` and their HTTP code here and nowhere else.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use rkube_api::ApiError;
use rkube_api::registry;
use serde_json::Value;

use crate::request::RequestInfo;

/// The body of every response.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

pub(crate) fn json_response(code: u16, value: &Value) -> Response<Body> {
    json_bytes_response(
        code,
        serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec()),
    )
}

/// A response carrying JSON already encoded.
pub(crate) fn json_bytes_response(code: u16, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The response for an error.
pub fn error_response(err: &ApiError) -> Response<Body> {
    let status = crate::status::status(err);
    let code = crate::status::code_and_reason(err).0;
    let mut response = json_response(code, &status);
    if let ApiError::TooManyRequests {
        retry_after_seconds: Some(s),
        ..
    } = err
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

pub(crate) fn text_response(code: u16, text: &'static str) -> Response<Body> {
    let mut response = Response::new(full(text));
    *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// What the client accepts, from its Accept header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Accept {
    Json,
    Table,
    Protobuf,
    Yaml,
    /// `as=PartialObjectMetadata[List];g=meta.k8s.io`: metadata only.
    Metadata,
}

/// Whether the endpoint a request names can answer as a Table. Upstream offers Tables only
/// where the storage converts to them (`RequestScope.AllowsMediaTypeTransform`): every stored
/// resource and its status, but not the reviews, which are answered without being stored, nor
/// the token, binding and eviction subresources. Elsewhere a Table is skipped in the client's
/// list, and refused with 406 when nothing else is listed.
pub(crate) fn serves_tables(info: &RequestInfo) -> bool {
    if !info.is_resource {
        return true;
    }
    let Some(rt) = registry::all().by_path(&info.group, &info.version, &info.resource) else {
        return true;
    };
    rt.is_stored()
        && !matches!(
            info.subresource.as_deref(),
            Some("token" | "binding" | "eviction")
        )
}

/// The client's first acceptable format, in the order it lists them; a Table only where the
/// endpoint `tables` can give one.
pub(crate) fn negotiate(accept: Option<&str>, tables: bool) -> Result<Accept, ApiError> {
    let Some(accept) = accept else {
        return Ok(Accept::Json);
    };
    for part in accept.split(',') {
        let mut params = part.split(';').map(str::trim);
        let media = params.next().unwrap_or("");
        let params: Vec<&str> = params.collect();
        let as_ = params.iter().find_map(|p| p.strip_prefix("as="));
        match (media, as_) {
            ("application/json" | "*/*" | "application/*", Some("Table"))
                if tables && params.contains(&"g=meta.k8s.io") =>
            {
                return Ok(Accept::Table);
            }
            (
                "application/json" | "*/*" | "application/*",
                Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
            ) if params.contains(&"g=meta.k8s.io") => {
                return Ok(Accept::Metadata);
            }
            (rkube_proto::MEDIA_TYPE, None) => return Ok(Accept::Protobuf),
            ("application/yaml", None) => return Ok(Accept::Yaml),
            ("application/json" | "*/*" | "application/*", None) => return Ok(Accept::Json),
            _ => {}
        }
    }
    Err(ApiError::NotAcceptable(
        "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
            .into(),
    ))
}

/// An object in the negotiated format: protobuf when asked for and the kind has a message,
/// JSON otherwise (errors, and Tables, are always JSON).
pub(crate) fn object_response(accept: Accept, code: u16, value: &Value) -> Response<Body> {
    if accept == Accept::Protobuf
        && let Ok(bytes) = rkube_proto::encode(value)
    {
        let mut response = Response::new(full(bytes));
        *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(rkube_proto::MEDIA_TYPE),
        );
        return response;
    }
    if accept == Accept::Yaml
        && let Ok(text) = serde_norway::to_string(value)
    {
        let mut response = Response::new(full(text));
        *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/yaml"),
        );
        return response;
    }
    json_response(code, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{self, Query};

    #[test]
    fn kubectl_accept_headers_pick_table_or_json() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(kubectl), true).unwrap(), Accept::Table);
        assert_eq!(
            negotiate(Some("application/json"), true).unwrap(),
            Accept::Json
        );
        assert_eq!(negotiate(None, true).unwrap(), Accept::Json);
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf, */*"), true).unwrap(),
            Accept::Protobuf
        );
        assert_eq!(
            negotiate(
                Some("application/json, application/vnd.kubernetes.protobuf"),
                true
            )
            .unwrap(),
            Accept::Json
        );
        assert!(matches!(
            negotiate(Some("text/html"), true),
            Err(ApiError::NotAcceptable(_))
        ));
    }

    #[test]
    fn a_table_is_skipped_where_the_endpoint_has_none() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(kubectl), false).unwrap(), Accept::Json);
        assert!(matches!(
            negotiate(Some("application/json;as=Table;v=v1;g=meta.k8s.io"), false),
            Err(ApiError::NotAcceptable(_))
        ));
        let info =
            |path: &str, method: &http::Method| request::parse(method, path, &Query::parse(None));
        let post = http::Method::POST;
        let get = http::Method::GET;
        assert!(!serves_tables(&info(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            &post
        )));
        assert!(!serves_tables(&info(
            "/api/v1/namespaces/default/serviceaccounts/default/token",
            &post
        )));
        assert!(serves_tables(&info(
            "/api/v1/namespaces/default/pods",
            &get
        )));
        assert!(serves_tables(&info(
            "/apis/apps/v1/namespaces/default/deployments/web/status",
            &get
        )));
    }
}
