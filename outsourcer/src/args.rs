//! The command line, as clap sees it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use outsourced_server::ServerConfig;

/// Administer outsourced: queues, workers, producers, admins and jobs.
#[derive(Debug, Parser)]
#[command(name = "outsourcer", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// The database (SQLite file by default; also postgres:// and mysql:// URLs). The help
    /// shows the variable, not its value, which may hold credentials.
    #[arg(
        long,
        global = true,
        env = "OUTSOURCED_DATABASE_URL",
        hide_env_values = true,
        default_value = "sqlite://outsourced.db",
        help_heading = "Global options"
    )]
    pub(crate) database: String,
    /// The server key that encrypts consumer secrets (created on first use). The key itself
    /// may instead be given in OUTSOURCED_SERVER_KEY.
    #[arg(
        long,
        global = true,
        env = "OUTSOURCED_KEY_FILE",
        help_heading = "Global options"
    )]
    pub(crate) key_file: Option<PathBuf>,
    /// Print JSON instead of tables (and, for `serve`, log JSON lines).
    #[arg(long, global = true, help_heading = "Global options")]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create, change, pause, list and delete queues; hire and fire workers.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Create workers and write their config files (hire them with `queue hire`).
    #[command(subcommand)]
    Worker(WorkerCommand),
    /// Create producers (clients that enqueue over HTTP) and grant them queues.
    #[command(subcommand)]
    Producer(ProducerCommand),
    /// Create admins (clients of the whole API) and set their dashboard passwords.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Enqueue, list, inspect, retry, cancel and delete jobs.
    #[command(subcommand)]
    Job(JobCommand),
    /// Group jobs under a callback job that runs once all of them have ended.
    #[command(subcommand)]
    Batch(BatchCommand),
    /// Run the whole flow on a fresh SQLite file and show what happened.
    Demo(DemoArgs),
    /// Remove finished jobs past their queue's retention, with their history and attachments
    /// (`outsourcer serve` also does it every minute).
    Prune {
        /// The most jobs to remove per transaction.
        #[arg(long, default_value_t = 1000)]
        batch: u32,
    },
    /// Serve the HTTP API (and reclaim expired leases) until SIGTERM or SIGINT.
    Serve(ServeArgs),
    /// Bring the database schema up to date (every command also does this).
    Migrate,
    /// Rotate the server key: re-encrypt every secret under a new key.
    RotateKey {
        /// Where to write the new key.
        #[arg(long)]
        new_key_file: PathBuf,
    },
}

impl Command {
    /// Whether the command may create the database when there is none: those that set one up
    /// (migrate, serve, creating a queue or a principal). Every other command on a missing
    /// SQLite file is a mistyped path, refused rather than answered from a new empty database.
    pub(crate) fn may_create_database(&self) -> bool {
        let creates =
            |command: &PrincipalCommand| matches!(command, PrincipalCommand::Create { .. });
        match self {
            Command::Migrate | Command::Serve(_) => true,
            Command::Queue(command) => matches!(command, QueueCommand::Create { .. }),
            Command::Worker(WorkerCommand::Common(command))
            | Command::Producer(ProducerCommand::Common(command))
            | Command::Admin(AdminCommand::Common(command)) => creates(command),
            _ => false,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum BatchCommand {
    /// Open a batch: its callback job is stored now (pending) and runs once the batch is
    /// closed and every job added to it (`job enqueue --batch ID`) has ended, with the batch's
    /// counts in its arguments under "batch".
    Open {
        /// The callback's class.
        #[arg(long)]
        callback: String,
        /// The callback's queue.
        #[arg(long, default_value = "default")]
        callback_queue: String,
        /// The callback's arguments: a JSON object ("batch" is added to it).
        #[arg(long, default_value = "{}")]
        callback_args: String,
        /// What the batch is, for people.
        #[arg(long)]
        description: Option<String>,
    },
    /// Close a batch: no more jobs from outside it; its callback runs once its jobs have ended.
    Close {
        /// The batch's id.
        #[arg(value_parser = an_id)]
        id: i64,
    },
    /// Show a batch's counts and its callback.
    Show {
        /// The batch's id.
        #[arg(value_parser = an_id)]
        id: i64,
    },
    /// Close a batch and cancel its jobs that have not ended (its callback still runs).
    Cancel {
        /// The batch's id.
        #[arg(value_parser = an_id)]
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum QueueCommand {
    /// Create a queue (with the default limit unless told otherwise).
    Create {
        /// Its name.
        name: String,
        #[command(flatten)]
        limit: LimitArgs,
        #[command(flatten)]
        run: RunLimitArgs,
        /// Prune finished jobs once they are this old (`30days`), or keep them `forever` (the
        /// default).
        #[arg(long)]
        retention: Option<String>,
    },
    /// List every queue with its counts.
    List,
    /// Show one queue.
    Show {
        /// Its name.
        name: String,
    },
    /// Change a queue's limits or retention, or pause or resume it.
    Update {
        /// Its name.
        name: String,
        #[command(flatten)]
        limit: LimitArgs,
        #[command(flatten)]
        run: RunLimitArgs,
        /// Prune finished jobs once they are this old (`30days`), or keep them `forever`.
        #[arg(long)]
        retention: Option<String>,
        /// Hand out no jobs until resumed (enqueue still works).
        #[arg(long, conflicts_with = "resume")]
        pause: bool,
        /// Hand out jobs again.
        #[arg(long)]
        resume: bool,
    },
    /// Hand out none of a queue's jobs until it is resumed (enqueue still works; running jobs
    /// run on): the same as `queue update NAME --pause`.
    Pause {
        /// Its name.
        name: String,
    },
    /// Hand out a paused queue's jobs again: the same as `queue update NAME --resume`.
    Resume {
        /// Its name.
        name: String,
    },
    /// Delete a queue that holds no live jobs.
    Delete {
        /// Its name.
        name: String,
    },
    /// Hire a worker for a queue.
    Hire {
        /// The queue.
        queue: String,
        /// The worker.
        worker: String,
    },
    /// Fire a worker from a queue.
    Fire {
        /// The queue.
        queue: String,
        /// The worker.
        worker: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct LimitArgs {
    /// The most live jobs (scheduled, available, retrying, running) the queue may hold (a
    /// queue created without one holds 10000).
    #[arg(long, conflicts_with = "unlimited", allow_hyphen_values = true, value_parser = job_count)]
    pub(crate) limit: Option<u64>,
    /// No limit at all.
    #[arg(long)]
    pub(crate) unlimited: bool,
}

/// A queue's run limits, enforced by the server for every worker: `none` removes one.
#[derive(Debug, Args)]
pub(crate) struct RunLimitArgs {
    /// At most this many of the queue's jobs run at once, wherever the workers are.
    #[arg(long, value_name = "N|none", allow_hyphen_values = true)]
    pub(crate) max_running: Option<String>,
    /// At most this many jobs start per period, evenly spaced (`100/1m` or `100/m`: one every
    /// 600 ms; periods: `s`, `m` for minutes, `h`, `d`). Every start counts, also one whose job
    /// fails or is given back.
    #[arg(long, value_name = "N/PERIOD|none", allow_hyphen_values = true)]
    pub(crate) rate: Option<String>,
    /// At most this many jobs of one concurrency key run at once (`job enqueue
    /// --concurrency-key`); 1 runs each key's jobs one at a time.
    #[arg(
        long,
        visible_alias = "key-limit",
        value_name = "N|none",
        allow_hyphen_values = true
    )]
    pub(crate) max_running_per_key: Option<String>,
    /// At most this many jobs of one concurrency key start per period, evenly spaced, each
    /// key on its own clock (`10/1m`: one every 6 s per key).
    #[arg(long, value_name = "N/PERIOD|none", allow_hyphen_values = true)]
    pub(crate) rate_per_key: Option<String>,
}

/// What every kind of principal (worker, producer, admin) has.
#[derive(Debug, Subcommand)]
pub(crate) enum PrincipalCommand {
    /// Create one, with fresh OAuth credentials.
    Create {
        /// Its name.
        name: String,
    },
    /// List them.
    List,
    /// Show one.
    Show {
        /// Its name.
        name: String,
    },
    /// Lock one out: it is refused everything.
    Lock {
        /// Its name.
        name: String,
    },
    /// Let a locked one back in.
    Unlock {
        /// Its name.
        name: String,
    },
    /// Give one a new consumer secret; the old one stops working.
    RotateSecret {
        /// Its name.
        name: String,
    },
    /// Delete one.
    Delete {
        /// Its name.
        name: String,
    },
}

/// `outsourcer worker ...`
#[derive(Debug, Subcommand)]
pub(crate) enum WorkerCommand {
    #[command(flatten)]
    Common(PrincipalCommand),
    /// Write the config file a worker needs (every connection detail). An existing file keeps
    /// its other sections (`commands:`, `concurrency:` ...); only the worker's name and
    /// connection are written again.
    Config {
        /// The worker's name.
        name: String,
        /// Write to this file (owner-only; `-` is standard output) instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Talk to a server at this URL, its mount included
        /// (http://server:8080/outsourced), instead of the database directly.
        #[arg(long)]
        url: Option<String>,
    },
}

/// `outsourcer producer ...`
#[derive(Debug, Subcommand)]
pub(crate) enum ProducerCommand {
    #[command(flatten)]
    Common(PrincipalCommand),
    /// Grant a producer a queue it may enqueue into.
    Grant {
        /// Its name.
        name: String,
        /// The queue.
        queue: String,
    },
    /// Take a producer's grant back.
    Revoke {
        /// Its name.
        name: String,
        /// The queue.
        queue: String,
    },
}

/// `outsourcer admin ...`
#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    #[command(flatten)]
    Common(PrincipalCommand),
    /// Set an admin's dashboard password (at least ten characters): prompted for on a
    /// terminal, else read as one line from standard input. Its open sessions end.
    Password {
        /// The admin's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum JobCommand {
    /// Enqueue a job, or many from a JSON-lines file.
    Enqueue(EnqueueArgs),
    /// List jobs, newest first.
    List(ListArgs),
    /// Show one job.
    Show {
        /// Its id.
        #[arg(value_parser = an_id)]
        id: i64,
    },
    /// Attach a file to a job that no worker has leased yet (enqueue it with --run-at).
    Attach {
        /// The job's id.
        #[arg(value_parser = an_id)]
        id: i64,
        /// The file.
        file: PathBuf,
        /// Its media type (application/octet-stream unless given).
        #[arg(long = "type")]
        content_type: Option<String>,
    },
    /// Save a job's attachment to a file (`-` for standard output), checking its SHA-256.
    Attachment {
        /// The job's id.
        #[arg(value_parser = an_id)]
        id: i64,
        /// Where to write it (`-` for standard output).
        #[arg(required_unless_present = "output", conflicts_with = "output")]
        file: Option<PathBuf>,
        /// Where to write it, as an option (the same as FILE).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Show a job's history: every transition with its actor and error.
    History {
        /// Its id.
        #[arg(value_parser = an_id)]
        id: i64,
    },
    /// Run a failed or cancelled job again, or a scheduled or retrying one now. A job that
    /// depends on others runs only once they have succeeded (retry those first); a pending
    /// job waits for its dependencies or its batch and cannot be retried.
    Retry {
        /// Its id, or several (each retried on its own).
        #[arg(value_parser = an_id, required = true)]
        ids: Vec<i64>,
    },
    /// Cancel a waiting job, or ask a running one to stop.
    Cancel {
        /// Its id, or several (each cancelled on its own).
        #[arg(value_parser = an_id, required = true)]
        ids: Vec<i64>,
    },
    /// Delete a finished job (succeeded, failed or cancelled) with its history and attachment.
    ///
    /// Now, rather than at its queue's retention. A live job is refused: cancel it first.
    Delete {
        /// Its id, or several (each deleted on its own).
        #[arg(value_parser = an_id, required = true)]
        ids: Vec<i64>,
    },
    /// Count jobs by state, for an owner or a queue.
    Count {
        /// Only this owner's jobs (TYPE/ID).
        #[arg(long)]
        owner: Option<String>,
        /// Only this queue.
        #[arg(long, short)]
        queue: Option<String>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct EnqueueArgs {
    /// The job class.
    #[arg(required_unless_present = "from")]
    pub(crate) class: Option<String>,
    /// The arguments, as JSON, after the class (`Mail::Send '{"to": "ann"}'`): the same as
    /// --args, which it cannot be given with.
    #[arg(value_name = "ARGS", conflicts_with = "args")]
    pub(crate) arguments: Option<String>,
    /// The queue.
    #[arg(long, short, default_value = "default")]
    pub(crate) queue: String,
    /// The arguments, as JSON.
    #[arg(long, default_value = "[]")]
    pub(crate) args: String,
    /// Lower runs first.
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) priority: Option<i32>,
    /// Not before: an RFC 3339 time, or `+` and a duration (`+5m`).
    #[arg(long)]
    pub(crate) run_at: Option<String>,
    /// The owner, TYPE/ID.
    #[arg(long)]
    pub(crate) owner: Option<String>,
    /// Attempts at most (25 unless given).
    #[arg(long)]
    pub(crate) max_attempts: Option<u32>,
    /// Run again this long after each run's due time (`30s`, `5m`, `1day`).
    #[arg(long, conflicts_with = "cron")]
    pub(crate) every: Option<String>,
    /// Run at the points of this cron schedule (UTC): first at the next point after now (or at
    /// --run-at), then at the next point after each run (`"0 3 * * *"`: daily at three).
    #[arg(long)]
    pub(crate) cron: Option<String>,
    /// Attach this file to the job (streamed; the job exists once the file is stored).
    #[arg(long, conflicts_with = "from")]
    pub(crate) attach: Option<PathBuf>,
    /// The attachment's media type (application/octet-stream unless given).
    #[arg(long, requires = "attach")]
    pub(crate) attach_type: Option<String>,
    /// The key the queue's per-key limit counts the job under (a customer, a tenant): with
    /// `queue update Q --max-running-per-key 1`, each key's jobs run one at a time.
    #[arg(long)]
    pub(crate) concurrency_key: Option<String>,
    /// Add the job to this batch (see `outsourcer batch open`).
    #[arg(long, value_name = "BATCH_ID", value_parser = an_id)]
    pub(crate) batch: Option<i64>,
    /// Run the job only once these jobs (ids, comma-separated) have all succeeded: it waits as
    /// `pending`, and is cancelled if one of them fails or is cancelled.
    #[arg(long, value_name = "JOB_IDS", value_delimiter = ',')]
    pub(crate) depends_on: Vec<i64>,
    /// Make the job unique by this key: while a job with it is live (pending, scheduled, available,
    /// retrying or running), another enqueue with it stores nothing and prints the job that
    /// holds it (with --attach, the file of a duplicate is not kept). `job list --unique-key K`
    /// lists the jobs that were stored with it.
    #[arg(long)]
    pub(crate) unique_key: Option<String>,
    /// What the key is unique among: `class` (jobs of the same queue and class, the default) or
    /// `queue` (every job of the queue). The two are separate scopes: a key taken across a
    /// queue does not hold back a class-wide enqueue with the same key, nor the reverse.
    #[arg(long, requires = "unique_key", value_parser = ["class", "queue"])]
    pub(crate) unique_across: Option<String>,
    /// Keep the key taken for this long counted from the holder's enqueue (`1h`, `30m`,
    /// `7days`), whatever becomes of the job: finished jobs hold it too, and a job still live
    /// after the period no longer does.
    #[arg(long, requires = "unique_key")]
    pub(crate) unique_for: Option<String>,
    /// What a duplicate does: `existing` (print the job that holds the key, exit 0; the
    /// default), `refuse` (an error naming it, exit non-zero) or `replace` (debounce: give the
    /// holder these arguments and this run time, now unless --run-at is given, when it is
    /// scheduled or available, of this class and yours; then print it).
    #[arg(long, requires = "unique_key", value_parser = ["existing", "refuse", "replace"])]
    pub(crate) on_duplicate: Option<String>,
    /// Enqueue every line of this JSON-lines file: {"class", "args", "queue", "priority",
    /// "run_at", "owner", "max_attempts", "every", "cron", "unique_key", "unique_across",
    /// "unique_for", "on_duplicate", "concurrency_key", "depends_on": [ids], "batch": id}. All or none: every line is checked first, and the whole
    /// file is one transaction. It answers the jobs' ids (with `--json`, each line's in order; a
    /// duplicate's is the job that holds its key). The other options describe one job and
    /// cannot be given with it.
    #[arg(long, conflicts_with_all = [
        "class", "arguments", "queue", "args", "priority", "run_at", "owner", "max_attempts", "every", "cron",
        "unique_key", "unique_across", "unique_for", "on_duplicate", "concurrency_key",
        "depends_on", "batch",
    ])]
    pub(crate) from: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only this queue.
    #[arg(long, short)]
    pub(crate) queue: Option<String>,
    /// Only this state: pending, scheduled, available, retrying, running, succeeded, failed
    /// or cancelled.
    #[arg(long)]
    pub(crate) state: Option<String>,
    /// Only this class.
    #[arg(long)]
    pub(crate) class: Option<String>,
    /// Only classes that begin with this (`Mail::`), taken literally.
    #[arg(long)]
    pub(crate) class_prefix: Option<String>,
    /// Only this owner's jobs (TYPE/ID).
    #[arg(long)]
    pub(crate) owner: Option<String>,
    /// Only jobs stored with this unique key.
    #[arg(long)]
    pub(crate) unique_key: Option<String>,
    /// Only jobs of this concurrency key (`--state running` too: what runs for it now).
    #[arg(long)]
    pub(crate) concurrency_key: Option<String>,
    /// Only the follow-ups of this job (the jobs its success enqueued).
    #[arg(long, value_name = "JOB_ID", value_parser = an_id)]
    pub(crate) parent: Option<i64>,
    /// Only the jobs that wait (or waited) for this job (enqueued with --depends-on it).
    #[arg(long, value_name = "JOB_ID", value_parser = an_id)]
    pub(crate) dependants_of: Option<i64>,
    /// Only the jobs of this batch.
    #[arg(long, value_name = "BATCH_ID", value_parser = an_id)]
    pub(crate) batch: Option<i64>,
    /// Only jobs enqueued at or after this time: RFC 3339, or `-` and a duration (`-1h`).
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) since: Option<String>,
    /// Only jobs enqueued before this time: RFC 3339, or `-` and a duration.
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) until: Option<String>,
    /// Jobs older than this id (the next page).
    #[arg(long, value_parser = an_id)]
    pub(crate) before: Option<i64>,
    /// The jobs just newer than this id (the page before), still newest first.
    #[arg(long, conflicts_with = "before", value_parser = an_id)]
    pub(crate) after: Option<i64>,
    /// The page size.
    #[arg(long, default_value_t = 50, allow_hyphen_values = true, value_parser = page_size)]
    pub(crate) limit: u32,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// How many jobs to enqueue.
    #[arg(long, default_value_t = 3000)]
    pub(crate) jobs: usize,
    /// How many worker processes' worth of workers to run.
    #[arg(long, default_value_t = 2)]
    pub(crate) workers: usize,
    /// Keep the demo's database instead of deleting it.
    #[arg(long)]
    pub(crate) keep: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) bind: String,
    /// The path the API is mounted under (the URL workers are given ends with it).
    #[arg(long, default_value = "/outsourced")]
    pub(crate) mount: String,
    /// A PEM certificate chain: serve HTTPS.
    #[arg(long, requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The PEM private key of the certificate.
    #[arg(long, requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// The scheme and host clients use, when a proxy in front terminates TLS
    /// (e.g. https://jobs.example.com); signatures cover it.
    #[arg(long)]
    pub(crate) public_origin: Option<String>,
    /// Refuse bodies without the signed body_sha256 query parameter.
    #[arg(long)]
    pub(crate) require_body_hash: bool,
    /// How often a long-polling reserve looks again without a wake-up (e.g. 5s). On
    /// PostgreSQL, enqueues through other servers wake it at once; on MariaDB and SQLite this
    /// bounds how late it sees them.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) idle_recheck: Option<std::time::Duration>,
    /// A token Prometheus must send (`Authorization: Bearer TOKEN`) to read `<mount>/metrics`;
    /// without one the metrics are off.
    #[arg(
        long,
        env = "OUTSOURCED_METRICS_TOKEN",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub(crate) metrics_token: Option<String>,
    /// The largest attachment accepted, in MiB (2048 unless given); larger ones get 413.
    #[arg(long)]
    pub(crate) max_attachment_mib: Option<u64>,
    /// The most connections open at once; more are closed as they arrive.
    #[arg(long, default_value_t = ServerConfig::default().max_connections, value_parser = at_least_one)]
    pub(crate) max_connections: usize,
    /// The most connections open at once from one client address.
    #[arg(long, default_value_t = ServerConfig::default().max_connections_per_peer, value_parser = at_least_one)]
    pub(crate) max_connections_per_peer: usize,
    /// The most authenticated API requests in flight at once (long polls apart); more are
    /// answered 503 with Retry-After.
    #[arg(long, default_value_t = ServerConfig::default().max_requests, value_parser = at_least_one)]
    pub(crate) max_requests: usize,
    /// How long a new connection may take to send its first request (e.g. 10s; a TLS
    /// handshake too).
    #[arg(long, value_parser = some_time)]
    pub(crate) first_request_timeout: Option<std::time::Duration>,
    /// How long a connection with no request in flight stays open before it is closed
    /// (e.g. 120s; an HTTP/1 connection waiting for its next request's headers is closed
    /// after --first-request-timeout already).
    #[arg(long, value_parser = some_time)]
    pub(crate) idle_timeout: Option<std::time::Duration>,
}

/// A count of at least one (a cap of 0 would refuse everything).
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A number of jobs: a negative one reaches this parser (rather than clap's tip to write
/// `-- -1`, which would not help), and is told what is wanted. Zero is left to the command,
/// which says why it is refused.
fn job_count(text: &str) -> Result<u64, String> {
    text.parse::<u64>()
        .map_err(|_| "is not a number of jobs: give a whole number, 1 or more".into())
}

/// A job's or a batch's id (rather than the parser's "invalid digit found in string").
fn an_id(text: &str) -> Result<i64, String> {
    match text.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err("is not an id: ids are whole numbers from 1, such as 42".into()),
    }
}

/// A page of a listing: 1 or more rows.
fn page_size(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(0) | Err(_) => Err("is not a page size: give a whole number, 1 or more".into()),
        Ok(n) => Ok(n),
    }
}

/// A duration longer than zero (e.g. `10s`, `2m`).
fn some_time(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("must be longer than 0".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    #[test]
    fn a_metrics_token_that_begins_with_a_dash_is_a_value() {
        let serve = Cli::try_parse_from(["outsourcer", "serve", "--metrics-token", "-x"]);
        assert!(serve.is_ok(), "{serve:?}");
    }
}
