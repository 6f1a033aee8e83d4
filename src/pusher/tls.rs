//! How the Pusher client trusts its server: the system trust store (or
//! `SSL_CERT_FILE` / `SSL_CERT_DIR`), plus `PUSHER_CA_FILE` for a
//! self-hosted server behind an internal CA; nothing with
//! `PUSHER_VERIFY_SSL=false`. The HTTP client and the start-time probe
//! ([`endpoint`]) are built from this one configuration, so the probe
//! refuses exactly what the client would.

use std::sync::Arc;

use crate::config::{PusherConfig, Scheme};
use crate::tls::{self, Endpoint, Link, Preamble, TlsError, Verify};

/// The rustls client configuration of requests to Pusher.
pub fn client_config(cfg: &PusherConfig) -> Result<rustls::ClientConfig, TlsError> {
    if !cfg.verify_ssl {
        return tls::client_config(rustls::RootCertStore::empty(), Verify::Nothing, None);
    }
    let mut roots = tls::system_roots();
    if let Some(path) = &cfg.ca_file {
        tls::add_pem_file(&mut roots, path)?;
    }
    tls::client_config(roots, Verify::Full, None)
}

/// Where requests go and how they are verified, or `None` over plain http.
pub fn endpoint(cfg: &PusherConfig) -> Result<Option<Endpoint>, TlsError> {
    if cfg.effective_scheme() != Scheme::Https {
        return Ok(None);
    }
    let host = cfg.effective_host();
    Ok(Some(Endpoint {
        link: Link::Pusher,
        server_name: tls::server_name(&host)?,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port: cfg.effective_port(),
        config: Arc::new(client_config(cfg)?),
        verify: if cfg.verify_ssl {
            Verify::Full
        } else {
            Verify::Nothing
        },
        preamble: Preamble::None,
    }))
}
