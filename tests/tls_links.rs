//! TLS on the worker's links, against endpoints the tests make: a CA of
//! their own (tests/common/tls.rs), the fake Pusher behind a TLS terminator.

mod common;

use common::tls::{Ca, TlsTerminator};
use common::{config_for, FakePusher};

/// The fixture itself: a client trusting the test's CA reaches the fake
/// Pusher through the terminator; one trusting another CA does not.
#[tokio::test]
async fn the_test_ca_is_what_a_client_verifies() {
    let (_fake, server) = FakePusher::start().await;
    let ca = Ca::new("tls-links test CA");
    let cert = ca.server(&["127.0.0.1"]);
    let front = TlsTerminator::with_cert(*server.address(), &cert, &ca).await;
    let url = format!("https://127.0.0.1:{}/apps/x/channels", front.port);
    let client = |ca: &Ca| {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem.as_bytes()).unwrap())
            .build()
            .unwrap()
    };
    let answer = client(&ca)
        .get(&url)
        .send()
        .await
        .expect("TLS to the test CA's certificate");
    // Unsigned, so the fake answers 404: what matters is that it answered.
    assert_eq!(answer.status(), 404);
    let other = Ca::new("another CA");
    let refused = client(&other).get(&url).send().await;
    assert!(
        refused.is_err(),
        "a client trusting another CA must refuse: {refused:?}"
    );
}

/// The Pusher client trusts PUSHER_CA_FILE besides the system store, and
/// with PUSHER_VERIFY_SSL=false trusts any certificate.
#[tokio::test]
async fn the_pusher_client_trusts_its_ca_file() {
    let (_fake, server) = FakePusher::start().await;
    let ca = Ca::new("pusher CA");
    let front = TlsTerminator::with_cert(*server.address(), &ca.server(&["127.0.0.1"]), &ca).await;
    let uri = format!("https://127.0.0.1:{}", front.port);
    let ca_file = ca.cert_file.display().to_string();
    let client = |extra: &[(&str, &str)]| {
        pusher_relay::pusher::Client::new(&config_for(&uri, extra).pusher).expect("a client")
    };
    client(&[("PUSHER_CA_FILE", &ca_file)])
        .channels(None, &[])
        .await
        .expect("a signed request over TLS to the CA's server");
    let refused = client(&[]).channels(None, &[]).await.unwrap_err();
    assert!(
        refused.to_string().contains("UnknownIssuer"),
        "without the CA the system store refuses: {refused}"
    );
    client(&[("PUSHER_VERIFY_SSL", "false")])
        .channels(None, &[])
        .await
        .expect("PUSHER_VERIFY_SSL=false accepts the certificate");
}
