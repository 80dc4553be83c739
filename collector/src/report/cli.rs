//! `countywatch-collector report`: a month (`--month 2026-11`) or a range
//! of days (`--from 2026-11-01 --to 2026-11-15`, both included), for every
//! department or one, as HTML (default), JSON or CSV, in the language of
//! `display.language` unless `--lang` says otherwise. Written to standard
//! output, or to `--out`; CSV needs `--out`, a directory that gets one
//! file per section.

use std::path::PathBuf;

use super::gather::{Range, Sources, gather};
use super::texts::Texts;
use crate::config::Config;
use crate::incident::store::IncidentStore;
use crate::registry::Registry;
use countywatch_notify::display::Language;

/// The report command's flags.
#[derive(Clone, Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("range").required(true).args(["month", "from"])))]
pub struct ReportArgs {
    /// A calendar month, `YYYY-MM`, in the display time zone.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub month: Option<String>,
    /// The first day, `YYYY-MM-DD` (with --to).
    #[arg(long, requires = "to")]
    pub from: Option<String>,
    /// The last day included, `YYYY-MM-DD` (with --from).
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// Only this department's services, hosts, devices and incidents.
    #[arg(long)]
    pub department: Option<String>,
    /// html, json or csv.
    #[arg(long, value_enum, default_value_t = Format::Html)]
    pub format: Format,
    /// zh or en; `display.language` by default.
    #[arg(long, value_enum)]
    pub lang: Option<LanguageArg>,
    /// Write here instead of standard output (for csv: a directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The report's forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One self-contained page.
    Html,
    /// The report model.
    Json,
    /// One file per section.
    Csv,
}

/// `--lang`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LanguageArg {
    /// Simplified Chinese.
    Zh,
    /// English.
    En,
}

/// Runs the command against `config`'s data directory.
pub fn run(config: &Config, args: &ReportArgs) -> anyhow::Result<()> {
    let range = match (&args.month, &args.from, &args.to) {
        (Some(month), _, _) => Range::month(month)?,
        (None, Some(from), Some(to)) => Range::days(from, to)?,
        _ => anyhow::bail!("give --month YYYY-MM, or --from and --to"),
    };
    if args.format == Format::Csv && args.out.is_none() {
        anyhow::bail!("--format csv writes one file per section: give --out DIRECTORY");
    }
    let display = config.display();
    let language = match args.lang {
        Some(LanguageArg::Zh) => Language::Zh,
        Some(LanguageArg::En) => Language::En,
        None => display.language,
    };
    let now_ms = countywatch_daemon::clock::now_ms();
    let store = IncidentStore::open_with(&config.data_dir, &config.incidents)?;
    let registry = Registry::open(&config.data_dir)?;
    let sources = Sources {
        data_dir: &config.data_dir,
        store: &store,
        registry: &registry,
        silent_after: config.agents.silent_after.get(),
    };
    let inputs = gather(
        &sources,
        &display,
        &range,
        args.department.as_deref(),
        now_ms,
    )?;
    let report = super::build(&inputs, &display, language);
    let texts = Texts::new(language);
    let text = match args.format {
        Format::Html => super::html::render(&report, &texts),
        Format::Json => serde_json::to_string_pretty(&report)? + "\n",
        Format::Csv => {
            let Some(directory) = &args.out else {
                anyhow::bail!("--format csv needs --out DIRECTORY");
            };
            std::fs::create_dir_all(directory)?;
            for (name, contents) in super::csv::sections(&report, &texts) {
                let path = directory.join(name);
                std::fs::write(&path, contents)
                    .map_err(|error| anyhow::anyhow!("cannot write {}: {error}", path.display()))?;
            }
            return Ok(());
        }
    };
    match &args.out {
        Some(path) => std::fs::write(path, text)
            .map_err(|error| anyhow::anyhow!("cannot write {}: {error}", path.display())),
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            Ok(out.flush()?)
        }
    }
}
