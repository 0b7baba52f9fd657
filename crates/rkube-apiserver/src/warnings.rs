//! Warnings for the client (`Warning: 299 - "…"` headers, which kubectl prints), collected
//! while a request is handled.

use std::cell::RefCell;

use http::{HeaderValue, Response};

tokio::task_local! {
    static WARNINGS: RefCell<Vec<String>>;
}

/// Records a warning for the current request (ignored outside one).
pub fn warn(message: String) {
    let _ = WARNINGS.try_with(|w| w.borrow_mut().push(message));
}

/// Runs `handle` collecting warnings, then adds them to its response as upstream does.
pub async fn collect<B>(handle: impl Future<Output = Response<B>>) -> Response<B> {
    let (mut response, warnings) = WARNINGS
        .scope(RefCell::new(Vec::new()), async {
            let response = handle.await;
            let warnings = WARNINGS.with(|w| std::mem::take(&mut *w.borrow_mut()));
            (response, warnings)
        })
        .await;
    for warning in warnings {
        let escaped = warning.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(value) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            response.headers_mut().append("Warning", value);
        }
    }
    response
}
