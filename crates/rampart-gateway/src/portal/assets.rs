//! Static files: the portal's own stylesheet and modules (`web/static`), and xterm.js with
//! its fit addon from npm (`web/node_modules/@xterm`, installed by `npm ci` in `web/`).
//! Release builds embed them; debug builds read them from disk.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../../web/static/"]
struct PortalFiles;

#[derive(RustEmbed)]
#[folder = "../../web/node_modules/@xterm/"]
#[include = "xterm/lib/xterm.mjs"]
#[include = "xterm/css/xterm.css"]
#[include = "addon-fit/lib/addon-fit.mjs"]
#[allow_missing = true]
struct XtermFiles;

pub async fn serve(Path(path): Path<String>) -> Response {
    let (file, xterm) = match path.split_once('/') {
        Some(("xterm" | "addon-fit", _)) => (XtermFiles::get(&path), true),
        _ => (PortalFiles::get(&path), false),
    };
    let Some(file) = file else {
        let why = if xterm {
            "xterm.js is not installed in this build: run `npm ci` in web/ and build again"
        } else {
            "no such file"
        };
        return (StatusCode::NOT_FOUND, why).into_response();
    };
    let mime = file.metadata.mimetype();
    let mut response = file.data.into_owned().into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    response
}
