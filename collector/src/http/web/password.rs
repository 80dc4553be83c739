//! `POST /password`: a user changes their own password. The current one is
//! asked again (a session left open must not be enough to lock its owner
//! out); every session and token of the user ends, and a new session starts
//! for this browser. The first admin's forced change ends here too, and
//! deletes the initial password file (`incident::accounts`).

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use crate::audit::Outcome;
use crate::http::State;
use crate::http::web::{PageContext, failure, html, pages, start_session};
use crate::incident::accounts::{self, PasswordChangeError};
use crate::incident::auth::Principal;
use countywatch_daemon::clock::now_ms;

/// Handles the form (its CSRF token already checked).
pub fn change(
    state: &State,
    principal: &Principal,
    form: &HashMap<String, String>,
    context: &PageContext,
) -> Response<Full<Bytes>> {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let lang = context.lang;
    let refused = |key: &'static str, reason: &str| {
        audit(state, principal, Outcome::Failure, reason);
        let mut response = html(pages::password(context, Some(lang.text(key))));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        response
    };
    if field("new") != field("confirm") {
        return refused("password_mismatch", "the new passwords differ");
    }
    // The current password is checked with argon2 like a login, in memory
    // leased from the same bounded pool.
    let Some(mut memory) = state.limiter.lease_memory() else {
        let mut response = html(pages::password(context, Some(lang.text("password_busy"))));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return response;
    };
    match accounts::change_own_password(
        &state.store,
        &state.data_dir,
        &principal.user,
        field("current"),
        field("new"),
        &mut memory,
    ) {
        Ok(()) => {}
        Err(PasswordChangeError::WrongCurrentPassword) => {
            return refused("password_wrong", "wrong current password");
        }
        Err(PasswordChangeError::Unchanged) => {
            return refused("password_unchanged", "new password equals the current one");
        }
        Err(PasswordChangeError::BadLength) => {
            return refused("password_length", "new password too short or too long");
        }
        Err(PasswordChangeError::Store(error)) => return failure(context, &error),
    }
    audit(
        state,
        principal,
        Outcome::Success,
        "sessions and tokens revoked",
    );
    tracing::info!(user = principal.user, "password changed");
    // On to the overview, where a login lands too: after the first
    // login's forced change, that is the page that says whether the
    // agents are up and anything is wrong.
    start_session(state, &principal.user, now_ms(), "/")
        .unwrap_or_else(|error| failure(context, &error))
}

fn audit(state: &State, principal: &Principal, outcome: Outcome, details: &str) {
    if let Err(error) = state.store.audit(
        &principal.user,
        "user.password_changed",
        &format!("user/{}", principal.user),
        outcome,
        details,
    ) {
        tracing::error!("cannot audit a password change: {error:#}");
    }
}
