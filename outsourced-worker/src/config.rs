//! The worker's YAML config file: who it is, which backend it talks to, how it runs, and
//! which programs handle which job classes. `outsourcer worker config` writes one.
//!
//! ```yaml
//! worker: mailer
//! backend:
//!   sql:
//!     url: sqlite:///var/lib/outsourced/outsourced.db
//! queues: [mail]
//! concurrency: 4
//! max_run_time: 1h
//! commands:
//!   SendMail:
//!     program: ./send-mail.sh
//! ```

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::command::CommandSpec;
use crate::options::WorkerOptions;

/// The most jobs one worker runs at once (`concurrency`).
pub const MAX_CONCURRENCY: usize = 10_000;

/// A worker's config file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// The worker's name.
    pub worker: String,
    /// Where the jobs are.
    pub backend: BackendConfig,
    /// Only these queues (of those it is hired for); omitted or empty: whatever queues the
    /// worker is hired for at each reserve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<String>,
    /// Take jobs of any class, failing those it has no handler for; by default a worker
    /// takes only the classes in `commands`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub catch_all: bool,
    /// Jobs run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// The most jobs one reserve asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    /// The longest an attempt may run, e.g. `4h`.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_run_time: Option<Duration>,
    /// The lease to ask for, e.g. `30s`.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub lease: Option<Duration>,
    /// How long an idle worker long-polls, e.g. `5s`.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub idle_wait: Option<Duration>,
    /// How long running jobs may finish after a shutdown signal, e.g. `25s`.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub shutdown_grace: Option<Duration>,
    /// How long a command handler being stopped gets between SIGTERM and SIGKILL, e.g. `5s`.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub kill_grace: Option<Duration>,
    /// Stop after the server refused the worker's credentials this many times in a row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_refusals: Option<u32>,
    /// Inclusive priority bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_priority: Option<i32>,
    /// Inclusive priority bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_priority: Option<i32>,
    /// Stop once nothing is ready and nothing runs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exit_on_complete: bool,
    /// Programs that handle job classes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub commands: BTreeMap<String, CommandSpec>,
}

/// The backend a worker talks to.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum BackendConfig {
    /// The database directly (the worker sits next to it).
    Sql {
        /// The database URL.
        url: String,
    },
    /// A server over HTTP(S), with the worker's OAuth 1.0a credentials.
    Http {
        /// The server's URL, including the mount prefix.
        url: String,
        /// The worker's consumer key.
        consumer_key: String,
        /// The worker's consumer secret.
        consumer_secret: String,
        /// A PEM file of certificate authorities to trust besides the system's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca_file: Option<PathBuf>,
    },
}

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the worker config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid config (the message names the key and its place).
    #[error("invalid worker config {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
}

impl WorkerConfig {
    /// A config with only a name and a backend: defaults for the rest.
    pub fn new(worker: impl Into<String>, backend: BackendConfig) -> Self {
        WorkerConfig {
            worker: worker.into(),
            backend,
            queues: Vec::new(),
            catch_all: false,
            concurrency: None,
            batch: None,
            max_run_time: None,
            lease: None,
            idle_wait: None,
            shutdown_grace: None,
            kill_grace: None,
            max_refusals: None,
            min_priority: None,
            max_priority: None,
            exit_on_complete: false,
            commands: BTreeMap::new(),
        }
    }

    /// Parses and checks a config's text (its command paths as written); the error names
    /// the key at fault.
    pub fn parse(text: &str) -> Result<WorkerConfig, String> {
        let config: WorkerConfig =
            serde_saphyr::from_str(text).map_err(|e| parse_error(text, &e))?;
        config.check()?;
        Ok(config)
    }

    /// Reads and checks a config file; relative command paths are resolved against its
    /// directory.
    pub fn load(path: &Path) -> Result<WorkerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = WorkerConfig::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        // The directory of `w1.yml` is "", which would make `./job.sh` a bare `job.sh`, looked
        // up on the PATH: it is the current directory.
        let base = path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        for spec in config.commands.values_mut() {
            if spec.program.is_relative() && spec.program.components().count() > 1 {
                let relative: PathBuf = spec
                    .program
                    .components()
                    .filter(|c| !matches!(c, Component::CurDir))
                    .collect();
                spec.program = base.join(relative);
            }
        }
        Ok(config)
    }

    /// The config as YAML.
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).unwrap_or_default()
    }

    /// Checks the values serde cannot: names and bounds.
    fn check(&self) -> Result<(), String> {
        if self.worker.trim().is_empty() {
            return Err("`worker` must name the worker".into());
        }
        if self.concurrency == Some(0) {
            return Err("`concurrency` must be at least 1".into());
        }
        if let Some(n) = self.concurrency.filter(|&n| n > MAX_CONCURRENCY) {
            return Err(format!(
                "`concurrency` {n} is more than one worker runs ({MAX_CONCURRENCY} at most: each \
                 running job holds a task, a command's a process and its pipes); run more workers"
            ));
        }
        if self.batch == Some(0) {
            return Err("`batch` must be at least 1".into());
        }
        if self.max_refusals == Some(0) {
            return Err("`max_refusals` must be at least 1".into());
        }
        if self.lease.is_some_and(|l| l < Duration::from_secs(1)) {
            return Err("`lease` must be at least 1s".into());
        }
        if let (Some(min), Some(max)) = (self.min_priority, self.max_priority)
            && min > max
        {
            return Err("`min_priority` must not be above `max_priority`".into());
        }
        for (class, spec) in &self.commands {
            if spec.program.as_os_str().is_empty() {
                return Err(format!("`commands.{class}.program` must name a program"));
            }
        }
        Ok(())
    }

    /// The worker options the file sets, defaults elsewhere.
    pub fn options(&self) -> WorkerOptions {
        let defaults = WorkerOptions::default();
        WorkerOptions {
            queues: self.queues.clone(),
            catch_all: self.catch_all,
            concurrency: self.concurrency.unwrap_or(defaults.concurrency),
            batch: self.batch.unwrap_or(defaults.batch),
            max_run_time: self.max_run_time.unwrap_or(defaults.max_run_time),
            lease: self.lease.unwrap_or(defaults.lease),
            idle_wait: self.idle_wait.unwrap_or(defaults.idle_wait),
            min_priority: self.min_priority,
            max_priority: self.max_priority,
            shutdown_grace: self.shutdown_grace.unwrap_or(defaults.shutdown_grace),
            exit_on_complete: self.exit_on_complete,
            kill_grace: self.kill_grace.unwrap_or(defaults.kill_grace),
            max_refusals: self.max_refusals.unwrap_or(defaults.max_refusals),
        }
    }
}

impl WorkerConfig {
    /// Checks that a worker with this config can run something: a handler for some class (or
    /// `catch_all`), each handler's program there and executable.
    pub fn check_runnable(&self, path: &Path) -> std::result::Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        if let BackendConfig::Http { url, .. } = &self.backend
            && !is_server_url(url)
        {
            return Err(invalid(format!(
                "`backend.http.url`: {url:?} is not a server's URL: give http:// or https://, the host and the API's mount (such as http://127.0.0.1:8080/outsourced)"
            )));
        }
        if self.commands.is_empty() && !self.catch_all {
            return Err(invalid(
                "it runs no job class: add a `commands:` section naming a program for each class \
                 (docs/worker-config.md), or set `catch_all: true`"
                    .into(),
            ));
        }
        for (class, spec) in &self.commands {
            if let Err(why) = runnable(&spec.program) {
                return Err(invalid(format!(
                    "`commands.{class}.program`: {} {why}",
                    spec.program.display()
                )));
            }
        }
        Ok(())
    }
}

/// Whether `url` looks like a server's URL: http or https, a host, no blank. What it reaches
/// is the worker's start to find out.
fn is_server_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host = rest.and_then(|r| r.split('/').next()).unwrap_or_default();
    !host.is_empty() && !url.chars().any(char::is_whitespace)
}

/// Whether `program` can be started: a path to an executable file, or a name found on the
/// `PATH`.
fn runnable(program: &Path) -> std::result::Result<(), &'static str> {
    if program.components().count() > 1 || program.is_absolute() {
        return executable(program);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).any(|dir| executable(&dir.join(program)).is_ok());
    if found {
        Ok(())
    } else {
        Err("is not on the PATH")
    }
}

fn executable(path: &Path) -> std::result::Result<(), &'static str> {
    let meta = std::fs::metadata(path).map_err(|_| "does not exist")?;
    if !meta.is_file() {
        return Err("is not a file");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o111 == 0 {
            return Err("is not executable (chmod +x it)");
        }
    }
    Ok(())
}

/// The parser's report of a config it could not read, in our words: without the lines of the
/// file around the fault (they may hold the consumer secret; the report names the line and
/// column); its report begins "error: " (ours already says it is one); a key given twice (a `commands:` appended to a file
/// that has one) is told with what to do, where the parser points at its options; a number
/// that is none ("invalid u64") is told by its key and the value typed, found on the line the
/// parser points at.
fn parse_error(text: &str, error: &serde_saphyr::Error) -> String {
    let report = error.without_snippet().to_string();
    let report = report.strip_prefix("error: ").unwrap_or(&report);
    let report = report.replace(
        ", set DuplicateKeyPolicy in Options if acceptable",
        " (a key may appear once: merge its two entries into one)",
    );
    let line = error
        .location()
        .and_then(|at| text.lines().nth(at.line().checked_sub(1)? as usize));
    let Some((key, value)) = line.and_then(|line| line.split_once(':')) else {
        return report;
    };
    let key = key.trim().trim_start_matches("- ");
    let value = value.trim();
    let counts = ["u8", "u16", "u32", "u64", "usize"].map(|ty| (ty, "a count, such as 4"));
    let numbers = ["i32", "i64"].map(|ty| (ty, "a whole number, such as -1 or 4"));
    for (ty, wanted) in counts.into_iter().chain(numbers) {
        let parsers = format!("invalid {ty}");
        if report.contains(&parsers) {
            let ours = format!("`{key}` takes {wanted}, not {value:?}");
            return report.replace(&parsers, &ours);
        }
    }
    // humantime's refusal names neither the key nor what a duration looks like.
    let duration = format!("invalid value: string {value:?}, expected a duration");
    if report.contains(&duration) {
        let ours =
            format!("`{key}` takes a duration with its unit, such as 30s, 5m or 1h, not {value:?}");
        return report.replace(&duration, &ours);
    }
    report
}

#[cfg(test)]
mod tests;
