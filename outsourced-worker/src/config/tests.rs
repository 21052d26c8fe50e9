//! Config files: what parses, what is refused and how the refusal names the key and the file.

use std::io::Write;

use super::*;

fn load(text: &str) -> Result<WorkerConfig, ConfigError> {
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
    file.write_all(text.as_bytes()).expect("write the config");
    WorkerConfig::load(file.path())
}

fn error_of(text: &str) -> String {
    match load(text) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn a_full_config_parses() {
    let config = load(
        "worker: mailer\n\
         backend:\n  sql:\n    url: sqlite://x.db\n\
         queues: [mail, bulk]\n\
         concurrency: 8\n\
         max_run_time: 90s\n\
         lease: 10s\n\
         exit_on_complete: true\n\
         commands:\n  SendMail:\n    program: ./send.sh\n    args: [--fast]\n",
    )
    .expect("a valid config");
    assert_eq!(config.worker, "mailer");
    assert_eq!(
        config.backend,
        BackendConfig::Sql {
            url: "sqlite://x.db".into()
        }
    );
    let options = config.options();
    assert_eq!(options.queues, ["mail", "bulk"]);
    assert_eq!(options.concurrency, 8);
    assert_eq!(options.max_run_time, Duration::from_secs(90));
    assert_eq!(options.lease, Duration::from_secs(10));
    assert!(options.exit_on_complete);
    let send = &config.commands["SendMail"];
    assert!(
        send.program.is_absolute(),
        "resolved against the file's directory"
    );
    assert!(send.program.ends_with("send.sh"));
    assert_eq!(send.args, ["--fast"]);
}

#[test]
fn a_program_next_to_a_config_named_without_a_directory_is_not_looked_up_on_the_path() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let text = "worker: w\nbackend:\n  sql:\n    url: sqlite://x.db\n\
                commands:\n  Job:\n    program: ./job.sh\n";
    std::fs::write(dir.path().join("w.yml"), text).expect("write the config");
    // As `outsourced-worker --config w.yml` run in that directory sees it.
    let loaded = with_current_dir(dir.path(), || WorkerConfig::load(Path::new("w.yml")));
    let program = &loaded.expect("a valid config").commands["Job"].program;
    assert_eq!(program, Path::new("./job.sh"), "a path, not a name");
}

/// Runs `f` with the process in `dir` (tests of relative paths; nothing else here depends on
/// the current directory).
fn with_current_dir<T>(dir: &Path, f: impl FnOnce() -> T) -> T {
    let before = std::env::current_dir().expect("the current directory");
    std::env::set_current_dir(dir).expect("enter the directory");
    let result = f();
    std::env::set_current_dir(before).expect("leave the directory");
    result
}

#[test]
fn written_configs_read_back() {
    let backend = BackendConfig::Http {
        url: "https://jobs.example.com/outsourced".into(),
        consumer_key: "-key".into(),
        consumer_secret: "secret".into(),
        ca_file: None,
    };
    let mut config = WorkerConfig::new("w", backend);
    config.queues = vec!["a".into()];
    config.concurrency = Some(2);
    config.max_run_time = Some(Duration::from_secs(3600));
    config.kill_grace = Some(Duration::from_secs(2));
    config.catch_all = true;
    assert_eq!(load(&config.to_yaml()).expect("reads back"), config);
}

#[test]
fn a_worker_with_no_class_or_a_missing_program_is_refused() {
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().join("w.yml");
    let check = |text: &str| {
        std::fs::write(&path, text).expect("write the config");
        let config = WorkerConfig::load(&path).expect("a valid config");
        config.check_runnable(&path).err().map(|e| e.to_string())
    };
    let base = "worker: w\nbackend:\n  sql:\n    url: x\n";
    let none = check(base).unwrap_or_default();
    assert!(
        none.contains("runs no job class") && none.contains("commands:"),
        "{none}"
    );
    assert_eq!(check(&format!("{base}catch_all: true\n")), None);
    let missing = check(&format!(
        "{base}commands:\n  Thumb:\n    program: ./thumb.sh\n"
    ));
    let missing = missing.unwrap_or_default();
    assert!(
        missing.contains("`commands.Thumb.program`") && missing.contains("does not exist"),
        "{missing}"
    );
    std::fs::write(dir.path().join("thumb.sh"), "#!/bin/sh\n").expect("write a script");
    let not_executable = check(&format!(
        "{base}commands:\n  Thumb:\n    program: ./thumb.sh\n"
    ));
    assert!(
        not_executable
            .unwrap_or_default()
            .contains("not executable"),
        "a script without its x bit"
    );
    let found = check(&format!("{base}commands:\n  Thumb:\n    program: sh\n"));
    assert_eq!(found, None, "a program found on the PATH");
}

#[test]
fn unknown_keys_are_named() {
    let error = error_of("worker: w\nbackend:\n  sql:\n    url: x\nconcurency: 3\n");
    assert!(error.contains("concurency"), "{error}");
    assert!(error.contains("invalid worker config"), "{error}");
    assert_eq!(
        error.matches("error").count(),
        0,
        "says it once, as the caller's prefix: {error}"
    );
    assert!(
        error.contains(".yml") || error.contains("tmp"),
        "names the file: {error}"
    );
}

#[test]
fn a_key_given_twice_is_named_with_what_to_do() {
    let commands = "commands:\n  A:\n    program: /bin/true\n";
    let text = format!("worker: w\nbackend:\n  sql:\n    url: x\n{commands}{commands}");
    let error = error_of(&text);
    assert!(error.contains("commands"), "{error}");
    assert!(error.contains("merge its two entries"), "{error}");
    assert!(!error.contains("DuplicateKeyPolicy"), "{error}");
}

#[test]
fn bad_values_are_named() {
    let error = error_of("worker: w\nbackend:\n  sql:\n    url: x\nconcurrency: lots\n");
    assert!(
        error.contains("`concurrency` takes a count, such as 4, not \"lots\""),
        "{error}"
    );
    assert!(!error.contains("invalid u"), "{error}");
    let error = error_of("worker: w\nbackend:\n  sql:\n    url: x\nmax_run_time: 5\n");
    assert!(
        error.contains("`max_run_time` takes a duration with its unit, such as 30s"),
        "a number without its unit: {error}"
    );
    let error = error_of("worker: w\nbackend:\n  sql:\n    url: x\nconcurrency: 0\n");
    assert!(error.contains("`concurrency`"), "{error}");
    let error = error_of("worker: w\nbackend:\n  sql:\n    url: x\nconcurrency: 100000\n");
    assert!(
        error.contains("`concurrency` 100000") && error.contains("10000 at most"),
        "{error}"
    );
    let most = format!("worker: w\nbackend:\n  sql:\n    url: x\nconcurrency: {MAX_CONCURRENCY}\n");
    let most = load(&most).expect("the most concurrency parses");
    assert_eq!(most.concurrency, Some(MAX_CONCURRENCY));
    let error = error_of("worker: w\nbackend:\n  sql:\n    url: x\nmax_run_time: soon\n");
    assert!(
        error.contains("soon") || error.contains("max_run_time"),
        "{error}"
    );
    let error = error_of("worker: w\nbackend:\n  ftp:\n    url: x\n");
    assert!(error.contains("ftp"), "{error}");
}

#[test]
fn an_error_never_shows_the_consumer_secret() {
    let text = "worker: w\nbackend:\n  http:\n    url: http://127.0.0.1:1/outsourced\n    \
                consumerkey: k\n    consumer_secret: s3cr3t-of-the-worker\n";
    let error = error_of(text);
    assert!(error.contains("consumerkey"), "{error}");
    assert!(!error.contains("s3cr3t"), "{error}");
}

#[test]
fn a_missing_file_is_named() {
    let error = WorkerConfig::load(Path::new("/no/such/worker.yml")).map(|_| ());
    let error = error.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("/no/such/worker.yml"), "{error}");
}
