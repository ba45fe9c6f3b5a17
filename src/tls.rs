//! TLS on the main listener: the certificate and key of `[server.tls]`, loaded into a rustls
//! `ServerConfig` that is swapped whole on reload ([`LiveTls::reload`]), so new connections get
//! the new certificate while established ones keep theirs.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// Why the certificate or key could not be loaded; names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("invalid `{key}` ({path}): {reason}")]
    File {
        /// `server.tls.cert` or `server.tls.key`.
        key: &'static str,
        /// The path configured.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the pair (the key does not match the certificate, an unsupported key).
    #[error("invalid `server.tls`: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The TLS settings in force; consulted once per accepted connection.
#[derive(Debug)]
pub struct LiveTls {
    config: ArcSwap<ServerConfig>,
}

impl LiveTls {
    /// Loads the certificate chain and key.
    pub fn load(files: &TlsConfig) -> Result<Self, TlsError> {
        Ok(Self {
            config: ArcSwap::new(server_config(files)?),
        })
    }

    /// Re-reads the files; on error the current certificate stays.
    pub fn reload(&self, files: &TlsConfig) -> Result<(), TlsError> {
        self.config.store(server_config(files)?);
        Ok(())
    }

    /// An acceptor with the current certificate.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.load_full())
    }
}

fn file_error(key: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        key,
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// A rustls server config (ring, TLS 1.2 and 1.3, HTTP/1.1 by ALPN) for the PEM files.
fn server_config(files: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let (cert_key, key_key) = ("server.tls.cert", "server.tls.key");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| file_error(cert_key, &files.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(cert_key, &files.cert, e))?;
    if certs.is_empty() {
        return Err(file_error(
            cert_key,
            &files.cert,
            "no CERTIFICATE in the file",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        file_error(
            key_key,
            &files.key,
            format!("{e} (an unencrypted PKCS#8, PKCS#1 or SEC1 PEM key is needed)"),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
