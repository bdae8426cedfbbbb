//! `PullImage`, with per-request credentials from the CRI auth config.

use std::sync::Arc;

use base64::Engine as _;
use berth_image::{Client, PullOptions, Puller, Reference};
use k8s_cri::v1 as cri;

use crate::{Cri, CriError};

pub(super) async fn pull_image(
    cri: &Cri,
    req: cri::PullImageRequest,
) -> Result<cri::PullImageResponse, CriError> {
    let reference = super::spec_ref(req.image.as_ref())?.to_string();
    let parsed = Reference::parse(&reference)
        .map_err(|e| CriError::InvalidArgument(format!("image reference {reference:?}: {e}")))?;
    let mut config = cri.config().registry.clone();
    config.plain_http_for_loopback(&parsed.registry);
    if let Some(auth) = req.auth.as_ref() {
        if let Some((user, pass)) = credentials(auth)? {
            let host = config.host_mut(&parsed.registry);
            host.username = Some(user);
            host.password = Some(pass);
        }
    }
    let client = Arc::new(Client::new(config)?);
    let parts = &cri.inner.images;
    let puller = Puller::new(
        client,
        parts.content.clone(),
        parts.snapshots.clone(),
        parts.store.clone(),
    );
    let mut opts = PullOptions::default();
    // Counted into the engine's pull metrics when berthd runs the CRI with an engine.
    let timer = cri.inner.engine.as_ref().map(|engine| {
        let (progress, timer) = engine.metrics.pull_progress(None);
        opts.progress = Some(progress);
        timer
    });
    let record = puller.pull(&reference, &opts).await;
    drop(timer);
    let record = record?;
    tracing::info!(image = %record.name, id = %record.config_digest, "image pulled");
    Ok(cri::PullImageResponse {
        image_ref: record.config_digest.to_string(),
    })
}

/// Username and password from a CRI auth config (`username`/`password` or `auth`).
fn credentials(auth: &cri::AuthConfig) -> Result<Option<(String, String)>, CriError> {
    if !auth.username.is_empty() {
        return Ok(Some((auth.username.clone(), auth.password.clone())));
    }
    if !auth.auth.is_empty() {
        let bad = || {
            CriError::InvalidArgument("auth config: `auth` is not base64 of user:password".into())
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.auth.trim())
            .map_err(|_| bad())?;
        let s = String::from_utf8(raw).map_err(|_| bad())?;
        let (u, p) = s.split_once(':').ok_or_else(bad)?;
        return Ok(Some((u.to_string(), p.to_string())));
    }
    if !auth.identity_token.is_empty() || !auth.registry_token.is_empty() {
        return Err(CriError::InvalidArgument(
            "auth config: identity and registry tokens are not supported; pass username and password".into(),
        ));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_forms() -> Result<(), CriError> {
        let a = cri::AuthConfig {
            auth: "dXNlcjpwYTpzcw==".into(),
            ..Default::default()
        };
        assert_eq!(credentials(&a)?, Some(("user".into(), "pa:ss".into())));
        let b = cri::AuthConfig {
            username: "u".into(),
            password: "p".into(),
            ..Default::default()
        };
        assert_eq!(credentials(&b)?, Some(("u".into(), "p".into())));
        assert_eq!(credentials(&cri::AuthConfig::default())?, None);
        assert!(credentials(&cri::AuthConfig {
            auth: "!!".into(),
            ..Default::default()
        })
        .is_err());
        Ok(())
    }
}
