//! The API explorer at `<mount>/docs/`: Swagger UI, vendored in the binary by
//! utoipa-swagger-ui's `vendored` feature (no CDN), reading `../v1/openapi.json` relative to
//! itself so that it works under any mount. Requests it sends are not signed, so "try it out"
//! answers 401: it is for reading the API, the clients are for calling it.

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use utoipa_swagger_ui::Config;

use crate::state::AppState;

static CONFIG: LazyLock<Arc<Config<'static>>> =
    LazyLock::new(|| Arc::new(Config::new(["../v1/openapi.json"])));

/// `/docs` (redirects to `/docs/`), `/docs/` and its files.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/docs", get(|| async { Redirect::permanent("docs/") }))
        .route("/docs/", get(|| file(String::new())))
        .route("/docs/{*file}", get(|Path(path): Path<String>| file(path)))
}

async fn file(path: String) -> Response {
    match utoipa_swagger_ui::serve(&path, CONFIG.clone()) {
        Ok(Some(file)) => {
            let content_type = HeaderValue::from_str(&file.content_type)
                .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
            let mut response = file.bytes.into_owned().into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, content_type);
            response
        }
        Ok(None) => (StatusCode::NOT_FOUND, "no such file").into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}
