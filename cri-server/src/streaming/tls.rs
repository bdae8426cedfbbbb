//! TLS for the streaming server, as containerd's `enable_tls_streaming`: a certificate and
//! key from files (`tls_cert_file`, `tls_key_file`), or, with neither given, a
//! self-signed certificate made at start for the addresses the URLs name.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::ring;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Where the streaming server's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamingTls {
    /// Made at start: self-signed, for loopback, the listening address and the host name.
    SelfSigned,
    /// PEM files: the certificate chain (leaf first) and its private key.
    Files { cert: PathBuf, key: PathBuf },
}

/// Why the TLS settings could not be used; each names the setting and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls_cert_file {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("tls_key_file {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("tls_cert_file {cert} and tls_key_file {key} do not go together: {reason}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("making a self-signed certificate: {0}")]
    SelfSigned(String),
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The server side of TLS for `tls`; `names` go into a self-signed certificate's
/// subject alternative names (IP addresses as such).
pub(crate) fn server_config(
    tls: &StreamingTls,
    names: &[String],
) -> Result<Arc<ServerConfig>, TlsError> {
    let (chain, key) = match tls {
        StreamingTls::SelfSigned => self_signed(names)?,
        StreamingTls::Files { cert, key } => (read_chain(cert)?, read_key(key)?),
    };
    let builder = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth();
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| match tls {
            StreamingTls::Files { cert, key } => TlsError::Pair {
                cert: cert.clone(),
                key: key.clone(),
                reason: e.to_string(),
            },
            StreamingTls::SelfSigned => TlsError::SelfSigned(e.to_string()),
        })?;
    Ok(Arc::new(config))
}

fn read_chain(path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::Cert {
        path: path.clone(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| err(format!("reading: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("not a PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(err("no PEM CERTIFICATE block in it".into()));
    }
    Ok(chain)
}

fn read_key(path: &PathBuf) -> Result<PrivateKeyDer<'static>, TlsError> {
    let err = |reason: String| TlsError::Key {
        path: path.clone(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| err(format!("reading: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        err(format!(
            "no PEM private key (PKCS#8, PKCS#1 or SEC1) in it: {e}"
        ))
    })?;
    // Parsed now, so a key rustls cannot sign with is refused at start, not at the
    // first handshake.
    ring::default_provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| err(format!("unusable private key: {e}")))?;
    Ok(key)
}

type Pair = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn self_signed(names: &[String]) -> Result<Pair, TlsError> {
    let made = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    let key = PrivateKeyDer::try_from(made.key_pair.serialize_der())
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    Ok((vec![made.cert.der().clone()], key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["localhost".into(), "127.0.0.1".into()]
    }

    #[test]
    fn a_self_signed_certificate_serves() {
        server_config(&StreamingTls::SelfSigned, &names()).expect("self-signed config");
    }

    #[test]
    fn bad_files_name_the_setting_and_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let made = rcgen::generate_simple_self_signed(names()).expect("cert");
        let other = rcgen::generate_simple_self_signed(names()).expect("cert");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let other_key = dir.path().join("other-key.pem");
        let garbage = dir.path().join("garbage.pem");
        let missing = dir.path().join("missing.pem");
        std::fs::write(&cert, pem("CERTIFICATE", made.cert.der())).expect("write");
        let key_der = made.key_pair.serialize_der();
        std::fs::write(&key, pem("PRIVATE KEY", &key_der)).expect("write");
        let other_der = other.key_pair.serialize_der();
        std::fs::write(&other_key, pem("PRIVATE KEY", &other_der)).expect("write");
        std::fs::write(&garbage, "not pem\n").expect("write");

        let files = |cert: &PathBuf, key: &PathBuf| StreamingTls::Files {
            cert: cert.clone(),
            key: key.clone(),
        };
        server_config(&files(&cert, &key), &[]).expect("a good pair serves");
        let cases = [
            (files(&missing, &key), "tls_cert_file", &missing),
            (files(&garbage, &key), "tls_cert_file", &garbage),
            (files(&cert, &missing), "tls_key_file", &missing),
            (files(&cert, &garbage), "tls_key_file", &garbage),
            (files(&cert, &cert), "tls_key_file", &cert),
            (files(&cert, &other_key), "do not go together", &other_key),
        ];
        for (tls, setting, path) in cases {
            let err = server_config(&tls, &[]).err().map(|e| e.to_string());
            let err = err.unwrap_or_default();
            assert!(err.contains(setting), "{tls:?}: {err:?} lacks {setting}");
            let shown = path.display().to_string();
            assert!(err.contains(&shown), "{tls:?}: {err:?} lacks {shown}");
        }
    }

    fn pem(label: &str, der: &[u8]) -> String {
        use base64::Engine;
        let text = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = text
            .as_bytes()
            .chunks(64)
            .filter_map(|c| std::str::from_utf8(c).ok())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }
}
