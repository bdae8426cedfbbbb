//! `POST /auth` (check credentials against a registry, as `docker login` does) and
//! `GET /images/search` (refused: berth works without Docker Hub).

use std::sync::Arc;

use serde_json::json;

use super::super::{ApiError, ApiRequest, Reply};
use super::registry_auth::{self, AuthConfig};
use crate::Daemon;

pub async fn login(daemon: &Arc<Daemon>, mut req: ApiRequest) -> Result<Reply, ApiError> {
    let auth: Option<AuthConfig> = req.json().await?;
    let auth = auth.unwrap_or_default();
    if auth.credentials().is_none() {
        return Err(ApiError::BadRequest(
            "login needs a username and a password".into(),
        ));
    }
    let registry = registry_auth::server_host(auth.serveraddress.as_deref().unwrap_or(""));
    let client = registry_auth::client(daemon, &registry, &auth)?;
    client
        .ping(&registry)
        .await
        .map_err(|e| ApiError::BadRequest(format!("login to {registry} failed: {e}")))?;
    Ok(Reply::json(
        &json!({ "Status": "Login Succeeded", "IdentityToken": "" }),
    ))
}

pub fn search() -> ApiError {
    ApiError::NotImplemented(
        "search is not supported: berth is offline-first and does not query Docker Hub; pull by name from your registry instead".into(),
    )
}
