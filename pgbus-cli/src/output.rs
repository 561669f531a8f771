//! What commands print: tables for people, JSON for scripts, prompts and progress.

use std::io::IsTerminal;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::exit::{CliResult, Failure};

/// A table with these column headers.
pub fn table<const N: usize>(headers: [&str; N]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(headers);
    if t.width().is_none() {
        // Not a terminal: wrap at a width that reads well in a log or a pipe.
        t.set_width(150);
    }
    t
}

/// Prints `value` as pretty JSON.
pub fn json<T: Serialize + ?Sized>(value: &T) -> CliResult {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A time, to the second, in UTC.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An optional time, or `-`.
pub fn opt_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".to_owned(), time)
}

/// A duration, briefly (`3s`, `4m 12s`, `2h 5m`).
pub fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// At most `n` characters of `s`, on one line.
pub fn clip(s: &str, n: usize) -> String {
    let line = s.replace('\n', " ");
    if line.chars().count() <= n {
        line
    } else {
        let mut out: String = line.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Asks before a destructive command, unless `--yes`: on a terminal, a prompt (declined:
/// exit code 1); elsewhere, refuses (exit code 2).
pub fn confirm(yes: bool, what: &str) -> CliResult {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(Failure::failed(format!(
            "{what}: refusing without --yes (standard input is not a terminal)"
        )));
    }
    let go = dialoguer::Confirm::new()
        .with_prompt(format!("{what}?"))
        .default(false)
        .interact()
        .map_err(|e| Failure::failed(format!("prompt: {e}")))?;
    if go {
        Ok(())
    } else {
        Err(Failure::refused("declined: nothing done"))
    }
}

/// A spinner on standard error (drawn only on a terminal) for a long operation.
pub fn spinner(message: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
