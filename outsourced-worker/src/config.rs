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

/// A worker's config file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// The worker's name.
    pub worker: String,
    /// Where the jobs are.
    pub backend: BackendConfig,
    /// Only these queues; omitted or empty: the queues the worker is hired for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<String>,
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
    /// Parses and checks a config's text (its command paths as written); the error names
    /// the key at fault.
    pub fn parse(text: &str) -> Result<WorkerConfig, String> {
        let config: WorkerConfig = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
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
        if self.batch == Some(0) {
            return Err("`batch` must be at least 1".into());
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
            concurrency: self.concurrency.unwrap_or(defaults.concurrency),
            batch: self.batch.unwrap_or(defaults.batch),
            max_run_time: self.max_run_time.unwrap_or(defaults.max_run_time),
            lease: self.lease.unwrap_or(defaults.lease),
            idle_wait: self.idle_wait.unwrap_or(defaults.idle_wait),
            min_priority: self.min_priority,
            max_priority: self.max_priority,
            shutdown_grace: self.shutdown_grace.unwrap_or(defaults.shutdown_grace),
            exit_on_complete: self.exit_on_complete,
        }
    }
}

#[cfg(test)]
mod tests;
