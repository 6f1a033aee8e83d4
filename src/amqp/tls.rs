//! TLS for `amqps://` URLs, set the way RabbitMQ's own URI specification
//! sets it: query parameters of each address in `AMQP_URL`.
//!
//! - `cacertfile`: a PEM file of CAs trusted besides the system store
//!   (which already holds Amazon MQ's and CloudAMQP's public CAs);
//! - `certfile` and `keyfile`: a client certificate and its key, for a
//!   broker that demands one (`ssl_options.fail_if_no_peer_cert`, or the
//!   `EXTERNAL` mechanism with `auth_mechanism=external`);
//! - `verify`: `verify_peer` (the default here) or `verify_none`. Erlang's
//!   client defaults to `verify_none`; a worker holding the app's events
//!   and the broker's password verifies unless told otherwise, and warns
//!   at start when told;
//! - `server_name_indication`: the name sent in SNI and checked in the
//!   certificate when it differs from the host connected to (a broker
//!   reached through an IP or a tunnel), or `disable` to send none (the
//!   certificate is then checked against the host).
//!
//! The same [`Endpoint`] serves the connection ([`connect`]) and the
//! start-time probe (`link_probes`), so the probe refuses exactly what the
//! connection would. lapin's own `amqps` support takes neither PEM client
//! certificates nor these parameters, so the TLS session is made here and
//! lapin speaks AMQP through the guard in front of it.

use std::path::Path;
use std::sync::Arc;

use crate::tls::{self, Endpoint, Link, Preamble, TlsError, Verify};

/// RabbitMQ's default TLS port.
pub const AMQPS_PORT: u16 = 5671;

/// Why an `amqps://` address's TLS parameters cannot be used; each names
/// the parameter and the address (without its password).
#[derive(Debug, thiserror::Error)]
pub enum AmqpTlsError {
    #[error("{url}: {param}={value:?} is not one of verify_peer, verify_none")]
    Verify {
        url: String,
        param: &'static str,
        value: String,
    },
    #[error("{url}: {source}")]
    Tls { url: String, source: TlsError },
    #[error("{url}: not an AMQP URL ({detail})")]
    Url { url: String, detail: String },
}

/// The TLS endpoint of one broker address: `None` for `amqp://`.
pub fn endpoint(url: &str) -> Result<Option<Endpoint>, AmqpTlsError> {
    let shown = crate::config::redact_url(url);
    let parsed = url::Url::parse(url).map_err(|e| AmqpTlsError::Url {
        url: shown.clone(),
        detail: e.to_string(),
    })?;
    if !parsed.scheme().eq_ignore_ascii_case("amqps") {
        return Ok(None);
    }
    let tls_err = |source: TlsError| AmqpTlsError::Tls {
        url: shown.clone(),
        source,
    };
    let param = |name: &str| {
        parsed
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .filter(|v| !v.is_empty())
    };
    let verify = match param("verify").as_deref() {
        None | Some("verify_peer") => Verify::Full,
        Some("verify_none") => Verify::Nothing,
        Some(other) => {
            return Err(AmqpTlsError::Verify {
                url: shown,
                param: "verify",
                value: other.into(),
            })
        }
    };
    let mut roots = rustls::RootCertStore::empty();
    if verify == Verify::Full {
        roots = tls::system_roots();
        if let Some(ca) = param("cacertfile") {
            tls::add_pem_file(&mut roots, Path::new(&ca)).map_err(tls_err)?;
        }
    }
    let pair = tls::both_or_neither(param("certfile"), param("keyfile"), ("certfile", "keyfile"))
        .map_err(tls_err)?;
    let identity = match pair {
        Some((cert, key)) => {
            let read = |path: &str, what: &'static str| {
                std::fs::read(path).map_err(|e| {
                    tls_err(TlsError::ReadClient {
                        what,
                        path: path.into(),
                        detail: e.to_string(),
                    })
                })
            };
            let (cert_pem, key_pem) = (read(&cert, "certificate")?, read(&key, "key")?);
            Some(tls::client_identity(&cert_pem, &key_pem, &cert, &key).map_err(tls_err)?)
        }
        None => None,
    };
    let host = parsed
        .host_str()
        .unwrap_or("localhost")
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let mut config = tls::client_config(roots, verify, identity).map_err(tls_err)?;
    let name = match param("server_name_indication").as_deref() {
        Some("disable") => {
            config.enable_sni = false;
            host.clone()
        }
        Some(name) => name.to_owned(),
        None => host.clone(),
    };
    Ok(Some(Endpoint {
        link: Link::RabbitMq,
        server_name: tls::server_name(&name).map_err(tls_err)?,
        port: parsed.port().unwrap_or(AMQPS_PORT),
        host,
        config: Arc::new(config),
        verify,
        preamble: Preamble::None,
    }))
}

/// TLS over `tcp` as `endpoint` says.
pub async fn connect(
    tcp: tokio::net::TcpStream,
    endpoint: &Endpoint,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    tokio_rustls::TlsConnector::from(endpoint.config.clone())
        .connect(endpoint.server_name.clone(), tcp)
        .await
        .map_err(|e| format!("TLS handshake failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_urls_have_no_endpoint() {
        assert!(endpoint("amqp://guest:guest@127.0.0.1:5672/%2f")
            .expect("valid")
            .is_none());
    }

    #[test]
    fn amqps_defaults_to_5671_verified_with_sni() {
        let e = endpoint("amqps://u:p@b-1.mq.eu-west-1.amazonaws.com/%2f")
            .expect("valid")
            .expect("TLS");
        assert_eq!(e.port, 5671);
        assert_eq!(e.verify, Verify::Full);
        assert!(e.config.enable_sni);
        assert_eq!(
            format!("{:?}", e.server_name),
            "DnsName(\"b-1.mq.eu-west-1.amazonaws.com\")"
        );
    }

    #[test]
    fn server_name_indication_names_the_certificate_or_turns_sni_off() {
        let named =
            endpoint("amqps://u:p@10.0.0.5:5671/%2f?server_name_indication=rabbit.internal")
                .expect("valid")
                .expect("TLS");
        assert_eq!(named.host, "10.0.0.5");
        assert_eq!(
            format!("{:?}", named.server_name),
            "DnsName(\"rabbit.internal\")"
        );
        let off = endpoint("amqps://u:p@rabbit:5671/%2f?server_name_indication=disable")
            .expect("valid")
            .expect("TLS");
        assert!(!off.config.enable_sni);
    }

    #[test]
    fn verify_none_is_accepted_and_anything_else_named() {
        let none = endpoint("amqps://u:p@rabbit/%2f?verify=verify_none")
            .expect("valid")
            .expect("TLS");
        assert_eq!(none.verify, Verify::Nothing);
        let e = endpoint("amqps://u:secret@rabbit/%2f?verify=yes").expect_err("refused");
        let text = e.to_string();
        assert!(
            text.contains("verify=\"yes\"") && text.contains("verify_peer"),
            "{text}"
        );
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn files_that_cannot_be_read_are_named() {
        let e =
            endpoint("amqps://u:p@rabbit/%2f?cacertfile=/nonexistent/ca.pem").expect_err("refused");
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let e = endpoint("amqps://u:p@rabbit/%2f?certfile=/tmp/c.pem").expect_err("refused");
        assert!(
            e.to_string().contains("certfile is set without keyfile"),
            "{e}"
        );
    }
}
