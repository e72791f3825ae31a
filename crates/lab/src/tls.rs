//! TLS material for the lab's TLS upstreams: a self-signed upstream certificate (rcgen), the
//! rustls server config that serves it, and an unrelated CA for `proxy_ssl_trusted_certificate`.
//!
//! Everything is generated at lab start and written as PEM files into `<dir>/conf/`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::ServerConfig;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::LabError;

/// The upstream certificate, relative to the lab dir.
pub(crate) const UPSTREAM_CERT: &str = "conf/upstream.crt";
/// The upstream certificate's private key, relative to the lab dir.
pub(crate) const UPSTREAM_KEY: &str = "conf/upstream.key";
/// The CA that nginx trusts in `tls-verify` (it did not sign the upstream certificate).
pub(crate) const TRUSTED_CA: &str = "conf/trusted-ca.pem";

fn tls_error(what: &str, e: impl std::fmt::Display) -> LabError {
    LabError::Tls(format!("{what}: {e}"))
}

fn write(dir: &Path, relative: &str, text: &str) -> Result<PathBuf, LabError> {
    let path = dir.join(relative);
    fs::write(&path, text).map_err(|e| LabError::io(format!("write {}", path.display()), e))?;
    Ok(path)
}

/// Generates a self-signed certificate for `127.0.0.1` and `localhost`, writes it and its key
/// to [`UPSTREAM_CERT`] and [`UPSTREAM_KEY`], and returns a rustls server config serving it
/// (TLS 1.2 and 1.3, ring).
pub(crate) fn upstream_server(dir: &Path) -> Result<Arc<ServerConfig>, LabError> {
    let (certified, builder) = upstream_key(dir)?;
    let config = builder.with_cert_resolver(Arc::new(AnyName(certified)));
    Ok(Arc::new(config))
}

/// [`upstream_server`] that ends every handshake whose ClientHello names no server (no
/// SNI), as virtual-hosting TLS servers and CDNs do: `proxy_pass https://` without
/// `proxy_ssl_server_name on` fails there.
pub(crate) fn upstream_server_requiring_sni(dir: &Path) -> Result<Arc<ServerConfig>, LabError> {
    let (certified, builder) = upstream_key(dir)?;
    let config = builder.with_cert_resolver(Arc::new(NamedOnly(certified)));
    Ok(Arc::new(config))
}

type Builder = rustls::ConfigBuilder<ServerConfig, rustls::server::WantsServerCert>;

/// The upstream certificate and key (written to the lab dir), and a server config builder.
fn upstream_key(dir: &Path) -> Result<(Arc<CertifiedKey>, Builder), LabError> {
    let key = KeyPair::generate().map_err(|e| tls_error("generate a key", e))?;
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .map_err(|e| tls_error("certificate parameters", e))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "fix502 lab upstream");
    let cert = params
        .self_signed(&key)
        .map_err(|e| tls_error("self-sign the upstream certificate", e))?;
    write(dir, UPSTREAM_CERT, &cert.pem())?;
    write(dir, UPSTREAM_KEY, &key.serialize_pem())?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| tls_error("load the upstream key", e))?;
    let certified = Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing));
    let builder = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("TLS versions", e))?
        .with_no_client_auth();
    Ok((certified, builder))
}

/// Serves the certificate to every ClientHello.
#[derive(Debug)]
struct AnyName(Arc<CertifiedKey>);

impl ResolvesServerCert for AnyName {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Serves the certificate only to a ClientHello that names a server (SNI).
#[derive(Debug)]
struct NamedOnly(Arc<CertifiedKey>);

impl ResolvesServerCert for NamedOnly {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        hello.server_name().map(|_| self.0.clone())
    }
}

/// Generates a CA certificate that signed nothing and writes it to [`TRUSTED_CA`].
pub(crate) fn unrelated_ca(dir: &Path) -> Result<PathBuf, LabError> {
    let key = KeyPair::generate().map_err(|e| tls_error("generate a key", e))?;
    let mut params = CertificateParams::new(Vec::new())
        .map_err(|e| tls_error("CA certificate parameters", e))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "fix502 lab unrelated CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params
        .self_signed(&key)
        .map_err(|e| tls_error("self-sign the CA certificate", e))?;
    write(dir, TRUSTED_CA, &cert.pem())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_pem_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join("conf")).expect("mkdir");
        upstream_server(dir.path()).expect("server config");
        let ca = unrelated_ca(dir.path()).expect("ca");
        let cert = fs::read_to_string(dir.path().join(UPSTREAM_CERT)).expect("cert");
        let key = fs::read_to_string(dir.path().join(UPSTREAM_KEY)).expect("key");
        let ca = fs::read_to_string(ca).expect("ca file");
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_ne!(cert, ca);
    }
}
