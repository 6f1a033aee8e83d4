//! TLS as the worker's links use it, and a probe of each link's peer.
//!
//! Trust: [`system_roots`] is the machine's store (rustls-native-certs:
//! the OS bundle, or `SSL_CERT_FILE` / `SSL_CERT_DIR` when set), to which a
//! link adds its own CA file ([`add_pem_file`]: `PUSHER_CA_FILE`, libpq's
//! `sslrootcert`). [`client_config`] builds a rustls client that verifies
//! fully or nothing (libpq's `require`, `PUSHER_VERIFY_SSL=false`).
//!
//! The probe: [`probe`] opens one TLS connection to an [`Endpoint`], built
//! by the link's own module from the same settings as its real client, and
//! reports the [`Peer`]: protocol version, the certificate's names and its
//! expiry. A certificate the client refuses is a [`ProbeError::Refused`]
//! with the [`TlsRefusal`] in plain words (unknown issuer, name mismatch,
//! expired); at start that is a configuration error, while a peer that
//! cannot be reached is an outage like any other ([`ProbeError::is_configuration`]).

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One of the worker's three connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Link {
    RabbitMq,
    Postgres,
    Pusher,
}

impl Link {
    pub const ALL: [Link; 3] = [Link::RabbitMq, Link::Postgres, Link::Pusher];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Link::RabbitMq => "rabbitmq",
            Link::Postgres => "postgresql",
            Link::Pusher => "pusher",
        }
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Link::RabbitMq => "RabbitMQ",
            Link::Postgres => "PostgreSQL",
            Link::Pusher => "Pusher",
        })
    }
}

/// What a client checks of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// The chain to a trusted root, the dates and the host name.
    Full,
    /// Nothing: encrypted, not authenticated (libpq's `require`,
    /// `PUSHER_VERIFY_SSL=false`).
    Nothing,
}

impl Verify {
    pub fn as_str(self) -> &'static str {
        match self {
            Verify::Full => "verified",
            Verify::Nothing => "not verified",
        }
    }
}

/// Why trust settings cannot be used: each names the file or value.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "cannot read the CA file {path:?} ({source}); expected a readable PEM file of certificates"
    )]
    ReadCa {
        path: String,
        source: std::io::Error,
    },
    #[error("the CA file {path:?} holds no PEM certificate{detail}; expected one or more -----BEGIN CERTIFICATE----- blocks")]
    NoCa { path: String, detail: String },
    #[error("cannot read the client {what} {path:?} ({detail}); expected a readable PEM file")]
    ReadClient {
        what: &'static str,
        path: String,
        detail: String,
    },
    #[error("{given} is set without {missing}; expected both (a client certificate and its key) or neither")]
    HalfIdentity {
        given: &'static str,
        missing: &'static str,
    },
    #[error("{0:?} is not a TLS server name; expected a DNS name or an IP address")]
    ServerName(String),
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The machine's trust store: the OS bundle, or the files `SSL_CERT_FILE`
/// and `SSL_CERT_DIR` name when set. A certificate that cannot be read is
/// skipped with a warning, as OpenSSL does; an empty store is only a
/// warning too, since a link may bring its own CA.
pub fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    match rustls_native_certs::load_native_certs() {
        Ok(certs) => {
            let (_, skipped) = roots.add_parsable_certificates(certs);
            if skipped > 0 {
                tracing::warn!(
                    skipped,
                    "some certificates of the system trust store cannot be parsed; they are ignored"
                );
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot load the system trust store (set SSL_CERT_FILE or SSL_CERT_DIR, or install ca-certificates)");
        }
    }
    roots
}

/// Adds every certificate of the PEM file at `path` (a bundle such as RDS's
/// may hold dozens) to `roots`; returns how many.
pub fn add_pem_file(roots: &mut RootCertStore, path: &Path) -> Result<usize, TlsError> {
    let shown = path.display().to_string();
    let data = std::fs::read(path).map_err(|source| TlsError::ReadCa {
        path: shown.clone(),
        source,
    })?;
    add_pem(roots, &data, &shown)
}

/// [`add_pem_file`] for PEM text already read (`where_from` names it in errors).
pub fn add_pem(roots: &mut RootCertStore, pem: &[u8], where_from: &str) -> Result<usize, TlsError> {
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| TlsError::NoCa {
            path: where_from.into(),
            detail: format!(" that can be read ({e})"),
        })?;
        roots.add(cert).map_err(|e| TlsError::NoCa {
            path: where_from.into(),
            detail: format!(" that can be used ({e})"),
        })?;
        added += 1;
    }
    if added == 0 {
        return Err(TlsError::NoCa {
            path: where_from.into(),
            detail: String::new(),
        });
    }
    Ok(added)
}

/// A client certificate and its key given together, or neither: `names`
/// are the two settings, for the error when only one is given.
pub fn both_or_neither<T>(
    cert: Option<T>,
    key: Option<T>,
    names: (&'static str, &'static str),
) -> Result<Option<(T, T)>, TlsError> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some((cert, key))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(TlsError::HalfIdentity {
            given: names.0,
            missing: names.1,
        }),
        (None, Some(_)) => Err(TlsError::HalfIdentity {
            given: names.1,
            missing: names.0,
        }),
    }
}

/// A client certificate chain and its key, from PEM files.
pub fn client_identity(
    cert: &[u8],
    key: &[u8],
    cert_from: &str,
    key_from: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::ReadClient {
            what: "certificate",
            path: cert_from.into(),
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::ReadClient {
            what: "certificate",
            path: cert_from.into(),
            detail: "no certificate in it".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::ReadClient {
        what: "key",
        path: key_from.into(),
        detail: e.to_string(),
    })?;
    Ok((chain, key))
}

/// A rustls client trusting `roots`, checking what `verify` says, and
/// presenting `identity` when given.
pub fn client_config(
    roots: RootCertStore,
    verify: Verify,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match verify {
        Verify::Full => builder.with_root_certificates(roots),
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Anything(provider))),
    };
    Ok(match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    })
}

/// `host` as rustls names a server: a DNS name or an IP address.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    // An IPv6 literal comes from URLs in brackets.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_owned()).map_err(|_| TlsError::ServerName(host.into()))
}

/// Accepts any certificate; the handshake's signatures are still checked,
/// so the connection is at least encrypted to whoever holds the key.
#[derive(Debug)]
struct Anything(Arc<CryptoProvider>);

impl ServerCertVerifier for Anything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What is said on the TCP connection before TLS starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preamble {
    /// TLS from the first byte (https, amqps).
    None,
    /// PostgreSQL's SSLRequest, answered `S` (go on with TLS) or `N` (the
    /// server will not). With `required` (libpq's `require` and stronger),
    /// `N` is a refusal; else (`prefer`) the link is plain.
    PostgresSslRequest { required: bool },
}

/// PostgreSQL's SSLRequest: length 8, then the code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// Where a link's client connects and how it trusts the server: what
/// [`probe`] needs to connect exactly as that client does.
#[derive(Clone)]
pub struct Endpoint {
    pub link: Link,
    /// What the TCP connection goes to.
    pub host: String,
    pub port: u16,
    /// The name the certificate must carry.
    pub server_name: ServerName<'static>,
    pub config: Arc<ClientConfig>,
    pub verify: Verify,
    pub preamble: Preamble,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("link", &self.link)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("verify", &self.verify)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// `host:port`, IPv6 in brackets.
    pub fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The server at the other end of a TLS link, as the probe found it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Peer {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// The certificate's subject common name (or its first name when it has none).
    pub subject: String,
    /// Its DNS names and IP addresses.
    pub names: Vec<String>,
    /// Its issuer's common name.
    pub issuer: String,
    /// Its notAfter, in seconds since the Unix epoch.
    pub not_after: i64,
    /// What the client checked.
    pub verified: &'static str,
}

impl Peer {
    /// Days from `now` until the certificate expires (negative once it has).
    pub fn days_left(&self, now: SystemTime) -> f64 {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        (self.not_after as f64 - now) / 86_400.0
    }

    /// The expiry as RFC 3339.
    pub fn expires(&self) -> String {
        crate::clock::rfc3339_ms(self.not_after.saturating_mul(1000))
    }
}

/// Why a client refused the server's certificate, or the server refused TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsRefusal {
    /// The chain leads to no CA the client trusts.
    UnknownIssuer,
    /// The certificate does not name the host connected to.
    NameMismatch,
    Expired,
    NotYetValid,
    Revoked,
    /// A signature in the chain does not verify.
    BadSignature,
    /// The certificate is not for server authentication.
    WrongPurpose,
    /// The server sent this TLS alert (e.g. it wants a client certificate).
    Alert(String),
    /// The server does not offer TLS (PostgreSQL answered the SSLRequest `N`).
    NoTls,
    /// Any other TLS failure, as rustls puts it.
    Other(String),
}

impl fmt::Display for TlsRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsRefusal::UnknownIssuer => f.write_str("unknown issuer"),
            TlsRefusal::NameMismatch => f.write_str("name mismatch"),
            TlsRefusal::Expired => f.write_str("expired"),
            TlsRefusal::NotYetValid => f.write_str("not yet valid"),
            TlsRefusal::Revoked => f.write_str("revoked"),
            TlsRefusal::BadSignature => f.write_str("bad signature"),
            TlsRefusal::WrongPurpose => f.write_str("not a server certificate"),
            TlsRefusal::Alert(alert) => write!(f, "the server refused the handshake ({alert})"),
            TlsRefusal::NoTls => f.write_str("the server does not offer TLS"),
            TlsRefusal::Other(detail) => write!(f, "TLS failed ({detail})"),
        }
    }
}

impl TlsRefusal {
    /// What to check, for the error a person reads.
    fn hint(&self, link: Link) -> &'static str {
        let ca = match link {
            Link::RabbitMq => "the CA the AMQP URL's cacertfile names",
            Link::Postgres => "the CA DATABASE_URL's sslrootcert names",
            Link::Pusher => "PUSHER_CA_FILE",
        };
        match self {
            TlsRefusal::UnknownIssuer => ca,
            TlsRefusal::NameMismatch => {
                "the host name connected to against the names in the certificate"
            }
            TlsRefusal::Expired | TlsRefusal::NotYetValid => {
                "the server's certificate dates (and this machine's clock)"
            }
            TlsRefusal::Alert(_) => match link {
                Link::RabbitMq => {
                    "the client certificate the AMQP URL's certfile names, and the CAs the broker trusts"
                }
                Link::Postgres => {
                    "the client certificate DATABASE_URL's sslcert names, and the server's ssl_ca_file"
                }
                Link::Pusher => "the server's TLS settings",
            },
            _ => "the server's TLS settings",
        }
    }

    /// The reason behind a failed handshake.
    pub fn of(e: &rustls::Error) -> TlsRefusal {
        use rustls::Error as E;
        match e {
            E::InvalidCertificate(c) => match c {
                CertificateError::UnknownIssuer => TlsRefusal::UnknownIssuer,
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => TlsRefusal::NameMismatch,
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    TlsRefusal::Expired
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    TlsRefusal::NotYetValid
                }
                CertificateError::Revoked => TlsRefusal::Revoked,
                CertificateError::BadSignature => TlsRefusal::BadSignature,
                CertificateError::InvalidPurpose
                | CertificateError::InvalidPurposeContext { .. } => TlsRefusal::WrongPurpose,
                other => TlsRefusal::Other(format!("{other:?}")),
            },
            E::AlertReceived(alert) => TlsRefusal::Alert(format!("{alert:?}")),
            other => TlsRefusal::Other(other.to_string()),
        }
    }
}

/// Why a probe found no peer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No answer, or the connection dropped: an outage, not a setting.
    #[error("{link} at {address}: cannot connect ({detail})")]
    Unreachable {
        link: Link,
        address: String,
        detail: String,
    },
    /// The certificate (or the server's TLS) is not what the client
    /// accepts: a setting to fix.
    #[error("{link} at {address}: TLS certificate refused: {reason}; check {hint}")]
    Refused {
        link: Link,
        address: String,
        reason: TlsRefusal,
        hint: &'static str,
    },
}

impl ProbeError {
    /// Whether this is a setting to fix (stop at start) rather than an
    /// outage (wait it out).
    pub fn is_configuration(&self) -> bool {
        matches!(self, ProbeError::Refused { .. })
    }

    pub fn reason(&self) -> Option<&TlsRefusal> {
        match self {
            ProbeError::Refused { reason, .. } => Some(reason),
            ProbeError::Unreachable { .. } => None,
        }
    }
}

/// What a link turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// No TLS: the settings ask for none, or PostgreSQL's `prefer` met a
    /// server without it.
    Plain,
    Tls(Peer),
}

/// Connects to `endpoint` as its client does and completes a TLS
/// handshake, within `timeout` in all.
pub async fn probe(endpoint: &Endpoint, timeout: Duration) -> Result<State, ProbeError> {
    let address = endpoint.address();
    let unreachable = |detail: String| ProbeError::Unreachable {
        link: endpoint.link,
        address: address.clone(),
        detail,
    };
    match tokio::time::timeout(timeout, handshake(endpoint)).await {
        Err(_) => Err(unreachable(format!(
            "no TLS handshake within {}",
            humantime::format_duration(timeout)
        ))),
        Ok(Err(Failure::Io(e))) => Err(unreachable(e.to_string())),
        Ok(Err(Failure::Refused(reason))) => Err(ProbeError::Refused {
            link: endpoint.link,
            address,
            hint: reason.hint(endpoint.link),
            reason,
        }),
        Ok(Ok(state)) => Ok(state),
    }
}

enum Failure {
    Io(std::io::Error),
    Refused(TlsRefusal),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        // tokio-rustls reports a refused handshake as an io::Error carrying
        // the rustls error.
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(tls) => Failure::Refused(TlsRefusal::of(tls)),
            None => Failure::Io(e),
        }
    }
}

async fn handshake(endpoint: &Endpoint) -> Result<State, Failure> {
    let mut tcp = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port)).await?;
    if let Preamble::PostgresSslRequest { required } = endpoint.preamble {
        tcp.write_all(&SSL_REQUEST).await?;
        let mut answer = [0u8];
        tcp.read_exact(&mut answer).await?;
        match answer[0] {
            b'S' => {}
            b'N' if !required => return Ok(State::Plain),
            b'N' => return Err(Failure::Refused(TlsRefusal::NoTls)),
            other => {
                return Err(Failure::Io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("answered the SSLRequest with byte 0x{other:02x}, not S or N: is it PostgreSQL?"),
                )))
            }
        }
    }
    let connector = tokio_rustls::TlsConnector::from(endpoint.config.clone());
    let mut tls = connector.connect(endpoint.server_name.clone(), tcp).await?;
    let (_, conn) = tls.get_ref();
    let version = conn
        .protocol_version()
        .and_then(|v| v.as_str())
        .unwrap_or("TLS")
        .replace("TLSv1_", "TLSv1.");
    let peer = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or_else(|| Failure::Refused(TlsRefusal::Other("the server sent no certificate".into())))
        .and_then(|cert| {
            describe(cert, &version, endpoint.verify)
                .map_err(|e| Failure::Refused(TlsRefusal::Other(e)))
        });
    let peer = peer?;
    greet(&mut tls, endpoint).await?;
    // Best effort: the peer may close first.
    let _ = tls.shutdown().await;
    Ok(State::Tls(peer))
}

/// Under TLS 1.3 a server checks the client's certificate after the
/// client's side of the handshake is done, so a refusal comes as an alert
/// on the first read. Each protocol's server speaks or closes after a
/// message that starts nothing: the AMQP protocol header (the broker
/// answers connection.start), PostgreSQL's CancelRequest for no backend
/// (the server closes). Only a TLS error counts: the server's own goodbye
/// is not the probe's business.
async fn greet(
    tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    endpoint: &Endpoint,
) -> Result<(), Failure> {
    const AMQP_HEADER: [u8; 8] = *b"AMQP\x00\x00\x09\x01";
    // Length 16, code 80877102, process id 0, secret key 0.
    const CANCEL_REQUEST: [u8; 16] = [0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 0, 0, 0, 0, 0];
    let hello: &[u8] = match (endpoint.link, endpoint.preamble) {
        (_, Preamble::PostgresSslRequest { .. }) => &CANCEL_REQUEST,
        (Link::RabbitMq, _) => &AMQP_HEADER,
        _ => return Ok(()),
    };
    let mut answer = [0u8; 1];
    let result = match tls.write_all(hello).await {
        Ok(()) => tls.read(&mut answer).await.map(drop),
        Err(e) => Err(e),
    };
    match result.map_err(Failure::from) {
        Err(refused @ Failure::Refused(_)) => Err(refused),
        _ => Ok(()),
    }
}

/// The certificate's names and dates.
fn describe(cert: &CertificateDer<'_>, version: &str, verify: Verify) -> Result<Peer, String> {
    use x509_parser::extensions::GeneralName;
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| format!("cannot parse the server's certificate ({e})"))?;
    let common_name = |name: &x509_parser::x509::X509Name<'_>| {
        name.iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned)
    };
    let names: Vec<String> = x509
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some(dns.to_string()),
                    GeneralName::IPAddress(ip) => ip_text(ip),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Peer {
        version: version.to_owned(),
        subject: common_name(x509.subject())
            .or_else(|| names.first().cloned())
            .unwrap_or_default(),
        issuer: common_name(x509.issuer()).unwrap_or_default(),
        names,
        not_after: x509.validity().not_after.timestamp(),
        verified: verify.as_str(),
    })
}

fn ip_text(octets: &[u8]) -> Option<String> {
    match octets.len() {
        4 => <[u8; 4]>::try_from(octets)
            .ok()
            .map(|o| std::net::Ipv4Addr::from(o).to_string()),
        16 => <[u8; 16]>::try_from(octets)
            .ok()
            .map(|o| std::net::Ipv6Addr::from(o).to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_named_as_people_say_them() {
        let cert = |e| TlsRefusal::of(&rustls::Error::InvalidCertificate(e));
        assert_eq!(
            cert(CertificateError::UnknownIssuer).to_string(),
            "unknown issuer"
        );
        assert_eq!(
            cert(CertificateError::NotValidForName).to_string(),
            "name mismatch"
        );
        assert_eq!(cert(CertificateError::Expired).to_string(), "expired");
        assert_eq!(
            cert(CertificateError::NotValidYet).to_string(),
            "not yet valid"
        );
        assert_eq!(
            TlsRefusal::of(&rustls::Error::AlertReceived(
                rustls::AlertDescription::CertificateRequired
            ))
            .to_string(),
            "the server refused the handshake (CertificateRequired)"
        );
    }

    #[test]
    fn refusals_are_configuration_and_silence_is_an_outage() {
        let refused = ProbeError::Refused {
            link: Link::Postgres,
            address: "db:5432".into(),
            reason: TlsRefusal::Expired,
            hint: TlsRefusal::Expired.hint(Link::Postgres),
        };
        assert!(refused.is_configuration());
        assert_eq!(
            refused.to_string(),
            "PostgreSQL at db:5432: TLS certificate refused: expired; check the server's certificate dates (and this machine's clock)"
        );
        let silent = ProbeError::Unreachable {
            link: Link::Pusher,
            address: "api:443".into(),
            detail: "connection refused".into(),
        };
        assert!(!silent.is_configuration());
    }

    #[test]
    fn a_ca_file_without_certificates_is_named() {
        let mut roots = RootCertStore::empty();
        let e = add_pem(&mut roots, b"not a certificate", "/etc/ca.pem").unwrap_err();
        assert!(
            e.to_string()
                .contains("\"/etc/ca.pem\" holds no PEM certificate"),
            "{e}"
        );
    }

    #[test]
    fn server_names_take_ip_literals() {
        assert!(matches!(
            server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(server_name("[::1]"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(
            server_name("db.example"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(server_name("not a name").is_err());
    }

    #[test]
    fn days_left_count_from_now() {
        let peer = Peer {
            version: "TLSv1.3".into(),
            subject: "x".into(),
            names: vec![],
            issuer: "ca".into(),
            not_after: 86_400 * 10,
            verified: Verify::Full.as_str(),
        };
        assert_eq!(peer.days_left(UNIX_EPOCH), 10.0);
        assert_eq!(
            peer.days_left(UNIX_EPOCH + Duration::from_secs(86_400 * 11)),
            -1.0
        );
    }
}
