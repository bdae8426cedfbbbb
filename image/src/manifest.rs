//! Manifests: OCI image manifest and index, Docker schema 2 manifest and manifest list;
//! platform selection. Schema 1 is refused with a clear error.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use berth_snapshotter::Digest;
use serde::{Deserialize, Serialize};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The `Accept` header for manifest requests: every type berth understands.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// The largest manifest or config berth reads (registries cap manifests at 4 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// Errors in manifests, indexes and platforms.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("image manifest schema 1 ({0}) is deprecated and not supported; push the image again with a current Docker or use an OCI manifest")]
    Schema1(String),
    #[error("unsupported manifest media type {0:?}")]
    MediaType(String),
    #[error("unsupported layer media type {0:?}")]
    LayerType(String),
    #[error("no manifest for platform {want} in the index (available: {available})")]
    NoPlatform {
        want: Box<Platform>,
        available: String,
    },
    #[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/amd64")]
    BadPlatform(String),
    #[error("manifest is larger than the {0}-byte limit")]
    TooLarge(u64),
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An OCI image manifest or Docker schema 2 manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An OCI index or Docker manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A parsed manifest document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Image(ImageManifest),
    Index(Index),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    fs_layers: Option<serde_json::Value>,
}

/// Parses a manifest, using the `Content-Type` the registry sent when the document does
/// not name its own media type.
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Parsed, ManifestError> {
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge(MAX_MANIFEST_BYTES));
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(ManifestError::NotJson)?;
    let ct = content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_string());
    let media = probe.media_type.clone().or(ct).unwrap_or_default();
    if probe.schema_version == Some(1)
        || probe.fs_layers.is_some()
        || media == DOCKER_SCHEMA1
        || media == DOCKER_SCHEMA1_SIGNED
    {
        return Err(ManifestError::Schema1(if media.is_empty() {
            "schemaVersion 1".into()
        } else {
            media
        }));
    }
    let is_index = match media.as_str() {
        OCI_INDEX | DOCKER_LIST => true,
        OCI_MANIFEST | DOCKER_MANIFEST => false,
        // OCI allows omitting mediaType; decide by shape.
        "" | "application/json" => probe.manifests.is_some(),
        other => return Err(ManifestError::MediaType(other.to_string())),
    };
    if is_index {
        serde_json::from_slice(bytes)
            .map(Parsed::Index)
            .map_err(ManifestError::NotJson)
    } else {
        serde_json::from_slice(bytes)
            .map(Parsed::Image)
            .map_err(ManifestError::NotJson)
    }
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The compression of a layer media type.
pub fn layer_compression(media_type: &str) -> Result<Compression, ManifestError> {
    match media_type {
        OCI_LAYER
        | "application/vnd.docker.image.rootfs.diff.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Ok(Compression::None),
        OCI_LAYER_GZIP
        | DOCKER_LAYER_GZIP
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Ok(Compression::Gzip),
        OCI_LAYER_ZSTD | "application/vnd.docker.image.rootfs.diff.tar.zstd" => {
            Ok(Compression::Zstd)
        }
        other => Err(ManifestError::LayerType(other.to_string())),
    }
}

/// An OS/architecture/variant triple.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        default,
        rename = "os.version",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

impl Platform {
    /// `linux/amd64`, berth's default.
    pub fn default_linux_amd64() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
            os_version: None,
        }
    }

    fn normalised_variant(&self) -> Option<&str> {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm64", None) => Some("v8"),
            ("amd64", Some("v1")) => None,
            (_, v) => v,
        }
    }

    /// Whether an index entry for `other` serves this platform.
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() && self.architecture != "arm"
                || self.normalised_variant() == other.normalised_variant())
    }
}

impl Default for Platform {
    fn default() -> Self {
        Platform::default_linux_amd64()
    }
}

impl FromStr for Platform {
    type Err = ManifestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let good =
            |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| good(p)) {
            return Err(ManifestError::BadPlatform(s.to_string()));
        }
        let arch = match parts[1] {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        };
        Ok(Platform {
            os: parts[0].to_lowercase(),
            architecture: arch.to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
            os_version: None,
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Picks the manifest for `want` from an index.
pub fn select<'a>(index: &'a Index, want: &Platform) -> Result<&'a Descriptor, ManifestError> {
    index
        .manifests
        .iter()
        .filter(|d| d.media_type != "application/vnd.in-toto+json")
        .find(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
        .ok_or_else(|| ManifestError::NoPlatform {
            want: Box::new(want.clone()),
            available: index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn parses_each_kind_and_refuses_schema1() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","digest":"{}","size":1}},"layers":[{{"mediaType":"{DOCKER_LAYER_GZIP}","digest":"{}","size":2}}]}}"#,
            digest('a'),
            digest('b')
        );
        assert!(matches!(parse(m.as_bytes(), None), Ok(Parsed::Image(_))));
        let idx = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":3,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":3,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            digest('c'),
            digest('d')
        );
        let Ok(Parsed::Index(index)) = parse(idx.as_bytes(), Some(OCI_INDEX)) else {
            panic!("index not parsed");
        };
        assert_eq!(
            select(&index, &Platform::default())
                .unwrap()
                .digest
                .to_string(),
            digest('d')
        );
        let arm: Platform = "linux/arm64".parse().unwrap();
        assert_eq!(
            select(&index, &arm).unwrap().digest.to_string(),
            digest('c')
        );
        let e = select(&index, &"linux/s390x".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("linux/arm64/v8") && e.contains("linux/s390x"),
            "{e}"
        );

        let s1 = r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        let e = parse(s1.as_bytes(), Some(DOCKER_SCHEMA1_SIGNED)).unwrap_err();
        assert!(matches!(e, ManifestError::Schema1(_)), "{e}");
        assert!(matches!(
            parse(b"<html>", None),
            Err(ManifestError::NotJson(_))
        ));
        assert!(matches!(
            parse(br#"{"schemaVersion":2,"mediaType":"text/plain"}"#, None),
            Err(ManifestError::MediaType(_))
        ));
        assert!("linux".parse::<Platform>().is_err());
    }
}
