//! Cross-site request forgery protection. Session cookies are
//! SameSite=Strict already; on top of that every state-changing request made
//! with a session must carry the session's CSRF token: in the `csrf` field
//! of a form, or the `X-CSRF-Token` header for the API. The login form has
//! no session yet, so it uses a double-submit cookie. Bearer-token requests
//! need none: a browser never attaches a bearer token by itself.

use std::collections::HashMap;

use crate::http::request::{LOGIN_CSRF_COOKIE, same_secret};
use crate::incident::auth::Principal;

/// The form field carrying the token.
pub const FIELD: &str = "csrf";
/// The API header carrying the token.
pub const HEADER: &str = "x-csrf-token";

/// Whether a state-changing request by `principal` carries its token
/// (`submitted`: the form field or header). Bearer principals pass.
pub fn valid(principal: &Principal, submitted: Option<&str>) -> bool {
    match (&principal.csrf, submitted) {
        (None, _) => true,
        (Some(expected), Some(submitted)) => same_secret(expected, submitted),
        (Some(_), None) => false,
    }
}

/// A fresh token for the login form (also set as a cookie).
pub fn login_token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Whether the login form's token matches its cookie.
pub fn login_valid(cookies: &HashMap<String, String>, form: &HashMap<String, String>) -> bool {
    match (cookies.get(LOGIN_CSRF_COOKIE), form.get(FIELD)) {
        (Some(cookie), Some(field)) => !cookie.is_empty() && same_secret(cookie, field),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::auth::Role;

    #[test]
    fn session_requests_need_their_own_token() {
        let session = Principal {
            user: "alice".to_string(),
            role: Role::Viewer,
            must_change_password: false,
            csrf: Some("abc".to_string()),
        };
        assert!(valid(&session, Some("abc")));
        assert!(!valid(&session, Some("abd")));
        assert!(!valid(&session, None));
        let bearer = Principal {
            csrf: None,
            must_change_password: false,
            ..session
        };
        assert!(valid(&bearer, None));
        let cookies = HashMap::from([(LOGIN_CSRF_COOKIE.to_string(), "t".to_string())]);
        assert!(login_valid(
            &cookies,
            &HashMap::from([(FIELD.to_string(), "t".to_string())])
        ));
        assert!(!login_valid(&cookies, &HashMap::new()));
    }
}
