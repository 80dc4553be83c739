//! `report.schedule`: on the 1st of each month (local time) the collector
//! mails last month's report, as its self-contained HTML attached, through
//! the email settings of a `notify` receiver. The month last sent is kept
//! in `<data_dir>/report-schedule.state`, so a restart on the 1st does not
//! send it twice; a failed send is tried again every ten minutes that day.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::ToSpan;
use tokio::sync::watch;

use super::gather::{Range, Sources, gather};
use super::texts::Texts;
use crate::history::History;
use crate::incident::store::IncidentStore;
use crate::registry::Registry;
use countywatch_daemon::clock::now_ms;
use countywatch_notify::display::Display;
use countywatch_notify::receiver::email::Email;

/// What the scheduled mail needs.
pub struct Schedule {
    /// The receiver's email integrations.
    pub emails: Vec<Email>,
    /// The zone and language of the report.
    pub display: Display,
    /// The data directory (history, state file).
    pub data_dir: PathBuf,
    /// The incident store.
    pub store: Arc<IncidentStore>,
    /// The registry.
    pub registry: Arc<Registry>,
    /// The history, written up to the hour before sending.
    pub history: Arc<History>,
    /// `agents.silent_after`.
    pub silent_after: Duration,
}

/// How often the clock is looked at.
const TICK: Duration = Duration::from_secs(5);
/// How long after a failed send the next try waits.
const RETRY: Duration = Duration::from_secs(600);

/// Sends each month's report once, on the 1st, until `stopped`.
pub async fn run(schedule: Arc<Schedule>, mut stopped: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_try = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = ticker.tick() => {}
        }
        if tokio::time::Instant::now() < next_try {
            continue;
        }
        let Some(month) = due_month(&schedule) else {
            continue;
        };
        let Ok(built) = tokio::task::spawn_blocking({
            let schedule = Arc::clone(&schedule);
            let month = month.clone();
            move || render(&schedule, &month)
        })
        .await
        else {
            continue;
        };
        let (subject, text, html) = match built {
            Ok(built) => built,
            Err(error) => {
                tracing::error!(%month, "cannot build the monthly report: {error:#}");
                next_try = tokio::time::Instant::now() + RETRY;
                continue;
            }
        };
        let file_name = format!("county-report-{month}.html");
        let mut failed = false;
        for email in &schedule.emails {
            if let Err(error) = email
                .send_attachment(&subject, &text, &file_name, html.clone())
                .await
            {
                tracing::error!(%month, %error, "cannot mail the monthly report");
                failed = true;
            }
        }
        if failed {
            next_try = tokio::time::Instant::now() + RETRY;
            continue;
        }
        if let Err(error) = std::fs::write(state_file(&schedule), format!("{month}\n")) {
            tracing::error!(%error, "cannot record the monthly report as sent");
        }
        tracing::info!(%month, "monthly report mailed");
    }
}

fn state_file(schedule: &Schedule) -> PathBuf {
    schedule.data_dir.join("report-schedule.state")
}

/// Last month (`YYYY-MM`) when today is the 1st and it was not sent yet.
fn due_month(schedule: &Schedule) -> Option<String> {
    let today = jiff::Timestamp::from_millisecond(now_ms())
        .ok()?
        .to_zoned(schedule.display.zone().clone())
        .date();
    if today.day() != 1 {
        return None;
    }
    let month = today
        .checked_sub(1.month())
        .ok()?
        .strftime("%Y-%m")
        .to_string();
    let sent = std::fs::read_to_string(state_file(schedule)).unwrap_or_default();
    (sent.trim() != month).then_some(month)
}

/// The mail's subject, text and the report's HTML.
fn render(schedule: &Schedule, month: &str) -> anyhow::Result<(String, String, String)> {
    let now = now_ms();
    // The month's last hour is written before it is read.
    schedule.history.write(now, false)?;
    let sources = Sources {
        data_dir: &schedule.data_dir,
        store: &schedule.store,
        registry: &schedule.registry,
        silent_after: schedule.silent_after,
    };
    let language = schedule.display.language;
    let inputs = gather(
        &sources,
        &schedule.display,
        &Range::month(month)?,
        None,
        now,
    )?;
    let report = super::build(&inputs, &schedule.display, language);
    let texts = Texts::new(language);
    let subject = format!("{} {month}", texts.word("title"));
    let text = texts.mail_text(month);
    Ok((subject, text, super::html::render(&report, &texts)))
}
