//! The upstream's TLS, seen the way nginx's `proxy_pass https://` sees it.
//!
//! [`probe_tls`] opens one connection (TCP or unix socket), runs a TLS client handshake with
//! nginx's upstream defaults unless told otherwise (no SNI, TLSv1.2 and TLSv1.3, no
//! certificate verification) and explains how it ended: not TLS at all, closed or refused
//! during the handshake, no common protocol version, timed out. Like nginx, the handshake
//! itself accepts any certificate; when `proxy_ssl_verify on` is mirrored
//! ([`TlsOptions::verify`]) the certificate is judged afterwards against
//! `proxy_ssl_trusted_certificate` and `proxy_ssl_name` ([`Verification`]), matching the
//! TLS messages of docs/nginx-messages.md §8 (`peer closed connection in SSL handshake`,
//! `SSL_do_handshake() failed`, `upstream SSL certificate verify error`, `upstream SSL
//! certificate does not match`,
//! `upstream timed out ... while SSL handshaking to upstream`).
//!
//! Belongs here: the handshake, its classification and the certificate checks. Not here:
//! what to send after the handshake (that is [`crate::http`]), reading nginx's config.
//!
//! Limits of the mirror: the client is rustls, which speaks only TLSv1.2 and TLSv1.3 and
//! offers only ECDHE key exchange with AEAD ciphers. A legacy backend that nginx (OpenSSL)
//! could still reach with `proxy_ssl_protocols TLSv1` or an old cipher shows here as
//! [`TlsOutcome::NoCommonVersion`] or a `handshake_failure` alert. `proxy_ssl_verify_depth`
//! is not checked.

use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, PeerIncompatible, ProtocolVersion,
    RootCertStore, SignatureScheme, SupportedProtocolVersion,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use x509_parser::certificate::X509Certificate;

use crate::connect::ConnectOutcome;
use crate::stream::{Endpoint, Stream, open};

/// At most this many bytes of the peer's first answer are kept (shown for [`TlsOutcome::NotTls`]).
const RECORD_CAP: usize = 128;
/// At most this many certificates of the peer's chain are kept.
const MAX_CHAIN: usize = 16;
/// A trusted-certificate file larger than this is not read.
const MAX_TRUSTED_FILE: u64 = 16 * 1024 * 1024;
/// Used for the chain check when the expected name cannot be expressed as a rustls
/// `ServerName`; the name itself is then checked by [`host_matches`] only.
const PLACEHOLDER_NAME: &str = "name-check.invalid";

/// A TLS protocol version as `proxy_ssl_protocols` names it.
///
/// The probe's client (rustls) can only speak [`Self::Tls12`] and [`Self::Tls13`]; the older
/// two exist so nginx's configuration and a legacy peer's choice can be described.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.0 (`TLSv1`). Not spoken by the probe.
    Tls10,
    /// TLS 1.1 (`TLSv1.1`). Not spoken by the probe.
    Tls11,
    /// TLS 1.2 (`TLSv1.2`).
    Tls12,
    /// TLS 1.3 (`TLSv1.3`).
    Tls13,
}

impl TlsVersion {
    /// Parses one `proxy_ssl_protocols` word (`TLSv1`, `TLSv1.1`, `TLSv1.2`, `TLSv1.3`; case
    /// does not matter, as in nginx). `SSLv2`, `SSLv3` and anything else give `None`.
    pub fn from_nginx(word: &str) -> Option<Self> {
        [Self::Tls10, Self::Tls11, Self::Tls12, Self::Tls13]
            .into_iter()
            .find(|v| v.nginx_name().eq_ignore_ascii_case(word))
    }

    /// The name `proxy_ssl_protocols` uses: `TLSv1`, `TLSv1.1`, `TLSv1.2`, `TLSv1.3`.
    pub fn nginx_name(self) -> &'static str {
        match self {
            Self::Tls10 => "TLSv1",
            Self::Tls11 => "TLSv1.1",
            Self::Tls12 => "TLSv1.2",
            Self::Tls13 => "TLSv1.3",
        }
    }

    /// True for the versions the probe can speak (1.2 and 1.3).
    pub fn is_supported_by_probe(self) -> bool {
        matches!(self, Self::Tls12 | Self::Tls13)
    }

    fn from_wire(major: u8, minor: u8) -> Option<Self> {
        match (major, minor) {
            (3, 1) => Some(Self::Tls10),
            (3, 2) => Some(Self::Tls11),
            (3, 3) => Some(Self::Tls12),
            (3, 4) => Some(Self::Tls13),
            _ => None,
        }
    }

    fn from_rustls(version: ProtocolVersion) -> Option<Self> {
        match version {
            ProtocolVersion::TLSv1_0 => Some(Self::Tls10),
            ProtocolVersion::TLSv1_1 => Some(Self::Tls11),
            ProtocolVersion::TLSv1_2 => Some(Self::Tls12),
            ProtocolVersion::TLSv1_3 => Some(Self::Tls13),
            _ => None,
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.nginx_name())
    }
}

/// How to run the handshake: the `proxy_ssl_*` directives that matter for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// The server name to send (SNI), i.e. `proxy_ssl_name` when `proxy_ssl_server_name on`.
    /// `None` sends no SNI, as nginx does by default (`proxy_ssl_server_name off`). An IP
    /// literal or an empty string also means no SNI (TLS forbids IPs in SNI).
    pub sni: Option<String>,
    /// `proxy_ssl_verify`: judge the certificate after the handshake.
    pub verify: bool,
    /// `proxy_ssl_trusted_certificate`: a PEM bundle of trusted certificates. Required when
    /// [`Self::verify`] is set (nginx refuses to start without it).
    pub trusted: Option<PathBuf>,
    /// `proxy_ssl_name`: the name checked against the certificate when [`Self::verify`] is
    /// set. `None` falls back to [`Self::sni`], then to the endpoint's IP address.
    pub verify_name: Option<String>,
    /// `proxy_ssl_protocols`. Empty means nginx's default, TLSv1.2 and TLSv1.3. Only 1.2 and
    /// 1.3 can be offered (see [`TlsVersion`]); the others are ignored.
    pub versions: Vec<TlsVersion>,
    /// Bounds connect and handshake together (nginx: `proxy_connect_timeout`).
    pub timeout: Duration,
}

/// The facts about one certificate that explain a verification failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertSummary {
    /// The subject distinguished name, e.g. `CN=app.internal`.
    pub subject: String,
    /// The issuer distinguished name.
    pub issuer: String,
    /// The subjectAltName DNS names and IP addresses; when there are none, the subject's
    /// common names.
    pub names: Vec<String>,
    /// Start of validity, unix seconds.
    pub not_before: i64,
    /// End of validity, unix seconds.
    pub not_after: i64,
    /// The issuer name equals the subject name.
    pub self_signed: bool,
}

/// How the connection and the handshake ended.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsOutcome {
    /// The handshake completed. As in nginx, the certificate is judged separately
    /// ([`TlsProbe::verification`]).
    Established,
    /// The connection could not be opened (nginx: `connect() failed`, not a TLS problem).
    ConnectFailed(ConnectOutcome),
    /// The peer answered with bytes that are not a TLS record, e.g. `HTTP/1.1 400 Bad
    /// Request`: a plain port behind `https://` (nginx: `wrong version number`, or
    /// `upstream prematurely sent response` when the peer spoke first).
    NotTls {
        /// The first bytes the peer sent (at most 128).
        reply: Vec<u8>,
    },
    /// The peer closed or reset the connection during the handshake (nginx: `peer closed
    /// connection in SSL handshake`): often a required SNI that nginx does not send, or a
    /// non-TLS service that drops the ClientHello.
    ClosedInHandshake,
    /// The peer sent a fatal alert (nginx: `... alert ...:SSL alert number N`).
    Alert {
        /// The alert's RFC name: `handshake_failure`, `unrecognized_name`, ... (`alert N`
        /// for an unknown number). See [`TlsOutcome::alert_number`].
        description: String,
    },
    /// No answer to the ClientHello within the timeout (nginx: `upstream timed out ... while
    /// SSL handshaking to upstream`, a 504).
    TimedOut,
    /// No protocol version in common: the peer wants a version outside the offered ones
    /// (or below TLSv1.2, which the probe cannot speak). [`TlsProbe::version`] holds the
    /// peer's choice when its ServerHello showed it.
    NoCommonVersion,
    /// Any other failure.
    Failed {
        /// What went wrong.
        message: String,
    },
}

impl TlsOutcome {
    /// The TLS alert number of [`Self::Alert`] (40 for `handshake_failure`), as nginx logs
    /// it in `SSL alert number N`.
    pub fn alert_number(&self) -> Option<u8> {
        let Self::Alert { description } = self else {
            return None;
        };
        ALERTS
            .iter()
            .find(|(_, name)| name == description)
            .map(|(n, _)| *n)
            .or_else(|| description.strip_prefix("alert ")?.parse().ok())
    }

    /// True when the handshake completed.
    pub fn is_established(&self) -> bool {
        matches!(self, Self::Established)
    }
}

impl fmt::Display for TlsOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Established => f.write_str("TLS handshake completed"),
            Self::ConnectFailed(outcome) => write!(f, "connect failed: {outcome}"),
            Self::NotTls { reply } => write!(
                f,
                "the port does not speak TLS; it answered \"{}\"",
                String::from_utf8_lossy(reply).escape_debug()
            ),
            Self::ClosedInHandshake => {
                f.write_str("the peer closed the connection during the TLS handshake")
            }
            Self::Alert { description } => match self.alert_number() {
                Some(n) => write!(
                    f,
                    "the peer refused the handshake: alert {description} ({n})"
                ),
                None => write!(f, "the peer refused the handshake: alert {description}"),
            },
            Self::TimedOut => f.write_str("no answer to the TLS ClientHello within the timeout"),
            Self::NoCommonVersion => f.write_str("no TLS protocol version in common"),
            Self::Failed { message } => write!(f, "TLS handshake failed: {message}"),
        }
    }
}

/// The certificate judgement nginx makes after the handshake when `proxy_ssl_verify on`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verification {
    /// Chain and name are fine.
    Ok,
    /// The chain does not lead to a trusted certificate (OpenSSL 20 `unable to get local
    /// issuer certificate`, or 19/21): the CA is missing from the trusted file or the peer
    /// does not send its intermediate.
    UnknownIssuer,
    /// The leaf is self-signed and not trusted (OpenSSL 18 `self-signed certificate`).
    SelfSigned,
    /// A certificate of the chain has expired (OpenSSL 10 `certificate has expired`).
    Expired {
        /// Its end of validity, unix seconds.
        not_after: i64,
    },
    /// A certificate of the chain is not valid yet (OpenSSL 9); often a wrong clock.
    NotYetValid,
    /// The chain is trusted but the leaf is not for the expected name (nginx: `upstream
    /// SSL certificate does not match "<name>"`).
    NameMismatch {
        /// The name checked (`proxy_ssl_name`).
        expected: String,
        /// The names the leaf carries.
        presented: Vec<String>,
    },
    /// The trusted-certificate file is not given, missing, unreadable or holds no usable
    /// certificate.
    NoTrustedCertificates {
        /// Why.
        message: String,
    },
    /// Any other verification failure.
    Other(String),
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok => f.write_str("certificate verified"),
            Self::UnknownIssuer => {
                f.write_str("unable to get local issuer certificate (not signed by a trusted CA)")
            }
            Self::SelfSigned => f.write_str("self-signed certificate, not trusted"),
            Self::Expired { not_after } => {
                write!(
                    f,
                    "certificate has expired (not after {not_after}, unix time)"
                )
            }
            Self::NotYetValid => f.write_str("certificate is not yet valid"),
            Self::NameMismatch {
                expected,
                presented,
            } => write!(
                f,
                "certificate does not match \"{expected}\" (it is for {})",
                presented.join(", ")
            ),
            Self::NoTrustedCertificates { message } => {
                write!(f, "no trusted certificates: {message}")
            }
            Self::Other(message) => write!(f, "certificate verify error: {message}"),
        }
    }
}

/// What one TLS probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsProbe {
    /// The target as nginx writes it: `127.0.0.1:8443`, `unix:/run/app.sock`.
    pub endpoint: String,
    /// The SNI actually sent (`None`: no SNI).
    pub sni: Option<String>,
    /// How the handshake ended.
    pub outcome: TlsOutcome,
    /// The negotiated version; for [`TlsOutcome::NoCommonVersion`], the version the peer's
    /// ServerHello asked for when it sent one.
    pub version: Option<TlsVersion>,
    /// The negotiated cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: Option<String>,
    /// The certificates as the peer sent them, leaf first (at most 16).
    pub chain: Vec<CertSummary>,
    /// The certificate judgement: `Some` only when [`TlsOptions::verify`] is set and the
    /// handshake completed.
    pub verification: Option<Verification>,
    /// The peer asked for a client certificate (none is sent). A peer that requires one
    /// fails the first request after a TLSv1.3 handshake: nginx needs
    /// `proxy_ssl_certificate`.
    pub client_cert_requested: bool,
    /// Time for connect, handshake and verification.
    pub elapsed: Duration,
}

/// True when `bytes` start like a TLS record: content type 20–23 (change_cipher_spec,
/// alert, handshake, application_data) and version 3.0–3.4. Needs at least 3 bytes.
pub fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes, [0x14..=0x17, 0x03, 0x00..=0x04, ..])
}

/// Like [`looks_like_tls`], but for a prefix that may be shorter than 3 bytes.
fn could_be_tls(bytes: &[u8]) -> bool {
    match bytes {
        [] | [0x14..=0x17] | [0x14..=0x17, 0x03] => true,
        _ => looks_like_tls(bytes),
    }
}

/// Connects to `endpoint` and runs one TLS client handshake the way nginx's upstream module
/// does with `options`, then (when [`TlsOptions::verify`]) judges the certificate.
///
/// Never fails: every failure is a [`TlsOutcome`]. Connect plus handshake are bounded by
/// [`TlsOptions::timeout`]; memory by small caps on what is kept.
pub async fn probe_tls(endpoint: &Endpoint, options: &TlsOptions) -> TlsProbe {
    let start = Instant::now();
    let deadline = start + options.timeout;
    let sni = sni_to_send(options.sni.as_deref());
    let mut probe = TlsProbe {
        endpoint: endpoint.to_string(),
        sni: sni.clone(),
        outcome: TlsOutcome::Established,
        version: None,
        cipher: None,
        chain: Vec::new(),
        verification: None,
        client_cert_requested: false,
        elapsed: Duration::ZERO,
    };
    probe.outcome = handshake(endpoint, options, sni.as_deref(), deadline, &mut probe).await;
    probe.elapsed = start.elapsed();
    tracing::debug!(
        endpoint = %probe.endpoint,
        outcome = %probe.outcome,
        verification = ?probe.verification,
        "tls probe"
    );
    probe
}

/// Runs connect + handshake (+ verification), filling `probe`; returns the outcome.
async fn handshake(
    endpoint: &Endpoint,
    options: &TlsOptions,
    sni: Option<&str>,
    deadline: Instant,
    probe: &mut TlsProbe,
) -> TlsOutcome {
    let versions = rustls_versions(&options.versions);
    if versions.is_empty() {
        return TlsOutcome::Failed {
            message: format!(
                "the probe cannot speak {} (rustls supports only TLSv1.2 and TLSv1.3)",
                names_of(&options.versions)
            ),
        };
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = Arc::new(Mutex::new(Vec::new()));
    let asked = Arc::new(Mutex::new(false));
    let config = match client_config(&provider, &versions, &chain, &asked, sni.is_some()) {
        Ok(config) => config,
        Err(err) => {
            return TlsOutcome::Failed {
                message: format!("cannot set up the TLS client: {err}"),
            };
        }
    };
    let server_name = match connect_name(endpoint, sni) {
        Ok(name) => name,
        Err(message) => return TlsOutcome::Failed { message },
    };

    let stream = match open(endpoint, deadline).await {
        Ok((stream, _)) => stream,
        Err(outcome) => return TlsOutcome::ConnectFailed(outcome),
    };
    let recording = Recording {
        inner: stream,
        first: Vec::new(),
    };
    let connect = TlsConnector::from(Arc::new(config))
        .connect(server_name, recording)
        .into_fallible();
    let result = tokio::time::timeout_at(deadline, connect).await;

    probe.chain = lock(&chain).iter().map(summarize).collect();
    probe.client_cert_requested = *lock(&asked);
    let tls = match result {
        Err(_) => return TlsOutcome::TimedOut,
        Ok(Err((err, recording))) => {
            let outcome = classify_failure(&err, &recording.first);
            if outcome == TlsOutcome::NoCommonVersion {
                probe.version = server_hello_version(&recording.first);
            }
            return outcome;
        }
        Ok(Ok(tls)) => tls,
    };
    let (_, conn) = tls.get_ref();
    probe.version = conn.protocol_version().and_then(TlsVersion::from_rustls);
    probe.cipher = conn
        .negotiated_cipher_suite()
        .map(|suite| format!("{:?}", suite.suite()));
    if options.verify {
        let certs = lock(&chain).clone();
        let expected = expected_name(options, endpoint);
        probe.verification = Some(verify_chain(
            &certs,
            options.trusted.as_deref(),
            expected.as_deref(),
            &provider,
        ));
    }
    TlsOutcome::Established
}

/// The rustls versions to offer for `proxy_ssl_protocols` (empty: 1.2 and 1.3).
fn rustls_versions(versions: &[TlsVersion]) -> Vec<&'static SupportedProtocolVersion> {
    if versions.is_empty() {
        return vec![&rustls::version::TLS13, &rustls::version::TLS12];
    }
    let mut out = Vec::new();
    if versions.contains(&TlsVersion::Tls13) {
        out.push(&rustls::version::TLS13);
    }
    if versions.contains(&TlsVersion::Tls12) {
        out.push(&rustls::version::TLS12);
    }
    out
}

fn names_of(versions: &[TlsVersion]) -> String {
    let names: Vec<&str> = versions.iter().map(|v| v.nginx_name()).collect();
    names.join(" ")
}

/// The SNI to send: none for `None`, an empty string or an IP literal.
fn sni_to_send(sni: Option<&str>) -> Option<String> {
    let name = sni?.trim();
    if name.is_empty() || parse_ip(name).is_some() {
        return None;
    }
    Some(name.to_owned())
}

/// Parses an IP literal, with or without IPv6 brackets.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse().ok()
}

/// The name handed to rustls for the connection. With no SNI it is only a placeholder
/// (`enable_sni` is off and the recording verifier ignores it).
fn connect_name(endpoint: &Endpoint, sni: Option<&str>) -> Result<ServerName<'static>, String> {
    match (sni, endpoint) {
        (Some(name), _) => ServerName::try_from(name.to_owned())
            .map_err(|_| format!("{name:?} cannot be sent as a TLS server name")),
        (None, Endpoint::Tcp(addr)) => Ok(ServerName::from(addr.ip())),
        (None, Endpoint::Unix(_)) => Ok(ServerName::from(IpAddr::V4(Ipv4Addr::LOCALHOST))),
    }
}

/// The name nginx checks: `proxy_ssl_name`, else the SNI, else the endpoint's IP.
fn expected_name(options: &TlsOptions, endpoint: &Endpoint) -> Option<String> {
    let given = [options.verify_name.as_deref(), options.sni.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|name| !name.is_empty());
    match (given, endpoint) {
        (Some(name), _) => Some(name.to_owned()),
        (None, Endpoint::Tcp(addr)) => Some(addr.ip().to_string()),
        (None, Endpoint::Unix(_)) => None,
    }
}

fn client_config(
    provider: &Arc<CryptoProvider>,
    versions: &[&'static SupportedProtocolVersion],
    chain: &Arc<Mutex<Vec<CertificateDer<'static>>>>,
    asked: &Arc<Mutex<bool>>,
    send_sni: bool,
) -> Result<ClientConfig, rustls::Error> {
    let verifier = Arc::new(RecordingVerifier {
        provider: Arc::clone(provider),
        chain: Arc::clone(chain),
    });
    let mut config = ClientConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(versions)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(NoClientCert {
            asked: Arc::clone(asked),
        }));
    config.enable_sni = send_sni;
    Ok(config)
}

/// Locks a mutex, ignoring poisoning (the data is plain and always consistent).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Accepts every certificate, as nginx's verify callback does, and keeps the chain. The
/// handshake signatures are still checked.
#[derive(Debug)]
struct RecordingVerifier {
    provider: Arc<CryptoProvider>,
    chain: Arc<Mutex<Vec<CertificateDer<'static>>>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = lock(&self.chain);
        chain.clear();
        chain.extend(
            std::iter::once(end_entity)
                .chain(intermediates)
                .take(MAX_CHAIN)
                .map(|cert| cert.clone().into_owned()),
        );
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        let checked = rustls::crypto::verify_tls12_signature(message, cert, dss, algs);
        self.or_by_hand(checked, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        let checked = rustls::crypto::verify_tls13_signature(message, cert, dss, algs);
        self.or_by_hand(checked, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl RecordingVerifier {
    /// webpki refuses to parse some certificates OpenSSL accepts (X.509 v1 ones); for those
    /// the handshake signature is checked directly with the certificate's public key.
    fn or_by_hand(
        &self,
        checked: Result<HandshakeSignatureValid, rustls::Error>,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let unparsable = matches!(
            checked,
            Err(rustls::Error::InvalidCertificate(
                CertificateError::Other(_) | CertificateError::BadEncoding
            ))
        );
        if !unparsable {
            return checked;
        }
        let algs = self
            .provider
            .signature_verification_algorithms
            .mapping
            .iter()
            .filter(|(scheme, _)| *scheme == dss.scheme)
            .flat_map(|(_, algs)| algs.iter());
        let valid = x509_parser::parse_x509_certificate(cert.as_ref()).is_ok_and(|(_, cert)| {
            let key = cert.public_key().subject_public_key.data.as_ref();
            let mut algs = algs;
            algs.any(|alg| alg.verify_signature(key, message, dss.signature()).is_ok())
        });
        if valid {
            Ok(HandshakeSignatureValid::assertion())
        } else {
            checked
        }
    }
}

/// Sends no client certificate and notes whether the peer asked for one.
#[derive(Debug)]
struct NoClientCert {
    asked: Arc<Mutex<bool>>,
}

impl ResolvesClientCert for NoClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        *lock(&self.asked) = true;
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

/// The connection, keeping the first bytes the peer sent.
struct Recording {
    inner: Stream,
    first: Vec<u8>,
}

impl AsyncRead for Recording {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            let room = RECORD_CAP.saturating_sub(this.first.len());
            let new = buf.filled().get(before..).unwrap_or_default();
            this.first
                .extend_from_slice(new.get(..room.min(new.len())).unwrap_or_default());
        }
        poll
    }
}

impl AsyncWrite for Recording {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Explains a failed handshake from the error and the first bytes the peer sent.
fn classify_failure(err: &io::Error, first: &[u8]) -> TlsOutcome {
    if !could_be_tls(first) {
        return TlsOutcome::NotTls {
            reply: first.to_vec(),
        };
    }
    if let Some(tls_err) = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return classify_rustls(tls_err);
    }
    const EPIPE: i32 = nix::errno::Errno::EPIPE as i32;
    const ECONNRESET: i32 = nix::errno::Errno::ECONNRESET as i32;
    match (err.kind(), err.raw_os_error()) {
        (io::ErrorKind::UnexpectedEof, _) | (_, Some(EPIPE | ECONNRESET)) => {
            TlsOutcome::ClosedInHandshake
        }
        (_, Some(errno)) => TlsOutcome::Failed {
            message: format!("{} ({errno})", nix::errno::Errno::from_raw(errno).desc()),
        },
        (_, None) => TlsOutcome::Failed {
            message: err.to_string(),
        },
    }
}

fn classify_rustls(err: &rustls::Error) -> TlsOutcome {
    match err {
        rustls::Error::AlertReceived(rustls::AlertDescription::ProtocolVersion)
        | rustls::Error::InvalidMessage(rustls::InvalidMessage::UnknownProtocolVersion)
        | rustls::Error::PeerIncompatible(
            PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig
            | PeerIncompatible::ServerDoesNotSupportTls12Or13
            | PeerIncompatible::SupportedVersionsExtensionRequired,
        ) => TlsOutcome::NoCommonVersion,
        rustls::Error::AlertReceived(alert) => {
            let number = u8::from(*alert);
            let description = alert_name(number)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("alert {number}"));
            TlsOutcome::Alert { description }
        }
        other => TlsOutcome::Failed {
            message: other.to_string(),
        },
    }
}

/// The version in the peer's ServerHello (its legacy_version field), if the first record is
/// one. Only used when there was no common version (a TLSv1.3 ServerHello also says 1.2
/// there). A peer that refuses with a `protocol_version` alert instead (OpenSSL does, in a
/// TLSv1.2 record even when it only speaks TLSv1) shows no version.
fn server_hello_version(first: &[u8]) -> Option<TlsVersion> {
    match first {
        [0x16, 0x03, _, _, _, 0x02, _, _, _, major, minor, ..] => {
            TlsVersion::from_wire(*major, *minor)
        }
        _ => None,
    }
}

/// TLS alert numbers and their RFC 8446 / RFC 5246 names.
const ALERTS: &[(u8, &str)] = &[
    (0, "close_notify"),
    (10, "unexpected_message"),
    (20, "bad_record_mac"),
    (21, "decryption_failed"),
    (22, "record_overflow"),
    (30, "decompression_failure"),
    (40, "handshake_failure"),
    (41, "no_certificate"),
    (42, "bad_certificate"),
    (43, "unsupported_certificate"),
    (44, "certificate_revoked"),
    (45, "certificate_expired"),
    (46, "certificate_unknown"),
    (47, "illegal_parameter"),
    (48, "unknown_ca"),
    (49, "access_denied"),
    (50, "decode_error"),
    (51, "decrypt_error"),
    (60, "export_restriction"),
    (70, "protocol_version"),
    (71, "insufficient_security"),
    (80, "internal_error"),
    (86, "inappropriate_fallback"),
    (90, "user_canceled"),
    (100, "no_renegotiation"),
    (109, "missing_extension"),
    (110, "unsupported_extension"),
    (111, "certificate_unobtainable"),
    (112, "unrecognized_name"),
    (113, "bad_certificate_status_response"),
    (114, "bad_certificate_hash_value"),
    (115, "unknown_psk_identity"),
    (116, "certificate_required"),
    (120, "no_application_protocol"),
    (121, "encrypted_client_hello_required"),
];

fn alert_name(number: u8) -> Option<&'static str> {
    ALERTS
        .iter()
        .find(|(n, _)| *n == number)
        .map(|(_, name)| *name)
}

/// A parsed certificate: the summary plus the names split by kind, for the name check.
struct CertInfo {
    summary: CertSummary,
    dns: Vec<String>,
    common_names: Vec<String>,
}

fn summarize(der: &CertificateDer<'_>) -> CertSummary {
    cert_info(der).summary
}

/// The fuzzing entry point (`fuzz/`), not API: the summary of a DER certificate as a
/// probe reports it, and whether it is for `expected` by the name check a probe makes.
#[doc(hidden)]
pub fn summarize_der(der: &[u8], expected: &str) -> (CertSummary, bool) {
    let info = cert_info(&CertificateDer::from(der));
    let matches = host_matches(expected, &info.dns, &info.common_names);
    (info.summary, matches)
}

fn cert_info(der: &CertificateDer<'_>) -> CertInfo {
    let cert = match x509_parser::parse_x509_certificate(der.as_ref()) {
        Ok((_, cert)) => cert,
        Err(err) => {
            return CertInfo {
                summary: CertSummary {
                    subject: format!("(unparsable certificate: {err})"),
                    issuer: String::new(),
                    names: Vec::new(),
                    not_before: 0,
                    not_after: 0,
                    self_signed: false,
                },
                dns: Vec::new(),
                common_names: Vec::new(),
            };
        }
    };
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => dns.push((*d).to_owned()),
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        ips.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let common_names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .map(str::to_owned)
        .collect();
    let mut names: Vec<String> = dns.iter().chain(&ips).cloned().collect();
    if names.is_empty() {
        names.clone_from(&common_names);
    }
    CertInfo {
        summary: CertSummary {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            names,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
        },
        dns,
        common_names,
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::V4(Ipv4Addr::from(v4)));
    }
    <[u8; 16]>::try_from(bytes)
        .ok()
        .map(|v6| IpAddr::V6(Ipv6Addr::from(v6)))
}

/// Reads the PEM certificates of `proxy_ssl_trusted_certificate`.
fn load_trusted(path: Option<&Path>) -> Result<Vec<CertificateDer<'static>>, String> {
    let path = path.ok_or_else(|| {
        "no trusted certificate file given (proxy_ssl_trusted_certificate)".to_owned()
    })?;
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|err| match err.raw_os_error() {
        Some(errno) => format!(
            "cannot open {shown}: {} ({errno})",
            nix::errno::Errno::from_raw(errno).desc()
        ),
        None => format!("cannot open {shown}: {err}"),
    })?;
    let mut pem = Vec::new();
    file.take(MAX_TRUSTED_FILE + 1)
        .read_to_end(&mut pem)
        .map_err(|err| format!("cannot read {shown}: {err}"))?;
    if pem.len() as u64 > MAX_TRUSTED_FILE {
        return Err(format!("{shown} is larger than {MAX_TRUSTED_FILE} bytes"));
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(format!("{shown} holds no PEM certificate"));
    }
    Ok(certs)
}

/// Judges `chain` (leaf first) as nginx does with `proxy_ssl_verify on`: first the chain
/// against the trusted certificates (`upstream SSL certificate verify error`), then the
/// name (`upstream SSL certificate does not match`).
fn verify_chain(
    chain: &[CertificateDer<'static>],
    trusted: Option<&Path>,
    expected: Option<&str>,
    provider: &Arc<CryptoProvider>,
) -> Verification {
    let trusted = match load_trusted(trusted) {
        Ok(certs) => certs,
        Err(message) => return Verification::NoTrustedCertificates { message },
    };
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Verification::Other("the peer sent no certificate".to_owned());
    };
    let info = cert_info(leaf);
    let chain_result = if info.summary.self_signed && trusted.contains(leaf) {
        // A trusted self-signed leaf is its own trust anchor for OpenSSL, even when it is
        // marked as a CA (as `openssl req -x509` does), which webpki refuses as a leaf.
        validity_now(&info.summary)
    } else {
        verify_with_webpki(leaf, intermediates, &trusted, expected, &info, provider)
    };
    if chain_result != Verification::Ok {
        return chain_result;
    }
    let Some(expected) = expected else {
        return Verification::Other(
            "no name to check the certificate against (set proxy_ssl_name)".to_owned(),
        );
    };
    if host_matches(expected, &info.dns, &info.common_names) {
        Verification::Ok
    } else {
        Verification::NameMismatch {
            expected: expected.to_owned(),
            presented: info.summary.names,
        }
    }
}

/// The chain check by webpki; a name mismatch counts as a good chain here (webpki checks
/// the name last), the name is judged nginx's way by [`host_matches`].
fn verify_with_webpki(
    leaf: &CertificateDer<'static>,
    intermediates: &[CertificateDer<'static>],
    trusted: &[CertificateDer<'static>],
    expected: Option<&str>,
    info: &CertInfo,
    provider: &Arc<CryptoProvider>,
) -> Verification {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(trusted.iter().cloned());
    if added == 0 {
        return Verification::NoTrustedCertificates {
            message: "no usable certificate in the trusted file".to_owned(),
        };
    }
    let verifier =
        match WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
            .build()
        {
            Ok(verifier) => verifier,
            Err(err) => return Verification::Other(err.to_string()),
        };
    let name = expected
        .and_then(|name| ServerName::try_from(name.to_owned()).ok())
        .unwrap_or_else(|| ServerName::try_from(PLACEHOLDER_NAME).expect("valid placeholder"));
    let result = verifier.verify_server_cert(leaf, intermediates, &name, &[], UnixTime::now());
    match result {
        Ok(_)
        | Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => Verification::Ok,
        Err(rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
            not_after,
            ..
        })) => Verification::Expired {
            not_after: i64::try_from(not_after.as_secs()).unwrap_or(i64::MAX),
        },
        Err(rustls::Error::InvalidCertificate(CertificateError::Expired)) => {
            Verification::Expired {
                not_after: info.summary.not_after,
            }
        }
        Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        )) => Verification::NotYetValid,
        // webpki refuses X.509 v1 certificates, which OpenSSL accepts.
        Err(_) if std::iter::once(leaf).chain(intermediates).any(is_v1) => {
            verify_simple_path(leaf, intermediates, trusted, provider)
        }
        // An untrusted self-signed leaf: OpenSSL says 18 whatever webpki tripped on first
        // (UnknownIssuer, or CaUsedAsEndEntity for a CA-flagged self-signed certificate).
        Err(_) if info.summary.self_signed => Verification::SelfSigned,
        Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
            Verification::UnknownIssuer
        }
        Err(err) => Verification::Other(err.to_string()),
    }
}

fn is_v1(der: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(der.as_ref())
        .is_ok_and(|(_, cert)| cert.version() == x509_parser::x509::X509Version::V1)
}

/// A plain path check for chains webpki refuses (X.509 v1 certificates): from the leaf,
/// follow issuer names through the peer's certificates to a trusted certificate, checking
/// each signature and validity period. No extension checks.
fn verify_simple_path(
    leaf: &CertificateDer<'static>,
    intermediates: &[CertificateDer<'static>],
    trusted: &[CertificateDer<'static>],
    provider: &CryptoProvider,
) -> Verification {
    fn parse<'a>(der: &'a CertificateDer<'_>) -> Option<(X509Certificate<'a>, CertSummary)> {
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
        Some((cert, summarize(der)))
    }
    let peer: Vec<_> = intermediates.iter().filter_map(parse).collect();
    let anchors: Vec<_> = trusted.iter().filter_map(parse).collect();
    let Some((leaf_cert, leaf_summary)) = parse(leaf) else {
        return Verification::Other("the leaf certificate cannot be parsed".to_owned());
    };
    let algs = provider.signature_verification_algorithms.all;
    let (mut current, mut summary) = (&leaf_cert, &leaf_summary);
    for _ in 0..=MAX_CHAIN {
        let validity = validity_now(summary);
        if validity != Verification::Ok {
            return validity;
        }
        let issued = |(issuer, _): &&(X509Certificate<'_>, CertSummary)| {
            issuer.subject().as_raw() == current.issuer().as_raw()
                && signed_by(current, issuer, algs)
        };
        if anchors.iter().any(|anchor| issued(&anchor)) {
            return Verification::Ok;
        }
        if summary.self_signed {
            return if std::ptr::eq(current, &leaf_cert) {
                Verification::SelfSigned
            } else {
                Verification::UnknownIssuer
            };
        }
        match peer.iter().find(issued) {
            Some((next, next_summary)) => (current, summary) = (next, next_summary),
            None => return Verification::UnknownIssuer,
        }
    }
    Verification::UnknownIssuer
}

/// Whether `issuer`'s key made `cert`'s signature (any supported algorithm).
fn signed_by(
    cert: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
    algs: &[&dyn rustls::pki_types::SignatureVerificationAlgorithm],
) -> bool {
    let key = issuer.public_key().subject_public_key.data.as_ref();
    let message = cert.tbs_certificate.as_ref();
    let signature = cert.signature_value.data.as_ref();
    algs.iter()
        .any(|alg| alg.verify_signature(key, message, signature).is_ok())
}

/// Checks the validity period of a certificate against the current time.
fn validity_now(summary: &CertSummary) -> Verification {
    let now = i64::try_from(UnixTime::now().as_secs()).unwrap_or(i64::MAX);
    if now < summary.not_before {
        Verification::NotYetValid
    } else if now > summary.not_after {
        Verification::Expired {
            not_after: summary.not_after,
        }
    } else {
        Verification::Ok
    }
}

/// Whether the certificate is for `expected`, as OpenSSL's `X509_check_host` (which nginx
/// calls) decides: the DNS subjectAltNames, or the common names when there are no DNS
/// subjectAltNames; a `*` in the leftmost label matches within that one label. An IP
/// address is compared as text with those names: IP subjectAltNames do not count.
fn host_matches(expected: &str, dns: &[String], common_names: &[String]) -> bool {
    let expected = expected.strip_suffix('.').unwrap_or(expected);
    if expected.is_empty() {
        return false;
    }
    let patterns = if dns.is_empty() { common_names } else { dns };
    patterns
        .iter()
        .any(|pattern| pattern_matches(pattern, expected))
}

fn pattern_matches(pattern: &str, name: &str) -> bool {
    let pattern = pattern.strip_suffix('.').unwrap_or(pattern);
    if pattern.eq_ignore_ascii_case(name) {
        return true;
    }
    let (Some((p_label, p_rest)), Some((n_label, n_rest))) =
        (pattern.split_once('.'), name.split_once('.'))
    else {
        return false;
    };
    // The wildcard must be in the leftmost label, alone, and not directly under a TLD.
    let Some((prefix, suffix)) = p_label.split_once('*') else {
        return false;
    };
    if suffix.contains('*') || p_rest.contains('*') || !p_rest.contains('.') {
        return false;
    }
    if !p_rest.eq_ignore_ascii_case(n_rest) || n_label.is_empty() {
        return false;
    }
    n_label.len() >= prefix.len() + suffix.len()
        && n_label
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
        && n_label
            .get(n_label.len() - suffix.len()..)
            .is_some_and(|s| s.eq_ignore_ascii_case(suffix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::net::SocketAddr;

    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, Issuer, KeyPair,
    };
    use rustls::ServerConfig;
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::server::{ClientHello, ResolvesServerCert};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, UnixListener};
    use tokio_rustls::TlsAcceptor;

    const WAIT: Duration = Duration::from_secs(5);

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca")
    }

    struct Leaf {
        der: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
    }

    fn leaf_params(names: &[&str], cn: &str) -> CertificateParams {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params
    }

    fn signed(params: &CertificateParams, issuer: &Issuer<'_, KeyPair>) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, issuer).expect("sign");
        Leaf {
            der: cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }

    fn self_signed(params: &CertificateParams) -> (Leaf, String) {
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-sign");
        let leaf = Leaf {
            der: cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        };
        (leaf, cert.pem())
    }

    fn pem_file(pem: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(pem.as_bytes()).expect("write pem");
        file
    }

    fn server_config(
        leaf: &Leaf,
        extra: &[CertificateDer<'static>],
        versions: &[&'static SupportedProtocolVersion],
    ) -> Arc<ServerConfig> {
        let mut chain = vec![leaf.der.clone()];
        chain.extend(extra.iter().cloned());
        let config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, leaf.key.clone_key())
            .expect("server cert");
        Arc::new(config)
    }

    /// A TLS server on 127.0.0.1 that handshakes with up to 4 clients and then holds each
    /// connection until the client goes away.
    async fn tls_server(config: Arc<ServerConfig>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            for _ in 0..4 {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(Ok(mut tls)) = tokio::time::timeout(WAIT, acceptor.accept(tcp)).await
                    {
                        let mut buf = [0u8; 64];
                        let _ = tokio::time::timeout(WAIT, tls.read(&mut buf)).await;
                    }
                });
            }
        });
        addr
    }

    fn options(timeout: Duration) -> TlsOptions {
        TlsOptions {
            sni: None,
            verify: false,
            trusted: None,
            verify_name: None,
            versions: Vec::new(),
            timeout,
        }
    }

    fn verifying(trusted: &Path, name: &str) -> TlsOptions {
        TlsOptions {
            verify: true,
            trusted: Some(trusted.to_path_buf()),
            verify_name: Some(name.to_owned()),
            ..options(WAIT)
        }
    }

    #[test]
    fn tls_record_starts_are_recognized() {
        assert!(looks_like_tls(&[0x16, 0x03, 0x01, 0x00, 0x05]));
        assert!(looks_like_tls(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]));
        assert!(looks_like_tls(&[0x17, 0x03, 0x04]));
        assert!(!looks_like_tls(b"HTTP/1.1 400 Bad Request\r\n"));
        assert!(!looks_like_tls(b"SSH-2.0-OpenSSH_9.2"));
        assert!(!looks_like_tls(&[0x16, 0x03, 0x05]));
        assert!(!looks_like_tls(&[0x18, 0x03, 0x01]));
        assert!(!looks_like_tls(&[0x16, 0x03]));
        assert!(!looks_like_tls(&[]));
        assert!(could_be_tls(&[0x16]));
        assert!(!could_be_tls(b"H"));
    }

    #[test]
    fn versions_and_alerts_have_nginx_names() {
        assert_eq!(TlsVersion::from_nginx("TLSv1"), Some(TlsVersion::Tls10));
        assert_eq!(TlsVersion::from_nginx("tlsv1.2"), Some(TlsVersion::Tls12));
        assert_eq!(TlsVersion::from_nginx("TLSv1.3"), Some(TlsVersion::Tls13));
        assert_eq!(TlsVersion::from_nginx("SSLv3"), None);
        assert_eq!(TlsVersion::Tls11.nginx_name(), "TLSv1.1");
        assert!(!TlsVersion::Tls10.is_supported_by_probe());
        let alert = TlsOutcome::Alert {
            description: "handshake_failure".to_owned(),
        };
        assert_eq!(alert.alert_number(), Some(40));
        assert_eq!(alert_name(112), Some("unrecognized_name"));
        let unknown = TlsOutcome::Alert {
            description: "alert 200".to_owned(),
        };
        assert_eq!(unknown.alert_number(), Some(200));
        assert_eq!(
            server_hello_version(&[0x16, 0x03, 0x01, 0x00, 0x30, 0x02, 0, 0, 0x2c, 0x03, 0x01]),
            Some(TlsVersion::Tls10)
        );
        assert_eq!(sni_to_send(Some("10.0.0.1")), None);
        assert_eq!(sni_to_send(Some("[::1]")), None);
        assert_eq!(
            sni_to_send(Some("app.internal")).as_deref(),
            Some("app.internal")
        );
    }

    #[test]
    fn host_names_match_like_openssl() {
        let dns = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        assert!(host_matches("App.Internal", &dns(&["app.internal"]), &[]));
        assert!(host_matches("a.example.com", &dns(&["*.example.com"]), &[]));
        assert!(!host_matches(
            "a.b.example.com",
            &dns(&["*.example.com"]),
            &[]
        ));
        assert!(!host_matches("example.com", &dns(&["*.example.com"]), &[]));
        assert!(!host_matches("a.com", &dns(&["*.com"]), &[]));
        assert!(host_matches(
            "web1.example.com",
            &dns(&["web*.example.com"]),
            &[]
        ));
        // Common names count only without DNS subjectAltNames.
        assert!(host_matches("backend", &[], &dns(&["backend"])));
        assert!(!host_matches(
            "backend",
            &dns(&["app.internal"]),
            &dns(&["backend"])
        ));
        assert!(!host_matches("", &dns(&["app.internal"]), &[]));
    }

    #[tokio::test]
    async fn handshake_reports_version_cipher_and_chain() {
        let ca = ca("Test CA");
        let mut params = leaf_params(&["app.internal"], "app.internal");
        params.not_after = rcgen::date_time_ymd(2049, 1, 2);
        let leaf = signed(&params, &ca);
        let tls13_and_12 = [&rustls::version::TLS13, &rustls::version::TLS12];
        let addr = tls_server(server_config(&leaf, &[ca.der().clone()], &tls13_and_12)).await;
        let probe = probe_tls(&Endpoint::Tcp(addr), &options(WAIT)).await;
        assert_eq!(probe.outcome, TlsOutcome::Established, "{probe:?}");
        assert_eq!(probe.version, Some(TlsVersion::Tls13));
        assert!(
            probe
                .cipher
                .as_deref()
                .is_some_and(|c| c.starts_with("TLS13_"))
        );
        assert_eq!(probe.sni, None);
        assert_eq!(probe.verification, None);
        assert!(!probe.client_cert_requested);
        assert_eq!(probe.chain.len(), 2);
        let leaf_summary = probe.chain.first().expect("leaf");
        assert_eq!(leaf_summary.names, vec!["app.internal".to_owned()]);
        assert_eq!(leaf_summary.subject, "CN=app.internal");
        assert_eq!(leaf_summary.issuer, "CN=Test CA");
        assert!(!leaf_summary.self_signed);
        assert_eq!(leaf_summary.not_after, 2493158400); // 2049-01-02T00:00:00Z
        assert!(probe.chain.get(1).is_some_and(|c| c.self_signed));

        // TLS1.2 only on the server: negotiated down.
        let tls12 = [&rustls::version::TLS12];
        let addr = tls_server(server_config(&leaf, &[], &tls12)).await;
        let probe = probe_tls(&Endpoint::Tcp(addr), &options(WAIT)).await;
        assert_eq!(probe.outcome, TlsOutcome::Established, "{probe:?}");
        assert_eq!(probe.version, Some(TlsVersion::Tls12));
        assert!(
            probe
                .cipher
                .as_deref()
                .is_some_and(|c| c.starts_with("TLS_ECDHE_"))
        );
    }

    #[tokio::test]
    async fn verification_with_the_trusted_ca_passes() {
        let ca = ca("Test CA");
        let leaf = signed(&leaf_params(&["app.internal"], "app"), &ca);
        let addr = tls_server(server_config(&leaf, &[], &[&rustls::version::TLS13])).await;
        let trusted = pem_file(&ca.pem());
        let probe = probe_tls(
            &Endpoint::Tcp(addr),
            &verifying(trusted.path(), "app.internal"),
        )
        .await;
        assert_eq!(probe.outcome, TlsOutcome::Established);
        assert_eq!(probe.verification, Some(Verification::Ok));

        // nginx's default name is the upstream group name: a name mismatch.
        let probe = probe_tls(&Endpoint::Tcp(addr), &verifying(trusted.path(), "backend")).await;
        assert_eq!(
            probe.verification,
            Some(Verification::NameMismatch {
                expected: "backend".to_owned(),
                presented: vec!["app.internal".to_owned()],
            })
        );

        // Another CA trusted: unknown issuer (verify error 20).
        let other = pem_file(&self::ca("Other CA").pem());
        let probe = probe_tls(
            &Endpoint::Tcp(addr),
            &verifying(other.path(), "app.internal"),
        )
        .await;
        assert_eq!(probe.verification, Some(Verification::UnknownIssuer));

        // A missing trusted file.
        let missing = trusted.path().with_extension("missing");
        let probe = probe_tls(&Endpoint::Tcp(addr), &verifying(&missing, "app.internal")).await;
        assert!(
            matches!(
                &probe.verification,
                Some(Verification::NoTrustedCertificates { message }) if message.contains("(2)")
            ),
            "{probe:?}"
        );
    }

    #[tokio::test]
    async fn self_signed_and_expired_certificates_are_named() {
        let (leaf, leaf_pem) = self_signed(&leaf_params(&["app.internal"], "app.internal"));
        let addr = tls_server(server_config(&leaf, &[], &[&rustls::version::TLS13])).await;
        let other = pem_file(&ca("Other CA").pem());
        let probe = probe_tls(
            &Endpoint::Tcp(addr),
            &verifying(other.path(), "app.internal"),
        )
        .await;
        assert_eq!(probe.verification, Some(Verification::SelfSigned));
        assert!(probe.chain.first().is_some_and(|c| c.self_signed));

        // The same self-signed leaf, trusted: fine.
        let own = pem_file(&leaf_pem);
        let probe = probe_tls(&Endpoint::Tcp(addr), &verifying(own.path(), "app.internal")).await;
        assert_eq!(probe.verification, Some(Verification::Ok));

        // A self-signed leaf flagged as CA (as `openssl req -x509` makes them), trusted: fine.
        let mut params = leaf_params(&["app.internal"], "app.internal");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let (ca_leaf, ca_leaf_pem) = self_signed(&params);
        let addr = tls_server(server_config(&ca_leaf, &[], &[&rustls::version::TLS13])).await;
        let own = pem_file(&ca_leaf_pem);
        let probe = probe_tls(&Endpoint::Tcp(addr), &verifying(own.path(), "app.internal")).await;
        assert_eq!(probe.verification, Some(Verification::Ok));
        // ... and untrusted: self-signed.
        let probe = probe_tls(
            &Endpoint::Tcp(addr),
            &verifying(other.path(), "app.internal"),
        )
        .await;
        assert_eq!(probe.verification, Some(Verification::SelfSigned));

        // Expired, signed by the trusted CA.
        let ca = ca("Test CA");
        let mut params = leaf_params(&["app.internal"], "app.internal");
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let expired = signed(&params, &ca);
        let addr = tls_server(server_config(&expired, &[], &[&rustls::version::TLS13])).await;
        let trusted = pem_file(&ca.pem());
        let probe = probe_tls(
            &Endpoint::Tcp(addr),
            &verifying(trusted.path(), "app.internal"),
        )
        .await;
        assert_eq!(probe.outcome, TlsOutcome::Established);
        assert_eq!(
            probe.verification,
            Some(Verification::Expired {
                not_after: 1609459200 // 2021-01-01T00:00:00Z
            })
        );
    }

    #[tokio::test]
    async fn common_name_only_certificate_matches_its_cn() {
        let ca = ca("Test CA");
        let leaf = signed(&leaf_params(&[], "backend"), &ca);
        let addr = tls_server(server_config(&leaf, &[], &[&rustls::version::TLS13])).await;
        let trusted = pem_file(&ca.pem());
        let probe = probe_tls(&Endpoint::Tcp(addr), &verifying(trusted.path(), "backend")).await;
        assert_eq!(probe.verification, Some(Verification::Ok), "{probe:?}");
        assert_eq!(
            probe.chain.first().map(|c| c.names.clone()),
            Some(vec!["backend".to_owned()])
        );
        let probe = probe_tls(&Endpoint::Tcp(addr), &verifying(trusted.path(), "other")).await;
        assert!(matches!(
            probe.verification,
            Some(Verification::NameMismatch { .. })
        ));
    }

    /// An X.509 v1 leaf (`CN=backend`, as `openssl x509 -req` without extensions makes
    /// them), its key and its CA, made with OpenSSL 3.0, valid until 2126.
    const V1_CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBgTCCASegAwIBAgIUdCGu13547+RNU7t6ZCTgdIZlyOYwCgYIKoZIzj0EAwIw\nFTETMBEGA1UEAwwKVjEgVGVzdCBDQTAgFw0yNjExMjQwMTA3MjRaGA8yMTI2MTAz\nMTAxMDcyNFowFTETMBEGA1UEAwwKVjEgVGVzdCBDQTBZMBMGByqGSM49AgEGCCqG\nSM49AwEHA0IABDeTwidc2beFrWX71fkumk+jisCD1tkoHW9ZjUlbUlRmxep4U6kX\nvj/UPCCRxgbI69NS7Acardg22bu2kXiZaeCjUzBRMB0GA1UdDgQWBBSe8LBvBeLF\nKQHM1NCR9Qpdy+tJkzAfBgNVHSMEGDAWgBSe8LBvBeLFKQHM1NCR9Qpdy+tJkzAP\nBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIHuEmrx6uhcX2sstbCIq\nNE6QTvePnxDQIi0OKPuXGZv5AiEAojrDucqcWoGQFFR5iWRkKFQDel/k53h+JhHD\ntfVJ8BU=\n-----END CERTIFICATE-----\n";
    const V1_LEAF: &str = "-----BEGIN CERTIFICATE-----\nMIIBEDCBtwIBBzAKBggqhkjOPQQDAjAVMRMwEQYDVQQDDApWMSBUZXN0IENBMCAX\nDTI2MTEyNDAxMDcyNFoYDzIxMjYxMDMxMDEwNzI0WjASMRAwDgYDVQQDDAdiYWNr\nZW5kMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEbBiw2CkiKZV4Y08VeUXm1+OQ\nvxWxpV9Qcmi7U3jwIx/gDOW0fnuVOv7BxUm3zvhHFE9G5hXv/VAijthLwbe54jAK\nBggqhkjOPQQDAgNIADBFAiEAqYjrW5DlpmMpNV68wxzpyfT8OhxNw3r+tvwrc3zX\n2jsCIHu8mGW7StklVaZbqtwNWRIuzzhBzQRtIvScsLScu8aq\n-----END CERTIFICATE-----\n";
    const V1_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgp37VnqZwpoj/Sqla\nNhiTlCDqd4+REAIQv8W9z8Xe8CWhRANCAARsGLDYKSIplXhjTxV5RebX45C/FbGl\nX1ByaLtTePAjH+AM5bR+e5U6/sHFSbfO+EcUT0bmFe/9UCKO2EvBt7ni\n-----END PRIVATE KEY-----\n";

    #[tokio::test]
    async fn x509_v1_certificates_are_judged_like_openssl() {
        let leaf = Leaf {
            der: CertificateDer::from_pem_slice(V1_LEAF.as_bytes()).expect("leaf pem"),
            key: PrivateKeyDer::from_pem_slice(V1_KEY.as_bytes()).expect("key pem"),
        };
        let trusted = pem_file(V1_CA);
        let other = pem_file(&ca("Other CA").pem());
        // rustls refuses v1 certificates in `with_single_cert`; a resolver takes them as is.
        let signing_key = provider()
            .key_provider
            .load_private_key(leaf.key)
            .expect("signing key");
        let key = Arc::new(rustls::sign::CertifiedKey::new(vec![leaf.der], signing_key));
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let config = ServerConfig::builder_with_provider(provider())
                .with_protocol_versions(&[version])
                .expect("versions")
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(FixedCert {
                    key: Arc::clone(&key),
                    require_sni: false,
                }));
            let addr = tls_server(Arc::new(config)).await;
            let probe =
                probe_tls(&Endpoint::Tcp(addr), &verifying(trusted.path(), "backend")).await;
            assert_eq!(probe.outcome, TlsOutcome::Established, "{probe:?}");
            assert_eq!(probe.verification, Some(Verification::Ok), "{probe:?}");
            let probe = probe_tls(&Endpoint::Tcp(addr), &verifying(trusted.path(), "app")).await;
            assert_eq!(
                probe.verification,
                Some(Verification::NameMismatch {
                    expected: "app".to_owned(),
                    presented: vec!["backend".to_owned()],
                })
            );
            let probe = probe_tls(&Endpoint::Tcp(addr), &verifying(other.path(), "backend")).await;
            assert_eq!(probe.verification, Some(Verification::UnknownIssuer));
        }
    }

    /// Serves one certificate; with `require_sni`, only to clients that send SNI.
    #[derive(Debug)]
    struct FixedCert {
        key: Arc<rustls::sign::CertifiedKey>,
        require_sni: bool,
    }

    impl ResolvesServerCert for FixedCert {
        fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
            if self.require_sni && hello.server_name().is_none() {
                return None;
            }
            Some(Arc::clone(&self.key))
        }
    }

    #[tokio::test]
    async fn sni_required_server_refuses_nginx_default() {
        let (leaf, _) = self_signed(&leaf_params(&["app.internal"], "app.internal"));
        let key =
            rustls::sign::CertifiedKey::from_der(vec![leaf.der.clone()], leaf.key, &provider())
                .expect("certified key");
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(FixedCert {
                key: Arc::new(key),
                require_sni: true,
            }));
        let addr = tls_server(Arc::new(config)).await;

        let probe = probe_tls(&Endpoint::Tcp(addr), &options(WAIT)).await;
        assert!(
            matches!(
                &probe.outcome,
                TlsOutcome::Alert { .. } | TlsOutcome::ClosedInHandshake
            ),
            "{probe:?}"
        );
        assert_eq!(probe.sni, None);

        let with_sni = TlsOptions {
            sni: Some("app.internal".to_owned()),
            ..options(WAIT)
        };
        let probe = probe_tls(&Endpoint::Tcp(addr), &with_sni).await;
        assert_eq!(probe.outcome, TlsOutcome::Established, "{probe:?}");
        assert_eq!(probe.sni.as_deref(), Some("app.internal"));

        // An IP literal is never sent as SNI.
        let ip_sni = TlsOptions {
            sni: Some("127.0.0.1".to_owned()),
            ..options(WAIT)
        };
        let probe = probe_tls(&Endpoint::Tcp(addr), &ip_sni).await;
        assert_eq!(probe.sni, None);
        assert_ne!(probe.outcome, TlsOutcome::Established);
    }

    #[tokio::test]
    async fn version_mismatch_is_no_common_version() {
        let (leaf, _) = self_signed(&leaf_params(&["app.internal"], "app.internal"));
        let addr = tls_server(server_config(&leaf, &[], &[&rustls::version::TLS13])).await;
        let only12 = TlsOptions {
            versions: vec![TlsVersion::Tls12],
            ..options(WAIT)
        };
        let probe = probe_tls(&Endpoint::Tcp(addr), &only12).await;
        assert_eq!(probe.outcome, TlsOutcome::NoCommonVersion, "{probe:?}");

        let addr = tls_server(server_config(&leaf, &[], &[&rustls::version::TLS12])).await;
        let only13 = TlsOptions {
            versions: vec![TlsVersion::Tls13],
            ..options(WAIT)
        };
        let probe = probe_tls(&Endpoint::Tcp(addr), &only13).await;
        assert_eq!(probe.outcome, TlsOutcome::NoCommonVersion, "{probe:?}");

        // Versions the probe cannot speak: said so, nothing sent.
        let legacy = TlsOptions {
            versions: vec![TlsVersion::Tls10, TlsVersion::Tls11],
            ..options(WAIT)
        };
        let probe = probe_tls(&Endpoint::Tcp(addr), &legacy).await;
        assert!(
            matches!(&probe.outcome, TlsOutcome::Failed { message } if message.contains("TLSv1 TLSv1.1")),
            "{probe:?}"
        );
    }

    #[tokio::test]
    async fn legacy_server_hello_version_is_reported() {
        // A peer that answers every ClientHello with a TLS 1.0 ServerHello.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            if let Ok((mut tcp, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = tcp.read(&mut buf).await;
                let mut hello = vec![0x02, 0x00, 0x00, 0x26, 0x03, 0x01];
                hello.extend_from_slice(&[0x11; 32]); // random
                hello.extend_from_slice(&[0x00, 0xc0, 0x13, 0x00]); // no session id, suite, null
                let mut record = vec![0x16, 0x03, 0x01, 0x00, 0x2a];
                record.extend_from_slice(&hello);
                let _ = tcp.write_all(&record).await;
                let _ = tcp.read(&mut buf).await;
            }
        });
        let probe = probe_tls(&Endpoint::Tcp(addr), &options(WAIT)).await;
        assert_eq!(probe.outcome, TlsOutcome::NoCommonVersion, "{probe:?}");
        assert_eq!(probe.version, Some(TlsVersion::Tls10));
    }

    #[tokio::test]
    async fn plain_http_port_is_not_tls() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            if let Ok((mut tcp, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let probe = probe_tls(&Endpoint::Tcp(addr), &options(WAIT)).await;
        assert_eq!(
            probe.outcome,
            TlsOutcome::NotTls {
                reply: b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()
            },
            "{probe:?}"
        );
        assert!(
            probe
                .outcome
                .to_string()
                .contains("HTTP/1.1 400 Bad Request")
        );
    }

    #[tokio::test]
    async fn close_on_accept_is_closed_in_handshake() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            if let Ok((tcp, _)) = listener.accept().await {
                drop(tcp);
            }
        });
        let probe = probe_tls(&Endpoint::Tcp(addr), &options(WAIT)).await;
        assert_eq!(probe.outcome, TlsOutcome::ClosedInHandshake, "{probe:?}");
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let holder = tokio::spawn(async move {
            let accepted = listener.accept().await;
            tokio::time::sleep(WAIT).await;
            drop(accepted);
        });
        let timeout = Duration::from_millis(300);
        let probe = probe_tls(&Endpoint::Tcp(addr), &options(timeout)).await;
        assert_eq!(probe.outcome, TlsOutcome::TimedOut);
        assert!(probe.elapsed >= timeout);
        assert!(
            probe.elapsed < timeout + Duration::from_millis(500),
            "{probe:?}"
        );
        holder.abort();
    }

    #[tokio::test]
    async fn refused_connect_is_connect_failed() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let probe = probe_tls(&Endpoint::Tcp(addr), &options(WAIT)).await;
        assert_eq!(
            probe.outcome,
            TlsOutcome::ConnectFailed(ConnectOutcome::Refused)
        );
    }

    #[tokio::test]
    async fn unix_socket_tls_server_works() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tls.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let (leaf, _) = self_signed(&leaf_params(&["app.internal"], "app.internal"));
        let acceptor = TlsAcceptor::from(server_config(&leaf, &[], &[&rustls::version::TLS13]));
        tokio::spawn(async move {
            if let Ok((stream, _)) = listener.accept().await
                && let Ok(Ok(mut tls)) = tokio::time::timeout(WAIT, acceptor.accept(stream)).await
            {
                let mut buf = [0u8; 16];
                let _ = tokio::time::timeout(WAIT, tls.read(&mut buf)).await;
            }
        });
        let probe = probe_tls(&Endpoint::Unix(path.clone()), &options(WAIT)).await;
        assert_eq!(probe.outcome, TlsOutcome::Established, "{probe:?}");
        assert_eq!(probe.endpoint, format!("unix:{}", path.display()));
        assert_eq!(
            probe.chain.first().map(|c| c.names.clone()),
            Some(vec!["app.internal".to_owned()])
        );
    }

    #[tokio::test]
    async fn client_certificate_request_is_noticed() {
        let ca = ca("Client CA");
        let mut roots = RootCertStore::empty();
        roots.add(ca.der().clone()).expect("root");
        let client_verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .expect("client verifier");
        let (leaf, _) = self_signed(&leaf_params(&["app.internal"], "app.internal"));
        let config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("versions")
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(vec![leaf.der.clone()], leaf.key.clone_key())
            .expect("server cert");
        let addr = tls_server(Arc::new(config)).await;
        let probe = probe_tls(&Endpoint::Tcp(addr), &options(WAIT)).await;
        assert!(probe.client_cert_requested, "{probe:?}");
    }
}
