//! The `[server.tls]` table: PEM certificate chain and private key for the main listener.
//! The key names of Reverb's `options.tls` (PHP SSL context options) are accepted as aliases:
//! `local_cert` for `cert`, `local_pk` for `key`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError};

/// TLS on the main listener: with it, every connection is TLS (`wss://`, `https://`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first (Reverb `local_cert`).
    #[serde(alias = "local_cert")]
    pub cert: PathBuf,
    /// PEM file with the unencrypted private key: PKCS#8, PKCS#1 or SEC1 (Reverb `local_pk`).
    #[serde(alias = "local_pk")]
    pub key: PathBuf,
}

impl TlsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.cert.as_os_str().is_empty() {
            return invalid(
                "server.tls.cert",
                "must be the path of a PEM certificate file",
            );
        }
        if self.key.as_os_str().is_empty() {
            return invalid(
                "server.tls.key",
                "must be the path of a PEM private key file",
            );
        }
        Ok(())
    }
}
