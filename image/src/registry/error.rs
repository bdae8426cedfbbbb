//! Registry errors: one variant per thing a user must act on differently.

/// Errors talking to a registry, each naming the registry and object.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{url}: cannot connect: {source}")]
    Connect {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{registry}: authentication required or credentials rejected (401){detail}; configure credentials for this registry or `docker login`")]
    Unauthorized { registry: String, detail: String },
    #[error("{registry}: access denied (403){detail}")]
    Denied { registry: String, detail: String },
    #[error("{what}: manifest unknown (no such tag or digest in the registry)")]
    ManifestUnknown { what: String },
    #[error("{what}: blob unknown to the registry")]
    BlobUnknown { what: String },
    #[error("{what}: repository not found{detail}")]
    NameUnknown { what: String, detail: String },
    #[error("{what}: not found (404){detail}")]
    NotFound { what: String, detail: String },
    #[error("{registry}: too many requests (429), rate limited; retry later")]
    TooManyRequests { registry: String },
    #[error("{what}: registry answered {status}{detail}")]
    Status {
        what: String,
        status: u16,
        detail: String,
    },
    #[error("{registry}: cannot get a token from {realm}: {detail}")]
    Token {
        registry: String,
        realm: String,
        detail: String,
    },
    #[error("{what}: content has digest {actual}, expected {expected}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what}: larger than the {limit}-byte limit or its declared size")]
    TooLarge { what: String, limit: u64 },
    #[error("{what}: {detail}")]
    Protocol { what: String, detail: String },
    #[error("reading CA certificate {path}: {detail}")]
    CaCert { path: String, detail: String },
    #[error("building the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("{registry}: every mirror failed and fallback to the registry is disabled: {errors}")]
    MirrorsFailed { registry: String, errors: String },
}
