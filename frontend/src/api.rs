//! Owns the REST calls of the cockpit (`/api/v1/...`) and the access token they carry.
//! Errors keep the server's JSON `{status, code, message}` so the page can show the
//! message as the server wrote it.

use gloo_net::http::{Request, RequestBuilder};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The server's error shape ([`vigie_proto::ErrorBody`]), or a network failure
/// (`status` 0, code `network`).
pub type ApiProblem = vigie_proto::ErrorBody;

fn network(error: impl std::fmt::Display) -> ApiProblem {
    ApiProblem {
        status: 0,
        code: "network".into(),
        message: format!("the server cannot be reached: {error}"),
    }
}

const TOKEN_KEY: &str = "vigie.token";

/// The token: from the page's `#token=...` fragment (then remembered and removed from
/// the address bar, so it is not shown on a wall screen), else the remembered one.
pub fn token() -> Option<String> {
    let window = web_sys::window()?;
    let storage = window.local_storage().ok().flatten();
    let location = window.location();
    if let Some(t) = location
        .hash()
        .ok()
        .and_then(|h| h.strip_prefix("#token=").map(crate::route::decode))
        .filter(|t| !t.is_empty())
    {
        if let Some(s) = &storage {
            let _ = s.set_item(TOKEN_KEY, &t);
        }
        let clean = format!(
            "{}{}",
            location.pathname().unwrap_or_default(),
            location.search().unwrap_or_default()
        );
        if let Ok(history) = window.history() {
            let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&clean));
        }
        return Some(t);
    }
    storage?.get_item(TOKEN_KEY).ok().flatten()
}

pub fn remember_token(token: &str) {
    if let Some(storage) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
        let _ = storage.set_item(TOKEN_KEY, token);
    }
}

fn authorized(request: RequestBuilder, token: Option<&str>) -> RequestBuilder {
    match token {
        Some(t) => request.header("Authorization", &format!("Bearer {t}")),
        None => request,
    }
}

async fn answer<T: DeserializeOwned>(
    response: Result<gloo_net::http::Response, gloo_net::Error>,
) -> Result<T, ApiProblem> {
    let response = response.map_err(network)?;
    if response.ok() {
        response.json::<T>().await.map_err(network)
    } else {
        let status = response.status();
        Err(response
            .json::<ApiProblem>()
            .await
            .unwrap_or_else(|_| ApiProblem {
                status,
                code: "http".into(),
                message: format!("the server answered {status}"),
            }))
    }
}

pub async fn get<T: DeserializeOwned>(path: &str, token: Option<&str>) -> Result<T, ApiProblem> {
    answer(authorized(Request::get(path), token).send().await).await
}

pub async fn put<B: Serialize, T: DeserializeOwned>(
    path: &str,
    body: &B,
    token: Option<&str>,
) -> Result<T, ApiProblem> {
    let request = authorized(Request::put(path), token)
        .json(body)
        .map_err(network)?;
    answer(request.send().await).await
}

pub async fn post<B: Serialize, T: DeserializeOwned>(
    path: &str,
    body: &B,
    token: Option<&str>,
) -> Result<T, ApiProblem> {
    let request = authorized(Request::post(path), token)
        .json(body)
        .map_err(network)?;
    answer(request.send().await).await
}
