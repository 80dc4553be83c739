//! `silence add|expire`: the notify command-line helpers, audited.
//! (`silence list` changes nothing and calls `notify::cli` directly.)

use crate::config::Config;

/// Creates a silence of `matchers` for `duration` by `author` (`$USER`, else
/// `unknown`, without it), prints its id and audits it.
pub fn add(
    config: &Config,
    matchers: &[String],
    duration: &str,
    author: Option<String>,
    comment: &str,
) -> anyhow::Result<()> {
    let author = author
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".to_string());
    countywatch_notify::cli::silence_add(&config.data_dir, matchers, duration, &author, comment)?;
    super::record(
        &config.data_dir,
        "silence.created",
        "silences",
        &format!("{} for {duration}: {comment}", matchers.join(", ")),
    );
    Ok(())
}

/// Expires the silence `id` now and audits it.
pub fn expire(config: &Config, id: &str) -> anyhow::Result<()> {
    countywatch_notify::cli::silence_expire(&config.data_dir, id)?;
    super::record(
        &config.data_dir,
        "silence.expired",
        &format!("silence/{id}"),
        "",
    );
    Ok(())
}
