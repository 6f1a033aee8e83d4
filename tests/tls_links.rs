//! TLS on the worker's links, against endpoints the tests make: a CA of
//! their own (tests/common/tls.rs), the fake Pusher behind a TLS terminator.

mod common;

use common::tls::{Ca, TlsTerminator};
use common::FakePusher;

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
