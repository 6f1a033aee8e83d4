//! TLS endpoints made by the tests themselves: a certificate authority of
//! the test's own that issues server and client certificates (rcgen, with
//! ring as everything else here), written as PEM files into a directory
//! removed on drop; and a TLS terminator (tokio-rustls) in front of a plain
//! TCP service, so that the fake Pusher (wiremock, plain HTTP) or a broker's
//! plain port is reached over TLS with a certificate the test chose.
//!
//! A certificate is current (valid from yesterday for [`VALID_DAYS`] days),
//! expired (ended yesterday) or not yet valid, so the tests can present
//! each failure a client must name.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use super::unique;

/// How long a current certificate is valid from now, in days: the expiry
/// gauge of a link using one reads a day less or this.
pub const VALID_DAYS: i64 = 30;

/// When a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// From yesterday for [`VALID_DAYS`] days.
    Current,
    /// Ended yesterday.
    Expired,
}

impl Validity {
    fn apply(self, params: &mut CertificateParams) {
        let now = OffsetDateTime::now_utc();
        let (from, to) = match self {
            Validity::Current => (now - Duration::days(1), now + Duration::days(VALID_DAYS)),
            Validity::Expired => (now - Duration::days(60), now - Duration::days(1)),
        };
        params.not_before = from;
        params.not_after = to;
    }
}

/// A directory of PEM files, removed with everything in it when dropped.
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(prefix: &str) -> Dir {
        let path = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&path).expect("a temporary directory");
        Dir(path)
    }

    /// Writes `text` to `name` in this directory, readable by its owner
    /// only (PostgreSQL refuses a key file others can read).
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write a PEM file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .expect("chmod a PEM file");
        path
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A certificate and its key, as PEM files (in the issuing CA's directory)
/// and as DER for a rustls server.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Issued {
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// A certificate authority of the test's own.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
    pub cert_der: CertificateDer<'static>,
    /// `ca.pem`, the CA's certificate: what a client is told to trust.
    pub cert_file: PathBuf,
    pub dir: Dir,
    issued: std::sync::atomic::AtomicUsize,
}

impl Ca {
    /// A new CA named `name` (its certificate's common name), valid now.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        Validity::Current.apply(&mut params);
        let key = KeyPair::generate().expect("a CA key");
        let cert = params.self_signed(&key).expect("a self-signed CA");
        let dir = Dir::new("tls");
        let cert_pem = cert.pem();
        let cert_file = dir.write("ca.pem", &cert_pem);
        Ca {
            issuer: Issuer::new(params, key),
            cert_pem,
            cert_der: cert.der().clone(),
            cert_file,
            dir,
            issued: Default::default(),
        }
    }

    /// A current server certificate for `names` (DNS names or IP
    /// addresses, e.g. `["127.0.0.1", "localhost"]`).
    pub fn server(&self, names: &[&str]) -> Issued {
        self.server_with(names, Validity::Current)
    }

    /// A server certificate for `names`, valid as `validity` says.
    pub fn server_with(&self, names: &[&str], validity: Validity) -> Issued {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("server params");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        validity.apply(&mut params);
        self.issue(params, "server")
    }

    /// A current client certificate whose common name is `user` (what
    /// PostgreSQL's `cert` authentication maps to the role).
    pub fn client(&self, user: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, user);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        Validity::Current.apply(&mut params);
        self.issue(params, "client")
    }

    fn issue(&self, params: CertificateParams, kind: &str) -> Issued {
        let n = self
            .issued
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = KeyPair::generate().expect("a key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("a signed certificate");
        let cert_pem = cert.pem();
        let key_pem = key.serialize_pem();
        Issued {
            cert_file: self.dir.write(&format!("{kind}-{n}.pem"), &cert_pem),
            key_file: self.dir.write(&format!("{kind}-{n}.key"), &key_pem),
            cert_pem,
            key_pem,
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    /// A root store trusting this CA only.
    pub fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.cert_der.clone())
            .expect("the CA certificate");
        roots
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls server configuration presenting `cert` (with its CA behind it
/// in the chain), asking for a client certificate of `client_ca` when given.
pub fn server_config(cert: &Issued, ca: &Ca, client_ca: Option<&Ca>) -> rustls::ServerConfig {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("TLS versions");
    let builder = match client_ca {
        Some(client_ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(client_ca.roots()),
                provider(),
            )
            .build()
            .expect("a client verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder
        .with_single_cert(
            vec![cert.cert_der.clone(), ca.cert_der.clone()],
            cert.key_der(),
        )
        .expect("the server certificate and key")
}

/// A TLS listener on a free loopback port that hands each connection's
/// plaintext to `target`, as a TLS proxy in front of a service would. It
/// stops accepting when dropped.
pub struct TlsTerminator {
    pub port: u16,
    accept: tokio::task::JoinHandle<()>,
}

impl TlsTerminator {
    /// Terminates TLS with `config` in front of `target`.
    pub async fn start(target: SocketAddr, config: rustls::ServerConfig) -> TlsTerminator {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the TLS terminator");
        let port = listener.local_addr().expect("its address").port();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends here: that
                    // is what the tests make happen.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    if let Ok(mut plain) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    }
                });
            }
        });
        TlsTerminator { port, accept }
    }

    /// Terminates TLS with `cert`, issued by `ca`, in front of `target`.
    pub async fn with_cert(target: SocketAddr, cert: &Issued, ca: &Ca) -> TlsTerminator {
        TlsTerminator::start(target, server_config(cert, ca, None)).await
    }
}

impl Drop for TlsTerminator {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
