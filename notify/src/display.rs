//! How times and words are shown to people (`display:` in the
//! configuration): the time zone every time a person reads is written in
//! (the web page, CLI tables, `audit list`, `rules replay`), and the default
//! language of the page.
//!
//! People read `2026-12-06 18:30:05 +08:00`: local time, no milliseconds,
//! the offset always written so a copied line is never ambiguous. Machines
//! keep reading RFC 3339 and epoch milliseconds (the JSON API, exports).
//! The zone is `display.timezone`, else the host's (`TZ`, then
//! `/etc/localtime`), else the detection calendar's.

use countywatch_config::config_file::{Problems, Spanned};
use jiff::tz::TimeZone;
use serde::Deserialize;

/// A language people read: the page's default and the notification
/// templates'.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// English.
    #[default]
    En,
    /// Simplified Chinese.
    Zh,
}

/// `display.language`: the page's default language, or `auto` to follow
/// the browser's `Accept-Language`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PageLanguage {
    /// English.
    En,
    /// Simplified Chinese.
    Zh,
    /// The first of Chinese and English the browser's `Accept-Language`
    /// names, else Chinese.
    Auto,
}

/// `display:` in the collector configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DisplayConfig {
    /// An IANA time zone (`Asia/Shanghai`) or a fixed offset (`+08:00`) for
    /// every time shown to people. Unset: the host's zone (`TZ`, else
    /// `/etc/localtime`), else the detection calendar's.
    pub timezone: Option<Spanned<String>>,
    /// The language people read by default: the page's unless the user
    /// chose one with the page's 中文/English switch, and the
    /// notifications' unless `notify.language` or a receiver's `language`
    /// says otherwise: `zh` (default), `en`, or `auto` (the page follows
    /// the browser's `Accept-Language`; notifications are in Chinese).
    pub language: PageLanguage,
}

impl Default for DisplayConfig {
    fn default() -> Self {
        DisplayConfig {
            timezone: None,
            language: PageLanguage::Zh,
        }
    }
}

/// The resolved display settings.
#[derive(Clone, Debug)]
pub struct Display {
    /// The zone times are shown in.
    zone: TimeZone,
    /// The notifications' default language.
    pub language: Language,
    /// The page's default language (`auto`: the browser's).
    pub page_language: PageLanguage,
}

impl Default for Display {
    fn default() -> Self {
        Display {
            zone: TimeZone::UTC,
            language: Language::Zh,
            page_language: PageLanguage::Zh,
        }
    }
}

impl DisplayConfig {
    /// Adds a problem for a zone that does not exist.
    pub fn validate(&self, problems: &mut Problems) {
        if let Some(zone) = &self.timezone
            && let Err(error) = countywatch_detect::calendar::parse_zone(&zone.value)
        {
            problems.at(zone, format!("display.timezone: {error}"));
        }
    }

    /// The settings to show with; `calendar_zone` is the detection
    /// calendar's, used when neither the configuration nor the host names
    /// a zone.
    pub fn resolve(&self, calendar_zone: &TimeZone) -> Display {
        let configured = self
            .timezone
            .as_ref()
            .and_then(|zone| countywatch_detect::calendar::parse_zone(&zone.value).ok());
        let zone = configured
            .or_else(|| TimeZone::try_system().ok())
            .unwrap_or_else(|| calendar_zone.clone());
        Display {
            zone,
            language: match self.language {
                PageLanguage::En => Language::En,
                PageLanguage::Zh | PageLanguage::Auto => Language::Zh,
            },
            page_language: self.language,
        }
    }
}

impl Display {
    /// Settings with this zone, for tests and tools.
    pub fn with_zone(zone: TimeZone, language: Language) -> Display {
        let page_language = match language {
            Language::En => PageLanguage::En,
            Language::Zh => PageLanguage::Zh,
        };
        Display {
            zone,
            language,
            page_language,
        }
    }

    /// The zone itself, for calendar arithmetic (the report's months).
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }

    /// The zone's name (`Asia/Shanghai`), or its offset when it has none.
    pub fn zone_name(&self) -> String {
        self.zone.iana_name().map_or_else(
            || {
                jiff::Timestamp::now()
                    .to_zoned(self.zone.clone())
                    .strftime("%:z")
                    .to_string()
            },
            str::to_string,
        )
    }

    /// The zone's offset from UTC at `ms`, in milliseconds (for grouping
    /// by local day).
    pub fn offset_ms(&self, ms: i64) -> i64 {
        jiff::Timestamp::from_millisecond(ms).map_or(0, |instant| {
            i64::from(self.zone.to_offset(instant).seconds()) * 1000
        })
    }

    /// Unix milliseconds as people read them: `2026-12-06 18:30:05 +08:00`.
    pub fn time(&self, ms: i64) -> String {
        match jiff::Timestamp::from_millisecond(ms) {
            Ok(instant) => instant
                .to_zoned(self.zone.clone())
                .strftime("%Y-%m-%d %H:%M:%S %:z")
                .to_string(),
            Err(_) => ms.to_string(),
        }
    }

    /// Unix milliseconds as RFC 3339 with this zone's offset and
    /// milliseconds (`2026-12-06T18:30:05.123+08:00`), for JSON.
    pub fn rfc3339(&self, ms: i64) -> String {
        match jiff::Timestamp::from_millisecond(ms) {
            Ok(instant) => instant
                .to_zoned(self.zone.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
                .to_string(),
            Err(_) => ms.to_string(),
        }
    }
}

/// How long ago `then_ms` was at `now_ms`, briefly, in `language`: `12 s
/// ago`, `5 min ago`, `3 h ago`, `2 d ago` (`12 秒前`, `5 分钟前`, ...).
pub fn ago(language: Language, now_ms: i64, then_ms: i64) -> String {
    let span = span(language, now_ms.saturating_sub(then_ms));
    match language {
        Language::Zh => format!("{span}前"),
        Language::En => format!("{span} ago"),
    }
}

/// A span of `ms` milliseconds, briefly, in `language`, in its largest
/// whole unit: `12 s`, `5 min`, `3 h`, `2 d` (`12 秒`, `5 分钟`, ...).
/// Negative spans read as zero.
pub fn span(language: Language, ms: i64) -> String {
    let seconds = ms.max(0) / 1000;
    let (value, zh, en) = match seconds {
        0..60 => (seconds, "秒", "s"),
        60..3600 => (seconds / 60, "分钟", "min"),
        3600..86_400 => (seconds / 3600, "小时", "h"),
        _ => (seconds / 86_400, "天", "d"),
    };
    match language {
        Language::Zh => format!("{value} {zh}"),
        Language::En => format!("{value} {en}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-06T10:30:05.123Z.
    const INSTANT_MS: i64 = 1_796_553_005_123;

    #[test]
    fn the_offset_is_the_zone_s_at_that_instant() {
        let shanghai = Display::with_zone(
            countywatch_detect::calendar::parse_zone("Asia/Shanghai").unwrap(),
            Language::Zh,
        );
        assert_eq!(shanghai.offset_ms(INSTANT_MS), 8 * 3_600_000);
        assert_eq!(Display::default().offset_ms(INSTANT_MS), 0);
    }

    #[test]
    fn times_read_in_the_configured_zone_with_the_offset_written() {
        let config: DisplayConfig = countywatch_config::config_file::parse(
            std::path::Path::new("c.yaml"),
            "timezone: Asia/Shanghai\nlanguage: en\n",
        )
        .unwrap();
        let display = config.resolve(&TimeZone::UTC);
        assert_eq!(display.time(INSTANT_MS), "2026-12-06 18:30:05 +08:00");
        assert_eq!(display.rfc3339(INSTANT_MS), "2026-12-06T18:30:05.123+08:00");
        assert_eq!(display.language, Language::En);
        assert_eq!(display.zone_name(), "Asia/Shanghai");
        let berlin = Display::with_zone(TimeZone::get("Europe/Berlin").unwrap(), Language::Zh);
        assert_eq!(berlin.time(INSTANT_MS), "2026-12-06 11:30:05 +01:00");
        // Summer time: 2026-07-01T10:00:00Z.
        assert_eq!(berlin.time(1_782_900_000_000), "2026-07-01 12:00:00 +02:00");
    }

    #[test]
    fn auto_leaves_the_page_to_the_browser_and_notifications_in_chinese() {
        let config: DisplayConfig = countywatch_config::config_file::parse(
            std::path::Path::new("c.yaml"),
            "language: auto\n",
        )
        .unwrap();
        let display = config.resolve(&TimeZone::UTC);
        assert_eq!(display.page_language, PageLanguage::Auto);
        assert_eq!(display.language, Language::Zh);
        let default = DisplayConfig::default().resolve(&TimeZone::UTC);
        assert_eq!(default.page_language, PageLanguage::Zh);
    }

    #[test]
    fn unknown_zones_are_positioned_problems() {
        let config: DisplayConfig = countywatch_config::config_file::parse(
            std::path::Path::new("c.yaml"),
            "timezone: Asia/Shangai\n",
        )
        .unwrap();
        let mut problems = Problems::new("c.yaml");
        config.validate(&mut problems);
        let text = problems.to_string();
        assert!(
            text.starts_with("c.yaml:1:11: display.timezone: unknown timezone"),
            "{text}"
        );
    }

    #[test]
    fn ago_is_brief() {
        assert_eq!(ago(Language::En, 12_000, 0), "12 s ago");
        assert_eq!(ago(Language::En, 3_600_000 * 3, 0), "3 h ago");
        assert_eq!(ago(Language::En, 0, 5_000), "0 s ago");
        assert_eq!(ago(Language::Zh, 300_000, 0), "5 分钟前");
        // Time left on the Decisions page: the unit is Chinese too.
        assert_eq!(span(Language::Zh, 59 * 60_000 + 5), "59 分钟");
        assert_eq!(span(Language::En, 2 * 86_400_000), "2 d");
        assert_eq!(span(Language::Zh, -5), "0 秒");
    }
}
