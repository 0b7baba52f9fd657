//! The endpoints that are not resources: health, version, metrics, OpenAPI documents and
//! discovery. They are reached after authentication and authorization like everything else,
//! except health and version, which answer everyone.

use http::{HeaderValue, Response, StatusCode, header};

use crate::app::App;
use crate::encode::{Body, error_response, full, json_response, text_response};
use crate::request::ApiRequest;

/// The answer to a path anyone may ask for, before authentication (upstream's default RBAC
/// lets `system:unauthenticated` read health and version).
pub(crate) fn public(path: &str, ready: bool) -> Option<Response<Body>> {
    match path {
        "/healthz" | "/livez" => Some(text_response(200, "ok")),
        "/readyz" if ready => Some(text_response(200, "ok")),
        "/readyz" => Some(text_response(503, "not ready")),
        "/version" => Some(json_response(200, &crate::discovery::version())),
        _ => None,
    }
}

/// Serves a non-resource path.
pub(crate) fn serve(app: &App, request: &ApiRequest) -> Response<Body> {
    let path = request.path();
    let accept = request.header(header::ACCEPT);
    match path {
        "/metrics" => return metrics(app, &request.head.method),
        "/openapi/v2" | "/swagger-2.0.0.pb-v1" => {
            return crate::openapi_v2::response(path, &request.head.headers, &app.remotes.openapi);
        }
        _ => {}
    }
    if (path == "/api" || path == "/apis")
        && let Some(version) = crate::discovery::wants_aggregated(accept)
    {
        let remotes = app.remotes.all();
        let body = crate::discovery::aggregated(path == "/api", version, &remotes);
        let mut response = json_response(200, &body);
        let media = crate::discovery::AGGREGATED.replace("v=v2", &format!("v={version}"));
        if let Ok(v) = HeaderValue::from_str(&media) {
            response.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        return response;
    }
    if let Err(err) = crate::encode::negotiate(accept, true) {
        return error_response(&err);
    }
    if path == "/openapi/v3" || path.starts_with("/openapi/v3/") {
        return match crate::openapi::serve(path, &app.remotes.openapi.v3_documents()) {
            Ok(bytes) => {
                let mut response = Response::new(full(bytes.as_ref().clone()));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
            Err(err) => error_response(&err),
        };
    }
    match crate::discovery::serve(path, &app.config, &app.remotes.all()) {
        Ok(value) => json_response(200, &value),
        Err(err) => error_response(&err),
    }
}

/// `/metrics`: every registered source's text, for GET only (as upstream answers 405).
fn metrics(app: &App, method: &http::Method) -> Response<Body> {
    if method != http::Method::GET {
        let mut response = Response::new(full("method not allowed"));
        *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        return response;
    }
    let mut text: String = app
        .config
        .metrics
        .iter()
        .map(crate::app::MetricsSource::render)
        .collect();
    text.push_str(&crate::request_metrics::render());
    if let Some(counts) = app.cache.object_counts() {
        text.push_str(&crate::request_metrics::render_object_counts(&counts));
    }
    let mut response = Response::new(full(text));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
