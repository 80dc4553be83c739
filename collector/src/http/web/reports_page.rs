//! `/reports`: the county report on the console, for security officers and
//! admins: a month (last month by default) and a department to choose, the
//! report's sections in the page, and downloads of the same report as the
//! self-contained HTML file, JSON, or one CSV section
//! (`/reports/report.html|json|csv`). The figures come from
//! `report::build`, exactly as `countywatch-collector report` writes them.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use maud::html;

use crate::http::State;
use crate::http::request;
use crate::http::routes::Endpoint;
use crate::http::web::i18n::Lang;
use crate::http::web::list_parts::attachment;
use crate::http::web::pages::layout;
use crate::http::web::{PageContext, failure};
use crate::report::gather::{Range, Sources, gather};
use crate::report::texts::Texts;
use countywatch_daemon::clock::now_ms;
use countywatch_notify::display::Language;

/// The CSV sections a download may ask for.
const SECTIONS: &[&str] = &[
    "departments",
    "services",
    "hosts",
    "devices",
    "outages",
    "certificates",
    "security",
    "incidents_by",
    "compliance",
];

/// Serves the page or a download.
pub fn serve(state: &State, context: &PageContext, endpoint: Endpoint) -> Response<Full<Bytes>> {
    let now = now_ms();
    let display = &state.display;
    let month = context
        .query
        .get("month")
        .filter(|month| !month.is_empty())
        .cloned()
        .unwrap_or_else(|| last_month(display, now));
    let department = context
        .query
        .get("department")
        .map(|department| department.trim().to_string())
        .filter(|department| !department.is_empty());
    let range = match Range::month(&month) {
        Ok(range) => range,
        Err(error) => {
            return request::respond(
                StatusCode::BAD_REQUEST,
                "text/plain; charset=utf-8",
                format!("{error}\n"),
            );
        }
    };
    let language = match context.lang {
        Lang::Zh => Language::Zh,
        Lang::En => Language::En,
    };
    let sources = Sources {
        data_dir: &state.data_dir,
        store: &state.store,
        registry: &state.registry,
        silent_after: state.silent_after,
    };
    let report = gather(&sources, display, &range, department.as_deref(), now)
        .map(|inputs| crate::report::build(&inputs, display, language));
    let report = match report {
        Ok(report) => report,
        Err(error) => return failure(context, &error),
    };
    let texts = Texts::new(language);
    let name = format!("county-report-{month}");
    match endpoint {
        Endpoint::ReportDownload => {
            let (content_type, extension, body) = if context.path.ends_with(".html") {
                (
                    "text/html; charset=utf-8",
                    "html",
                    crate::report::html::render(&report, &texts),
                )
            } else if context.path.ends_with(".csv") {
                let wanted = context
                    .query
                    .get("section")
                    .map(String::as_str)
                    .unwrap_or("services");
                let section = crate::report::csv::sections(&report, &texts)
                    .into_iter()
                    .find(|(file, _)| file.strip_suffix(".csv") == Some(wanted));
                let Some((_, body)) = section else {
                    return request::respond(
                        StatusCode::NOT_FOUND,
                        "text/plain; charset=utf-8",
                        "no such section\n",
                    );
                };
                ("text/csv; charset=utf-8", "csv", body)
            } else {
                match serde_json::to_string_pretty(&report) {
                    Ok(body) => ("application/json", "json", body),
                    Err(error) => return failure(context, &error.into()),
                }
            };
            attachment(content_type, &format!("{name}.{extension}"), body)
        }
        _ => {
            let query = |extra: &str| {
                let mut serializer = form_urlencoded::Serializer::new(String::new());
                serializer.append_pair("month", &month);
                if let Some(department) = &department {
                    serializer.append_pair("department", department);
                }
                format!("{}{extra}", serializer.finish())
            };
            let body = html! {
                form.filters method="get" action="/reports" {
                    label { (texts.word("period")) " "
                        input type="month" name="month" value=(month); }
                    " "
                    label { (texts.word("department")) " "
                        input type="text" name="department"
                            value=(department.clone().unwrap_or_default()); }
                    " "
                    button type="submit" { "OK" }
                }
                p.downloads {
                    a href=(format!("/reports/report.html?{}", query(""))) { "HTML" }
                    " · "
                    a href=(format!("/reports/report.json?{}", query(""))) { "JSON" }
                    @for section in SECTIONS {
                        " · "
                        a href=(format!("/reports/report.csv?{}", query(&format!("&section={section}")))) {
                            (section) ".csv"
                        }
                    }
                }
                (crate::report::html::sections(&report, &texts))
            };
            super::html(layout(context, texts.word("title"), body))
        }
    }
}

/// `YYYY-MM` of the month before the one holding `now_ms`, local time.
fn last_month(display: &countywatch_notify::display::Display, now_ms: i64) -> String {
    use jiff::ToSpan;
    jiff::Timestamp::from_millisecond(now_ms)
        .ok()
        .map(|now| now.to_zoned(display.zone().clone()).date())
        .and_then(|today| today.first_of_month().checked_sub(1.month()).ok())
        .map(|month| month.strftime("%Y-%m").to_string())
        .unwrap_or_else(|| "1970-01".to_string())
}
