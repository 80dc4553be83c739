//! `/users` for admins: every user with their role and state, their API
//! tokens; and the one form that changes them (role, disable, enable,
//! reset password, revoke a token). Every change, done or refused, is
//! audited with the admin's name; the work is done by
//! [`crate::incident::accounts`].

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use maud::html;

use crate::audit::Outcome;
use crate::http::State;
use crate::http::request;
use crate::http::web::i18n;
use crate::http::web::pages::{csrf_field, layout, time_cell};
use crate::http::web::{PageContext, failure, html};
use crate::incident::accounts::{self, TokenRow, UserRow};
use crate::incident::auth::{Principal, Role};
use countywatch_daemon::clock::now_ms;

/// Serves the page (`done` in the query is the last change's outcome).
pub fn page(state: &State, context: &PageContext) -> Response<Full<Bytes>> {
    let listed = accounts::list_users(&state.store, now_ms())
        .and_then(|users| accounts::list_tokens(&state.store, None).map(|tokens| (users, tokens)));
    match listed {
        Ok((users, tokens)) => html(render(context, &users, &tokens)),
        Err(error) => failure(context, &error),
    }
}

fn render(context: &PageContext, users: &[UserRow], tokens: &[TokenRow]) -> maud::Markup {
    let lang = context.lang;
    let done = context.query.get("done").map(String::as_str);
    layout(
        context,
        lang.text("users"),
        html! {
            h1 { (lang.text("users")) }
            @match done {
                Some("ok") => p #notice { (lang.text("saved")) },
                Some(_) => p.error #notice { (lang.text("error")) },
                None => {},
            }
            table #users {
                thead { tr {
                    th { (lang.text("name")) } th { (lang.text("role")) } th { (lang.text("status")) }
                    th { (lang.text("created")) } th { (lang.text("tokens")) } th { (lang.text("actions")) }
                } }
                tbody {
                    @for user in users {
                        tr.user-row id={ "user-" (user.name) } {
                            td { (user.name) }
                            td {
                                form.inline method="post" action="/users" {
                                    (csrf_field(context))
                                    input type="hidden" name="user" value=(user.name);
                                    input type="hidden" name="action" value="role";
                                    select name="role" {
                                        @for role in Role::ALL {
                                            option value=(role.as_str()) selected[user.role == role.as_str()] { (i18n::role(lang, role)) }
                                        }
                                    }
                                    " " button type="submit" { (lang.text("saved_button")) }
                                }
                            }
                            td.time { @if user.disabled { (lang.text("disabled")) } @else { (lang.text("enabled")) } }
                            (time_cell(context, user.created_ms))
                            td.num { (user.tokens) }
                            td {
                                form.inline method="post" action="/users" {
                                    (csrf_field(context))
                                    input type="hidden" name="user" value=(user.name);
                                    @if user.disabled {
                                        button.enable type="submit" name="action" value="enable" { (lang.text("enable")) }
                                    } @else {
                                        button.disable type="submit" name="action" value="disable" { (lang.text("disable")) }
                                    }
                                }
                                form.inline method="post" action="/users" {
                                    (csrf_field(context))
                                    input type="hidden" name="user" value=(user.name);
                                    input type="hidden" name="action" value="reset";
                                    input type="password" name="password" minlength="12" maxlength="1024" required
                                        autocomplete="new-password" placeholder=(lang.text("new_password_short"))
                                        title=(lang.text("reset_password_hint"));
                                    " " button.reset type="submit" { (lang.text("reset_password")) }
                                }
                            }
                        }
                    }
                }
            }
            h2 { (lang.text("tokens")) }
            @if tokens.is_empty() { p { (lang.text("nothing")) } }
            @else {
                table #tokens {
                    thead { tr { th { "#" } th { (lang.text("user")) } th { (lang.text("label")) } th { (lang.text("created")) } th { (lang.text("expires")) } th {} } }
                    tbody {
                        @for token in tokens {
                            tr {
                                td.num { (token.id) }
                                td { (token.user) }
                                td { (token.label) }
                                (time_cell(context, token.created_ms))
                                @match token.expires_ms {
                                    Some(expires) => (time_cell(context, expires)),
                                    None => td { (lang.text("never")) },
                                }
                                td {
                                    form.inline method="post" action="/users" {
                                        (csrf_field(context))
                                        input type="hidden" name="action" value="revoke_token";
                                        input type="hidden" name="token" value=(token.id);
                                        button type="submit" { (lang.text("revoke")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// Applies one change from the form (its CSRF token already checked),
/// audits it, and returns to the page with the outcome.
pub fn change(
    state: &State,
    principal: &Principal,
    form: &HashMap<String, String>,
) -> Response<Full<Bytes>> {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("").trim();
    let user = field("user");
    let (action, target, result) = match field("action") {
        "role" => match Role::parse(field("role")) {
            Some(role) => (
                "user.role_changed",
                format!("user/{user}"),
                accounts::set_role(&state.store, user, role)
                    .map(|found| found.then(|| format!("role {}", role.as_str()))),
            ),
            None => ("user.role_changed", format!("user/{user}"), Ok(None)),
        },
        "disable" | "enable" => {
            let disable = field("action") == "disable";
            (
                if disable {
                    "user.disabled"
                } else {
                    "user.enabled"
                },
                format!("user/{user}"),
                // An admin cannot lock themselves out from the page.
                if disable && user == principal.user {
                    Ok(None)
                } else {
                    accounts::set_disabled(&state.store, user, disable)
                        .map(|found| found.then(String::new))
                },
            )
        }
        "reset" => (
            "user.password_reset",
            format!("user/{user}"),
            accounts::reset_password(
                &state.store,
                user,
                form.get("password").map_or("", String::as_str),
            )
            .map(|found| found.then(|| "must change it at next login".to_string())),
        ),
        "revoke_token" => {
            let id = field("token").parse::<i64>().unwrap_or(0);
            (
                "token.revoked",
                format!("token/{id}"),
                accounts::revoke_token(&state.store, id)
                    .map(|owner| owner.map(|owner| format!("of user {owner}"))),
            )
        }
        _ => ("user.changed", format!("user/{user}"), Ok(None)),
    };
    let (outcome, details, done) = match &result {
        Ok(Some(details)) => (Outcome::Success, details.clone(), "ok"),
        Ok(None) => (
            Outcome::Failure,
            "no such user or token, or not allowed".to_string(),
            "refused",
        ),
        Err(error) => (Outcome::Failure, format!("{error:#}"), "refused"),
    };
    if let Err(error) = state
        .store
        .audit(&principal.user, action, &target, outcome, &details)
    {
        tracing::error!("cannot audit a user change: {error:#}");
    }
    request::redirect(&format!("/users?done={done}"))
}
