//! The pieces the filtered lists of `/events` and `/audit` share: the time
//! range select, links that keep the filters, and export downloads.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use maud::{Markup, html};

use crate::http::request;
use crate::http::web::PageContext;
use countywatch_daemon::clock::now_ms;

/// A time range a list can be limited to: query value, text key, length
/// in milliseconds.
pub type TimeRange = (&'static str, &'static str, i64);

/// Where the chosen `range` starts, if one is chosen.
pub fn range_since(context: &PageContext, ranges: &[TimeRange]) -> Option<i64> {
    context
        .query
        .get("range")
        .and_then(|range| ranges.iter().find(|(value, _, _)| value == range))
        .map(|(_, _, length)| now_ms().saturating_sub(*length))
}

/// The `range` select, the chosen one selected.
pub fn range_select(context: &PageContext, ranges: &[TimeRange]) -> Markup {
    let lang = context.lang;
    let chosen = context.query.get("range").map_or("", String::as_str);
    html! {
        label { (lang.text("time")) " "
            select name="range" {
                option value="" { (lang.text("any")) }
                @for (code, key, _) in ranges {
                    option value=(code) selected[chosen == *code] { (lang.text(key)) }
                }
            }
        }
    }
}

/// `base?` with the query's `names` that are set, then `extra`.
pub fn list_link(
    context: &PageContext,
    base: &str,
    names: &[&str],
    extra: Option<(&str, String)>,
) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for name in names {
        if let Some(value) = context.query.get(*name).filter(|value| !value.is_empty()) {
            serializer.append_pair(name, value);
        }
    }
    if let Some((name, value)) = extra {
        serializer.append_pair(name, &value);
    }
    format!("{base}?{}", serializer.finish())
}

/// A download named `<name>.csv` or `<name>.json`.
pub fn download(csv: bool, name: &str, body: String) -> Response<Full<Bytes>> {
    let (content_type, extension) = if csv {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/json", "json")
    };
    attachment(content_type, &format!("{name}.{extension}"), body)
}

/// A download of `content_type` saved as `file_name`.
pub fn attachment(
    content_type: &'static str,
    file_name: &str,
    body: String,
) -> Response<Full<Bytes>> {
    let mut response = request::respond(StatusCode::OK, content_type, body);
    request::add_header(
        &mut response,
        "content-disposition",
        &format!("attachment; filename=\"{file_name}\""),
    );
    response
}
