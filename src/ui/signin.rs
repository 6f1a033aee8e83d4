//! Signing in and out: the admin token, posted once, becomes a session
//! cookie ([`super::cookies`]). The sign-in form has no session to carry its
//! CSRF token, so the token rides in a short-lived cookie of its own and the
//! form posts it back (double submit).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;

use super::{cookies, html, pages, ConsoleState, Fields, Signed};

/// Behind a TLS-terminating proxy the cookie must be `Secure`.
pub(super) fn behind_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// The sign-in form; its CSRF token rides in a short-lived cookie, since
/// there is no session yet to hold it.
pub async fn login_page(headers: HeaderMap) -> Response {
    login_form(&headers, StatusCode::OK, None)
}

fn login_form(headers: &HeaderMap, status: StatusCode, error: Option<&str>) -> Response {
    // The browser's token, when it has one: a second sign-in tab (or a
    // reload) must not invalidate the form of the first.
    let csrf = login_cookie(headers)
        .filter(|c| c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(String::from)
        .unwrap_or_else(cookies::random_token);
    let mut resp = html(status, pages::login(&csrf, error));
    let cookie = cookies::set_cookie(
        cookies::LOGIN_COOKIE,
        &csrf,
        behind_tls(headers),
        Some(std::time::Duration::from_secs(3600)),
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

fn login_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| {
            cookies::cookie(
                c,
                &cookies::cookie_name(cookies::LOGIN_COOKIE, behind_tls(headers)),
            )
        })
}

pub async fn login(
    State(state): State<ConsoleState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = Fields::parse(&body);
    let cookie_csrf = login_cookie(&headers).unwrap_or("");
    if !cookies::same(fields.get("csrf").unwrap_or(""), cookie_csrf) {
        return (
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token: reload the sign-in page\n",
        )
            .into_response();
    }
    let check = crate::admin_token::FAILED_ATTEMPTS.check(
        &state.token,
        fields.get("token").unwrap_or(""),
        crate::admin_token::peer(&extensions),
    );
    if let crate::admin_token::TokenCheck::Throttled(wait) = check {
        return crate::admin_token::throttled(wait);
    }
    if check != crate::admin_token::TokenCheck::Right {
        tracing::warn!("ops console: sign-in with a wrong token");
        return login_form(&headers, StatusCode::UNAUTHORIZED, Some("Wrong token."));
    }
    let id = state.sessions.start();
    let secure = behind_tls(&headers);
    let mut resp = Redirect::to("/ui").into_response();
    for c in [
        cookies::set_cookie(cookies::COOKIE, &id, secure, None),
        cookies::set_cookie(
            cookies::LOGIN_COOKIE,
            "",
            secure,
            Some(std::time::Duration::ZERO),
        ),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

pub async fn logout(
    State(state): State<ConsoleState>,
    Extension(signed): Extension<Signed>,
    headers: HeaderMap,
) -> Response {
    state.sessions.end(&signed.id);
    let mut resp = Redirect::to("/ui/login").into_response();
    let c = cookies::set_cookie(
        cookies::COOKIE,
        "",
        behind_tls(&headers),
        Some(std::time::Duration::ZERO),
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}
