//! `outsourcer`, through the real binary: every command, its JSON, and its errors.

use serde_json::{Value, json};

use crate::bins::Scratch;

#[test]
fn queues_are_created_changed_listed_and_deleted() {
    let s = Scratch::new();
    let created = s.json(&["queue", "create", "mail", "--limit", "2"]);
    assert_eq!(created["name"], "mail");
    assert_eq!(created["limit"], 2);
    let unlimited = s.json(&["queue", "create", "firehose", "--unlimited"]);
    assert_eq!(unlimited["limit"], Value::Null);
    let default = s.json(&["queue", "create", "reports"]);
    assert_eq!(default["limit"], 10_000, "a finite default");
    let listed = s.json(&["queue", "list"]);
    let names: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|q| q["name"].as_str())
        .collect();
    assert_eq!(names, ["default", "firehose", "mail", "reports"]);
    let table = s.ok(&["queue", "list"]);
    assert!(table.contains("queue") && table.contains("mail") && table.contains("succeeded"));
    let paused = s.json(&["queue", "update", "mail", "--limit", "5", "--pause"]);
    assert_eq!(
        (&paused["limit"], &paused["paused"]),
        (&json!(5), &json!(true))
    );
    let resumed = s.json(&["queue", "update", "mail", "--resume"]);
    assert_eq!(resumed["paused"], false);
    // `queue pause` and `queue resume` are the words a user tries first.
    assert!(
        s.ok(&["queue", "pause", "mail"])
            .contains("updated queue mail: paused")
    );
    assert!(
        s.ok(&["queue", "pause", "mail"])
            .contains("queue mail unchanged")
    );
    assert_eq!(s.json(&["queue", "show", "mail"])["paused"], true);
    assert_eq!(s.json(&["queue", "resume", "mail"])["paused"], false);
    let nothing = s.fails(&["queue", "update", "mail"]);
    assert!(nothing.contains("nothing to change"), "{nothing}");
    assert_eq!(s.json(&["queue", "show", "mail"])["limit"], 5);
    assert_eq!(
        s.json(&["queue", "delete", "reports"])["deleted"],
        "reports"
    );
    assert!(
        s.fails(&["queue", "show", "reports"])
            .contains("unknown queue \"reports\"")
    );
    assert!(
        s.fails(&["queue", "create", "mail"])
            .contains("already exists")
    );
    assert!(
        s.fails(&["queue", "create", "bad name"])
            .contains("is not a queue name")
    );
    let zero = s.fails(&["queue", "update", "mail", "--limit", "0"]);
    assert!(zero.contains("refuse every enqueue"), "{zero}");
    // clap's own refusal (exit 2), with what is wanted rather than its tip to write `-- -1`.
    let negative = s.outsourcer(&["queue", "update", "mail", "--limit", "-1"]);
    let said = String::from_utf8_lossy(&negative.stderr);
    assert!(
        negative.status.code() == Some(2) && said.contains("is not a number of jobs"),
        "{said}"
    );
    let age = s.fails(&["queue", "update", "mail", "--retention", "abc"]);
    assert!(age.contains("is not an age"), "{age}");
    let month = s.fails(&["queue", "update", "mail", "--retention", "1month"]);
    assert!(
        month.contains("give days, such as 30d; or forever"),
        "{month}"
    );
    let none = s.fails(&["queue", "update", "mail", "--retention", "0s"]);
    assert!(none.contains("would remove every finished job"), "{none}");
    s.ok(&["job", "enqueue", "Send", "--queue", "mail"]);
    assert!(
        s.fails(&["queue", "delete", "mail"])
            .contains("still holds 1 live job")
    );
    s.ok(&["job", "enqueue", "Send", "--queue", "mail"]);
    let lowered = s.outsourcer(&["queue", "update", "mail", "--limit", "1"]);
    let note = String::from_utf8_lossy(&lowered.stderr);
    assert!(
        lowered.status.success()
            && note.contains("holds 2 live jobs, more than its new limit of 1"),
        "a limit under the live jobs is said: {note}"
    );
    let forgotten = s.fails(&["job", "enqueue", r#"{"to": "ann"}"#]);
    assert!(forgotten.contains("give the class first"), "{forgotten}");
}

#[test]
fn workers_are_created_hired_locked_rotated_and_deleted() {
    let s = Scratch::new();
    s.ok(&["queue", "create", "stuff_to_do"]);
    let created = s.json(&["worker", "create", "w1"]);
    let (key, secret) = (
        created["consumer_key"].clone(),
        created["consumer_secret"].clone(),
    );
    assert!(key.as_str().is_some_and(|k| k.len() >= 16));
    assert!(secret.as_str().is_some_and(|k| k.len() >= 32));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.path("server.key")).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(
            mode.ok(),
            Some(0o600),
            "the server key is the owner's alone"
        );
    }
    let hired = s.json(&["queue", "hire", "stuff_to_do", "w1"]);
    assert_eq!(hired["queues"], json!(["stuff_to_do"]));
    let shown = s.json(&["worker", "show", "w1"]);
    assert_eq!(
        (&shown["queues"], &shown["live_processes"]),
        (&json!(["stuff_to_do"]), &json!(0))
    );
    assert!(s.ok(&["worker", "list"]).contains("live processes"));
    assert!(
        s.fails(&["queue", "hire", "nope", "w1"])
            .contains("unknown queue")
    );
    let said = s.fails(&["queue", "hire", "stuff_to_do", "ghost"]);
    assert!(
        said.contains("unknown worker \"ghost\" (outsourcer worker list shows them)"),
        "{said}"
    );
    let said = s.fails(&["worker", "show", "W1"]);
    assert!(
        said.contains("unknown worker \"W1\": did you mean w1?"),
        "{said}"
    );
    assert!(
        s.fails(&["worker", "create", "w1"])
            .contains("already exists")
    );
    assert_eq!(s.json(&["worker", "lock", "w1"])["locked"], true);
    assert_eq!(s.json(&["worker", "unlock", "w1"])["locked"], false);
    let rotated = s.json(&["worker", "rotate-secret", "w1"]);
    assert_eq!(rotated["consumer_key"], key);
    assert_ne!(rotated["consumer_secret"], secret);
    let fired = s.json(&["queue", "fire", "stuff_to_do", "w1"]);
    assert_eq!(fired["queues"], json!([]));
    let listed = s.json(&["worker", "list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert!(
        !listed.to_string().contains("consumer_secret"),
        "listings never show secrets"
    );
    s.ok(&["worker", "delete", "w1"]);
    assert!(
        s.fails(&["worker", "show", "w1"])
            .contains("unknown worker \"w1\"")
    );
}

#[test]
fn producers_get_grants_and_admins_exist() {
    let s = Scratch::new();
    s.ok(&["queue", "create", "orders"]);
    s.ok(&["producer", "create", "shop"]);
    let granted = s.json(&["producer", "grant", "shop", "orders"]);
    assert_eq!(granted["queues"], json!(["orders"]));
    let revoked = s.json(&["producer", "revoke", "shop", "orders"]);
    assert_eq!(revoked["queues"], json!([]));
    s.ok(&["worker", "create", "w"]);
    // Each role lists only its own verbs.
    let wrong = s.outsourcer(&["worker", "grant", "w", "orders"]);
    assert_eq!(wrong.status.code(), Some(2), "a usage error");
    let help = |role: &str| s.ok(&[role, "--help"]);
    let (worker, producer, admin) = (help("worker"), help("producer"), help("admin"));
    assert!(
        worker.contains("config") && !worker.contains("grant"),
        "{worker}"
    );
    assert!(!worker.contains("password"), "{worker}");
    assert!(
        producer.contains("grant") && !producer.contains("config"),
        "{producer}"
    );
    assert!(
        admin.contains("password") && !admin.contains("grant"),
        "{admin}"
    );
    let admin = s.json(&["admin", "create", "root"]);
    assert_eq!(admin["role"], "admin");
    assert_eq!(s.json(&["admin", "list"]).as_array().map(Vec::len), Some(1));
}

#[test]
fn admins_get_a_dashboard_password_from_standard_input() {
    let s = Scratch::new();
    s.ok(&["admin", "create", "root"]);
    let short = s.with_input(&["admin", "password", "root"], "short\n");
    assert_eq!(short.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 10 characters"));
    let set = s.with_input(&["admin", "password", "root"], "correct horse battery\n");
    let stderr = String::from_utf8_lossy(&set.stderr);
    assert!(set.status.success(), "{stderr}");
    let not_admin = s.with_input(&["worker", "password", "root"], "correct horse battery\n");
    assert_eq!(
        not_admin.status.code(),
        Some(2),
        "workers have no password verb"
    );
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let config = outsourced_backend_sql::SqlConfig::new(s.database());
        let sql = outsourced_backend_sql::SqlBackend::open(config).await;
        let directory = outsourced_backend_sql::Directory::new(sql.expect("open"));
        let hour = std::time::Duration::from_secs(3600);
        let login = directory.login("root", "correct horse battery", hour).await;
        assert_eq!(login.expect("the password works").session.admin, "root");
        assert!(directory.login("root", "short", hour).await.is_err());
    });
}

#[test]
fn worker_config_writes_every_detail_the_worker_needs() {
    let s = Scratch::new();
    s.ok(&["queue", "create", "stuff_to_do"]);
    let created = s.json(&["worker", "create", "w1"]);
    s.ok(&["queue", "hire", "stuff_to_do", "w1"]);
    let file = s.path("foo.yml");
    s.ok(&[
        "worker",
        "config",
        "w1",
        "-o",
        file.to_str().expect("a path"),
    ]);
    let text = std::fs::read_to_string(&file).expect("the config");
    let config = outsourced_worker::WorkerConfig::load(&file).expect("a valid config");
    assert_eq!(config.worker, "w1");
    assert!(
        config.queues.is_empty(),
        "no queue pinned: the worker works whatever it is hired for"
    );
    assert!(
        text.contains("# commands:"),
        "an example to fill in: {text}"
    );
    let expected = outsourced_worker::config::BackendConfig::Sql { url: s.database() };
    assert_eq!(config.backend, expected, "{text}");
    // Written again (after a rotated secret, say), it keeps what the admin added.
    let added = format!("{text}\nconcurrency: 7\ncommands:\n  Thumb:\n    program: /bin/true\n");
    std::fs::write(&file, added).expect("edit the config");
    let path = file.to_str().expect("a path");
    s.ok(&[
        "worker",
        "config",
        "w1",
        "-o",
        path,
        "--url",
        "https://h/outsourced",
    ]);
    let again = outsourced_worker::WorkerConfig::load(&file).expect("a valid config");
    assert_eq!(again.concurrency, Some(7));
    assert!(again.commands.contains_key("Thumb"));
    assert!(matches!(
        again.backend,
        outsourced_worker::config::BackendConfig::Http { .. }
    ));
    let over_http = s.ok(&[
        "worker",
        "config",
        "w1",
        "--url",
        "https://jobs.example.com/outsourced",
    ]);
    assert!(over_http.contains(created["consumer_key"].as_str().expect("a key")));
    assert!(over_http.contains(created["consumer_secret"].as_str().expect("a secret")));
    assert!(
        s.fails(&["worker", "config", "ghost"])
            .contains("unknown worker")
    );
}

#[test]
fn a_rotated_server_key_still_decrypts_every_secret() {
    let s = Scratch::new();
    let created = s.json(&["worker", "create", "w1"]);
    let current = s.path("server.key");
    let kept = std::fs::read(&current).expect("the current key");
    let refused = s.fails(&[
        "rotate-key",
        "--new-key-file",
        current.to_str().expect("a path"),
    ]);
    assert!(refused.contains("exists"), "{refused}");
    assert_eq!(std::fs::read(&current).expect("the key"), kept, "untouched");
    let new_key = s.path("new.key");
    s.ok(&[
        "rotate-key",
        "--new-key-file",
        new_key.to_str().expect("a path"),
    ]);
    std::fs::rename(&new_key, s.path("server.key")).expect("use the new key");
    let bare = s.outsourcer(&["worker", "config", "w1", "--url", "http://localhost:9"]);
    let note = String::from_utf8_lossy(&bare.stderr);
    assert!(
        bare.status.success() && note.contains("(then: http://localhost:9/outsourced)"),
        "a URL without the API's mount is said: {note}"
    );
    let config = s.ok(&[
        "worker",
        "config",
        "w1",
        "--url",
        "http://localhost:9/outsourced",
    ]);
    assert!(config.contains(created["consumer_secret"].as_str().expect("a secret")));
    let scheme = s.fails(&["worker", "config", "w1", "--url", "localhost:9/outsourced"]);
    assert!(scheme.contains("is not a server's URL"), "{scheme}");
    std::fs::write(
        s.path("server.key"),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
    )
    .expect("write");
    let wrong = s.fails(&["worker", "config", "w1", "--url", "http://localhost:9"]);
    assert!(
        wrong.contains("is not the one this database's consumer secrets were encrypted with"),
        "{wrong}"
    );
    // Nor is a secret written under the wrong key, nor a server started with it.
    let mixed = s.fails(&["worker", "create", "w2"]);
    assert!(mixed.contains("give that key's file"), "{mixed}");
    let served = s.fails(&["serve", "--bind", "127.0.0.1:0"]);
    assert!(served.contains("--key-file"), "{served}");
    let workers = s.json(&["worker", "list"]);
    assert_eq!(workers.as_array().map(Vec::len), Some(1), "{workers}");
}

#[test]
fn a_missing_server_key_is_not_made_anew_over_secrets_made_with_another() {
    let s = Scratch::new();
    s.ok(&["worker", "create", "w1"]);
    std::fs::rename(s.path("server.key"), s.path("kept.key")).expect("move the key");
    for args in [
        &["worker", "create", "w2"][..],
        &[
            "worker",
            "config",
            "w1",
            "--url",
            "http://localhost:9/outsourced",
        ],
        &["serve", "--bind", "127.0.0.1:0"],
    ] {
        let refused = s.fails(args);
        assert!(
            refused.contains("there is no server key at")
                && refused.contains("encrypted with another key"),
            "{args:?}: {refused}"
        );
        assert!(!s.path("server.key").exists(), "{args:?} left a new key");
    }
    // A lost key: a new secret under a new key is the way back.
    s.ok(&["worker", "rotate-secret", "w1"]);
    assert!(s.path("server.key").exists(), "a new key");
    s.ok(&["worker", "create", "w2"]);
    s.ok(&[
        "worker",
        "config",
        "w1",
        "--url",
        "http://localhost:9/outsourced",
    ]);
}

#[test]
fn jobs_are_enqueued_listed_shown_cancelled_and_counted() {
    let s = Scratch::new();
    s.ok(&["queue", "create", "mail", "--limit", "3"]);
    let job = s.json(&[
        "job",
        "enqueue",
        "SendMail",
        "--queue",
        "mail",
        "--args",
        r#"["bob@example.com"]"#,
        "--priority",
        "-5",
        "--owner",
        "User/42",
        "--max-attempts",
        "3",
    ]);
    assert_eq!(job["args"], json!(["bob@example.com"]));
    assert_eq!(
        (&job["priority"], &job["owner"]),
        (&json!(-5), &json!("User/42"))
    );
    assert_eq!(job["max_attempts"], 3);
    let later = s.json(&[
        "job", "enqueue", "SendMail", "--queue", "mail", "--run-at", "+5m",
    ]);
    assert_eq!(later["state"], "scheduled");
    let id = job["id"].as_i64().expect("an id").to_string();
    assert_eq!(s.json(&["job", "show", &id])["class"], "SendMail");
    let history = s.json(&["job", "history", &id]);
    assert_eq!(history[0]["reason"], "enqueued");
    let listed = s.json(&["job", "list", "--queue", "mail", "--state", "available"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    let owned = s.json(&["job", "list", "--owner", "User/42"]);
    assert_eq!(owned[0]["id"], job["id"]);
    let counts = s.json(&["job", "count", "--owner", "User/42"]);
    assert_eq!(
        (&counts["available"], &counts["failed"]),
        (&json!(1), &json!(0))
    );
    assert_eq!(s.json(&["job", "cancel", &id])["state"], "cancelled");
    let retried = s.json(&["job", "retry", &id]);
    assert_eq!(retried["state"], "available");
    // The arguments may follow the class, as a user types them first.
    let third = s.json(&[
        "job",
        "enqueue",
        "SendMail",
        r#"{"to": "ann"}"#,
        "-q",
        "mail",
    ]);
    assert_eq!(third["args"], json!({"to": "ann"}));
    // Errors: a full queue, an unknown queue, bad JSON, bad options, unknown jobs.
    assert!(
        s.fails(&["job", "enqueue", "X", "--queue", "mail"])
            .contains("is full")
    );
    assert!(
        s.fails(&["job", "enqueue", "X", "--queue", "nope"])
            .contains("unknown queue")
    );
    assert!(
        s.fails(&["job", "enqueue", "X", "--args", "{oops"])
            .contains("not valid JSON")
    );
    assert!(
        s.fails(&["job", "enqueue", "X", "{oops"])
            .contains("the arguments after the class are not valid JSON")
    );
    let both = s.outsourcer(&["job", "enqueue", "X", "[1]", "--args", "[2]"]);
    assert_eq!(both.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&both.stderr).contains("cannot be used with"));
    assert!(
        s.fails(&["job", "enqueue", "X", "--owner", "nobody"])
            .contains("TYPE/ID")
    );
    assert!(
        s.fails(&["job", "enqueue", "X", "--run-at", "soon"])
            .contains("--run-at")
    );
    assert!(
        s.fails(&["job", "show", "9999"])
            .contains("job 9999 not found")
    );
    assert!(
        s.fails(&["job", "list", "--state", "done"])
            .contains("unknown job state")
    );
    let running = s.fails(&["job", "retry", &id]);
    assert!(running.contains("cannot retry"), "{running}");
}

#[test]
fn jobs_are_cancelled_retried_and_deleted_several_at_once() {
    let s = Scratch::new();
    s.ok(&["queue", "create", "mail"]);
    let ids: Vec<String> = (0..3)
        .map(|_| s.json(&["job", "enqueue", "SendMail", "-q", "mail"])["id"].to_string())
        .collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let live = s.fails(&["job", "delete", ids[0]]);
    assert!(
        live.contains("is available") && live.contains("job cancel"),
        "{live}"
    );
    let cancelled = s.ok(&["job", "cancel", ids[0], ids[1], ids[2]]);
    assert_eq!(cancelled.matches("is cancelled").count(), 3, "{cancelled}");
    let retried = s.json(&["job", "retry", ids[0], ids[1]]);
    assert_eq!(retried[1]["state"], "available", "{retried}");
    s.ok(&["job", "cancel", ids[0], ids[1]]);
    // One of several fails: the others are still done, each said, and the command fails.
    let out = s.outsourcer(&["--json", "job", "delete", ids[0], "9999", ids[1]]);
    assert_eq!(out.status.code(), Some(1));
    let listed: Value = serde_json::from_slice(&out.stdout).expect("a JSON list");
    assert_eq!(
        (&listed[0]["deleted"], &listed[2]["deleted"]),
        (&json!(true), &json!(true)),
        "{listed}"
    );
    assert_eq!(listed[1]["error"]["code"], "not_found", "{listed}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("1 of 3 jobs were not deleted"), "{said}");
    assert!(s.fails(&["job", "history", ids[0]]).contains("not found"));
    // The job left alone keeps its history.
    let kept = s.json(&["job", "history", ids[2]]);
    assert_eq!(kept[0]["reason"], "enqueued", "{kept}");
    let text = s.outsourcer(&["job", "delete", ids[2], "9999"]);
    let said = String::from_utf8_lossy(&text.stderr);
    assert!(said.contains("outsourcer: job 9999 not found"), "{said}");
    assert!(String::from_utf8_lossy(&text.stdout).contains("deleted job"));
    // An id given twice is one job: one refusal, said once.
    let twice = s.fails(&["job", "delete", ids[2], ids[2]]);
    assert!(twice.contains("not found"), "{twice}");
}

#[test]
fn jobs_are_searched_by_enqueue_time_and_paged_newest_first() {
    let s = Scratch::new();
    s.ok(&["migrate"]);
    let ids: Vec<Value> = (0..5)
        .map(|_| s.json(&["job", "enqueue", "Find"])["id"].clone())
        .collect();
    let listed = |args: &[&str]| -> Vec<Value> {
        let mut all = vec!["job", "list"];
        all.extend_from_slice(args);
        let jobs = s.json(&all);
        let jobs = jobs.as_array().expect("a list");
        jobs.iter().map(|job| job["id"].clone()).collect()
    };
    let newest_first: Vec<Value> = ids.iter().rev().cloned().collect();
    assert_eq!(listed(&["--since", "-1h"]), newest_first);
    assert!(listed(&["--until", "-1h"]).is_empty());
    assert!(listed(&["--since", "+1h"]).is_empty());
    let first = listed(&["--limit", "2"]);
    assert_eq!(first, newest_first[..2]);
    let cursor = first[1].as_i64().expect("an id").to_string();
    let second = listed(&["--limit", "2", "--before", &cursor]);
    assert_eq!(second, newest_first[2..4]);
    assert!(
        s.fails(&["job", "list", "--since", "yesterday"])
            .contains("--since")
    );
}

#[test]
fn jobs_repeat_on_an_interval_or_a_cron_schedule() {
    let s = Scratch::new();
    s.ok(&["migrate"]);
    let daily = s.json(&["job", "enqueue", "Report", "--cron", "0 3 * * *"]);
    assert_eq!(daily["repeat"], "cron:0 3 * * *");
    let often = s.json(&["job", "enqueue", "Poll", "--every", "5m"]);
    assert_eq!(often["repeat"], "every:300000");
    let id = often["id"].to_string();
    let shown = s.ok(&["job", "show", &id]);
    assert!(
        shown.contains("repeat: every 5m"),
        "in words, not ms: {shown}"
    );
    // An interval under a millisecond is refused, and nothing is stored.
    let refused = s.fails(&["job", "enqueue", "Poll", "--every", "0s"]);
    assert!(
        refused.contains("--every: \"0s\" repeats at once; give at least 1ms"),
        "{refused}"
    );
    let months = s.fails(&["job", "enqueue", "Poll", "--every", "1M"]);
    assert!(months.contains("a capital M reads as months"), "{months}");
    let cron = s.fails(&["job", "enqueue", "Poll", "--every", "0 * * * *"]);
    assert!(cron.contains("a cron schedule goes in --cron"), "{cron}");
    let polls = s.json(&["job", "list", "--class", "Poll"]);
    assert_eq!(polls.as_array().map(Vec::len), Some(1), "{polls}");
    let words = s.fails(&["job", "enqueue", "Report", "--cron", "every day"]);
    assert!(
        words.contains("not a cron schedule") && words.contains("\"0 3 * * *\""),
        "what one looks like: {words}"
    );
    let path = s.path("repeats.jsonl");
    let lines = concat!(
        "{\"class\": \"A\", \"cron\": \"*/5 * * * *\"}\n",
        "{\"class\": \"B\", \"every\": \"1h\", \"unique_key\": \"hourly-b\"}\n",
    );
    std::fs::write(&path, lines).expect("write");
    let file = path.to_str().expect("a path");
    // Enqueued twice, as a file of schedules is after an edit: the keyed line adds no copy.
    for _ in 0..2 {
        let out = s.outsourcer(&["job", "enqueue", "--from", file]);
        assert!(out.status.success());
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains("note: line 1 repeats without a `unique_key`"),
            "{said}"
        );
    }
    let listed = s.json(&["job", "list", "--class", "A"]);
    assert_eq!(listed[0]["repeat"], "cron:*/5 * * * *");
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    let keyed = s.json(&["job", "list", "--class", "B"]);
    assert_eq!(keyed.as_array().map(Vec::len), Some(1), "{keyed}");
}

#[test]
fn queues_keep_finished_jobs_for_their_retention_and_prune_removes_the_rest() {
    let s = Scratch::new();
    let created = s.json(&["queue", "create", "mail", "--retention", "1s"]);
    assert_eq!(created["retention"], "1s");
    let updated = s.json(&["queue", "update", "mail", "--retention", "30days"]);
    assert_eq!(updated["retention"], "30d");
    let forever = s.json(&["queue", "update", "mail", "--retention", "forever"]);
    assert_eq!(forever["retention"], "forever");
    assert!(
        s.fails(&["queue", "update", "mail", "--retention", "soon"])
            .contains("--retention")
    );
    // A cancelled job finished just now: a retention of 0s has passed for it at once.
    let job = s.json(&["job", "enqueue", "SendMail", "--queue", "mail"]);
    let id = job["id"].as_i64().expect("an id").to_string();
    s.json(&["job", "cancel", &id]);
    let live = s.json(&["job", "enqueue", "SendMail", "--queue", "mail"]);
    assert_eq!(s.json(&["prune"])["pruned"], 0, "kept forever");
    s.ok(&["queue", "update", "mail", "--retention", "1ms"]);
    assert_eq!(s.json(&["prune", "--batch", "1"])["pruned"], 1);
    assert!(s.fails(&["job", "show", &id]).contains("not found"));
    let live = live["id"].as_i64().expect("an id").to_string();
    assert_eq!(s.json(&["job", "show", &live])["state"], "available");
    assert!(s.ok(&["queue", "list"]).contains("retention"));
}

#[test]
fn jobs_carry_an_attachment_in_and_out() {
    let s = Scratch::new();
    s.ok(&["migrate"]);
    let bytes: Vec<u8> = (0..1_500_000u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(s.path("scan.pdf"), &bytes).expect("write the file");
    let job = s.json(&[
        "job",
        "enqueue",
        "Scan",
        "--attach",
        "scan.pdf",
        "--attach-type",
        "application/pdf",
    ]);
    let attachment = &job["attachment"];
    assert_eq!(
        (&attachment["file_name"], &attachment["content_type"]),
        (&json!("scan.pdf"), &json!("application/pdf"))
    );
    assert_eq!(attachment["size"], bytes.len());
    let id = job["id"].as_i64().expect("an id").to_string();
    let saved = s.json(&["job", "attachment", &id, "-o", "copy.pdf"]);
    assert_eq!(saved["sha256"], attachment["sha256"]);
    let copy = std::fs::read(s.path("copy.pdf")).expect("the copy");
    assert!(copy == bytes, "the same bytes came back");
    for to_stdout in [&["-o", "-"][..], &["-"]] {
        let out = s.outsourcer(&[&["job", "attachment", &id][..], to_stdout].concat());
        assert!(
            out.status.success() && out.stdout == bytes,
            "to standard output with {to_stdout:?}"
        );
    }
    // Attach later, before the job runs; not twice, not to a job without one.
    std::fs::write(s.path("note.txt"), "hello").expect("write the file");
    let later = s.json(&["job", "enqueue", "Read", "--run-at", "+1h"]);
    let later = later["id"].as_i64().expect("an id").to_string();
    let attached = s.json(&["job", "attach", &later, "note.txt"]);
    assert_eq!(attached["size"], 5);
    assert!(
        s.fails(&["job", "attach", &later, "note.txt"])
            .contains("already has an attachment")
    );
    let plain = s.json(&["job", "enqueue", "Plain"]);
    let plain = plain["id"].as_i64().expect("an id").to_string();
    assert!(
        s.fails(&["job", "attachment", &plain, "-o", "x"])
            .contains("has no attachment")
    );
    assert!(
        s.fails(&["job", "enqueue", "Scan", "--attach", "missing.pdf"])
            .contains("missing.pdf")
    );
}

#[test]
fn a_jsonl_file_is_enqueued_all_checked_first() {
    let s = Scratch::new();
    s.ok(&["queue", "create", "bulk", "--unlimited"]);
    let lines: Vec<String> = (0..2500)
        .map(|i| {
            json!({"class": "Import", "args": [i], "queue": "bulk", "owner": "Batch/7"}).to_string()
        })
        .collect();
    std::fs::write(s.path("jobs.jsonl"), lines.join("\n")).expect("write");
    let done = s.json(&["job", "enqueue", "--from", "jobs.jsonl"]);
    assert_eq!(done["enqueued"], 2500);
    let ids = done["ids"].as_array().expect("the new jobs' ids");
    let first = ids[0].as_i64().expect("an id").to_string();
    assert_eq!(ids.len(), 2500);
    assert_eq!(
        s.json(&["job", "show", &first])["args"],
        json!([0]),
        "in line order"
    );
    assert_eq!(
        s.json(&["job", "count", "--owner", "Batch/7"])["available"],
        2500
    );
    std::fs::write(
        s.path("bad.jsonl"),
        "{\"class\": \"A\"}\n{\"clas\": \"B\"}\n",
    )
    .expect("write");
    let error = s.fails(&["job", "enqueue", "--from", "bad.jsonl"]);
    assert!(
        error.contains("bad.jsonl line 2, column ") && error.contains("unknown field"),
        "{error}"
    );
    assert!(!error.contains("line 1"), "the line said once: {error}");
    // A queue that does not exist is named with its line, and the one meant.
    let typo = [
        json!({"class": "A", "queue": "bulk"}),
        json!({"class": "B", "queue": "bulc"}),
    ];
    let typo: Vec<String> = typo.iter().map(Value::to_string).collect();
    std::fs::write(s.path("typo.jsonl"), typo.join("\n")).expect("write");
    let error = s.fails(&["job", "enqueue", "--from", "typo.jsonl"]);
    assert!(
        error.contains("typo.jsonl line 2: unknown queue \"bulc\": did you mean bulk?"),
        "{error}"
    );
    // So is a job to wait for that does not exist, and a line that is not an object.
    let waits = [
        json!({"class": "A", "queue": "bulk"}),
        json!({"class": "B", "queue": "bulk", "depends_on": [999999]}),
    ];
    let waits: Vec<String> = waits.iter().map(Value::to_string).collect();
    std::fs::write(s.path("waits.jsonl"), waits.join("\n")).expect("write");
    let error = s.fails(&["job", "enqueue", "--from", "waits.jsonl"]);
    assert!(
        error
            .contains("waits.jsonl line 2: job 999999, which this line depends on, does not exist"),
        "{error}"
    );
    std::fs::write(s.path("array.jsonl"), "[\"A\"]\n").expect("write");
    let error = s.fails(&["job", "enqueue", "--from", "array.jsonl"]);
    assert!(
        error.contains("array.jsonl line 1: each line is one JSON object"),
        "{error}"
    );
    // A line's fields are named as the file spells them, not as the flags do.
    let when = json!({"class": "A", "queue": "bulk", "run_at": "soon"}).to_string();
    std::fs::write(s.path("when.jsonl"), when).expect("write");
    let error = s.fails(&["job", "enqueue", "--from", "when.jsonl"]);
    assert!(
        error.contains("when.jsonl line 1: `run_at` \"soon\"") && !error.contains("--run-at"),
        "{error}"
    );
    // Text names the jobs it stored.
    std::fs::write(s.path("two.jsonl"), typo[0].clone() + "\n" + &typo[0]).expect("write");
    let said = s.ok(&["job", "enqueue", "--from", "two.jsonl"]);
    assert!(
        said.contains("enqueued 2 jobs from two.jsonl: jobs "),
        "{said}"
    );
    assert_eq!(
        s.json(&["job", "count", "--queue", "default"])["available"],
        0,
        "nothing stored"
    );
}

#[test]
fn migrate_and_usage_errors() {
    let s = Scratch::new();
    assert!(s.ok(&["migrate"]).contains("up to date"));
    let usage = s.outsourcer(&["queue", "frobnicate"]);
    assert_eq!(usage.status.code(), Some(2), "clap's usage error");
    // The help names the variables, not their values: a database URL may hold a password.
    let help = s.outsourcer(&["serve", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("OUTSOURCED_DATABASE_URL"), "{help}");
    assert!(!help.contains(&s.database()), "{help}");
    let nowhere = format!("sqlite://{}", s.path("missing/o.db").display());
    let folder = s.fails(&["--database", &nowhere, "migrate"]);
    assert!(folder.contains("its folder"), "{folder}");
    let port = s.fails(&["serve", "--bind", "localhost"]);
    assert!(port.contains("has no port"), "{port}");
    let host = s.fails(&["serve", "--bind", "18102"]);
    assert!(host.contains("give 127.0.0.1:18102"), "{host}");
    // With --json a failure is one JSON object, for the script that asked for JSON.
    let json_error = |args: &[&str]| {
        let out = s.outsourcer(args);
        assert_eq!(out.status.code(), Some(1), "{args:?} fails");
        let said: Value = serde_json::from_slice(&out.stderr).expect("a JSON error");
        said
    };
    let missing = json_error(&["--json", "job", "show", "999"]);
    assert_eq!(missing["error"]["code"], "not_found", "{missing}");
    assert_eq!(missing["error"]["job_id"], 999, "{missing}");
    let usage = s.outsourcer(&["--json", "quue", "list"]);
    assert_eq!(usage.status.code(), Some(2), "clap's usage error");
    let usage: Value = serde_json::from_slice(&usage.stderr).expect("a JSON usage error");
    assert_eq!(usage["error"]["code"], "usage", "{usage}");
    assert!(
        usage["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("quue")),
        "{usage}"
    );
    let typo = json_error(&["--json", "queue", "show", "defualt"]);
    assert!(
        typo["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("did you mean default?")),
        "{typo}"
    );
    assert_eq!(typo["error"]["code"], "unknown_queue", "{typo}");
    assert_eq!(typo["error"]["queue"], "defualt", "{typo}");
    let worker = json_error(&["--json", "worker", "show", "nobody"]);
    assert_eq!(worker["error"]["code"], "unknown", "{worker}");
    assert_eq!(worker["error"]["kind"], "worker", "{worker}");
}

#[test]
fn the_demo_runs_the_whole_flow() {
    let s = Scratch::new();
    let out = s.ok(&["demo", "--jobs", "300"]);
    assert!(out.contains("succeeded"), "{out}");
    assert!(out.contains("worked them off"), "{out}");
    assert!(
        out.contains("the job that failed for good: Demo::Report"),
        "{out}"
    );
    assert!(
        out.contains("lease") || out.contains("retry_scheduled"),
        "{out}"
    );
}

#[test]
fn a_unique_key_enqueues_once_and_says_who_holds_it() {
    let s = Scratch::new();
    s.ok(&["queue", "create", "mail"]);
    let unique = [
        "job",
        "enqueue",
        "Digest",
        "-q",
        "mail",
        "--unique-key",
        "user-7",
    ];
    let first = s.json(&unique);
    assert_eq!(first["duplicate"], false);
    assert_eq!(first["unique_key"], "user-7");
    let again = s.json(&unique);
    assert_eq!(
        (again["id"].clone(), again["duplicate"].clone()),
        (first["id"].clone(), json!(true))
    );
    let said = s.ok(&unique);
    let id = first["id"].as_i64().expect("an id");
    assert!(
        said.starts_with(&format!(
            "job {id} holds unique key user-7: nothing enqueued"
        )),
        "{said}"
    );
    let refused = s.fails(&[&unique[..], &["--on-duplicate", "refuse"]].concat());
    assert!(refused.contains(&format!("taken by job {id}")), "{refused}");
    // Debounce: the waiting holder takes the duplicate's arguments.
    let replace = ["--on-duplicate", "replace", "--args", "[7]"];
    let said = s.ok(&[&unique[..], &replace].concat());
    assert!(
        said.starts_with(&format!(
            "job {id} holds unique key user-7: nothing enqueued; it has these arguments and this run time now"
        )),
        "{said}"
    );
    let shown = s.json(&["job", "show", &id.to_string()]);
    assert_eq!(shown["args"], json!([7]), "{shown}");
    let listed = s.json(&["job", "list", "--unique-key", "user-7"]);
    assert_eq!(listed[0]["id"], json!(id), "{listed}");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    // With a file: a duplicate keeps no bytes, and says so.
    std::fs::write(s.path("scan.pdf"), b"pages").expect("write the file");
    let attached = [&unique[..], &["--attach", "scan.pdf"]].concat();
    let said = s.ok(&attached);
    assert!(
        said.starts_with(&format!(
            "job {id} holds unique key user-7: nothing enqueued; the file was not kept"
        )),
        "{said}"
    );
    // A file's lines: duplicates are counted as such, not as enqueued.
    let lines = [
        json!({"class": "Digest", "queue": "mail", "unique_key": "user-7"}),
        json!({"class": "Digest", "queue": "mail", "unique_key": "user-8"}),
        json!({"class": "Digest", "queue": "mail", "unique_key": "user-8"}),
    ];
    let lines: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(s.path("keyed.jsonl"), lines.join("\n")).expect("write");
    let done = s.json(&["job", "enqueue", "--from", "keyed.jsonl"]);
    assert_eq!(
        (&done["enqueued"], &done["duplicates"]),
        (&json!(1), &json!(2))
    );
    let ids = done["ids"].as_array().expect("each line's job");
    assert_eq!(ids.len(), 3);
    assert_eq!(
        ids[1], ids[2],
        "both lines of user-8 answered with its one job"
    );
    let said = s.ok(&["job", "enqueue", "--from", "keyed.jsonl"]);
    assert!(
        said.contains("enqueued 0 jobs") && said.contains("3 lines were duplicates"),
        "{said}"
    );
    let mixed = s.outsourcer(&[
        "job",
        "enqueue",
        "--from",
        "keyed.jsonl",
        "--unique-key",
        "k",
    ]);
    let said = String::from_utf8_lossy(&mixed.stderr);
    assert!(
        !mixed.status.success() && said.contains("cannot be used with"),
        "{said}"
    );
    // A finished holder kept by its period is not replaced, and the reason is given.
    let kept = [
        "job",
        "enqueue",
        "Digest",
        "--unique-key",
        "k",
        "--unique-for",
        "1h",
    ];
    let held = s.json(&kept)["id"].as_i64().expect("an id").to_string();
    s.ok(&["job", "cancel", &held]);
    let said = s.ok(&[&kept[..], &replace].concat());
    assert!(
        said.contains("nothing enqueued; it is cancelled, so it keeps its arguments"),
        "{said}"
    );
    let other = s.outsourcer(&["job", "enqueue", "Digest", "--unique-for", "1h"]);
    let said = String::from_utf8_lossy(&other.stderr);
    assert!(
        !other.status.success() && said.contains("--unique-key"),
        "{said}"
    );
    assert_eq!(s.json(&["job", "count", "--queue", "mail"])["available"], 2);
    let said = s.fails(&["job", "list", "--queue", "mial"]);
    assert!(
        said.contains("unknown queue \"mial\": did you mean mail?"),
        "{said}"
    );
    let said = s.fails(&["job", "enqueue", "Digest", "--queue", "nothing-like-it"]);
    assert!(
        said.contains("(outsourcer queue list shows them)"),
        "{said}"
    );
}

#[test]
fn queues_take_run_limits_and_say_what_holds_a_job_back() {
    let s = Scratch::new();
    let created = s.json(&[
        "queue",
        "create",
        "partner",
        "--max-running",
        "1",
        "--rate",
        "100/1m",
        "--max-running-per-key",
        "1",
        "--rate-per-key",
        "10/1m",
    ]);
    assert_eq!(
        created["limits"],
        json!({"max_running": 1, "rate": "100/1m", "max_running_per_key": 1, "rate_per_key": "10/1m"})
    );
    let typo = s.fails(&["queue", "update", "partner", "--rate-per-key", "10"]);
    assert!(
        typo.contains("--rate-per-key") && typo.contains("100/1m"),
        "{typo}"
    );
    let typo = s.fails(&["queue", "create", "other", "--rate", "100/minit"]);
    assert!(
        typo.contains("\"minit\" is not a unit of time") && typo.contains("100/1m"),
        "{typo}"
    );
    assert!(
        s.fails(&["queue", "show", "other"])
            .contains("unknown queue"),
        "a refused limit creates nothing"
    );
    let zero = s.fails(&["queue", "update", "partner", "--max-running", "0"]);
    assert!(zero.contains("1 or more"), "{zero}");
    let negative = s.fails(&["queue", "update", "partner", "--max-running", "-1"]);
    assert!(negative.contains("is not a count"), "{negative}");
    // The issue's own name for the limit per key, a unit alone as one of it, `None` as `none`.
    let other = s.json(&[
        "queue",
        "create",
        "other",
        "--key-limit",
        "2",
        "--rate",
        "6/minute",
    ]);
    assert_eq!(
        other["limits"],
        json!({"max_running": null, "rate": "6/1m", "max_running_per_key": 2, "rate_per_key": null})
    );
    let cleared = s.json(&[
        "queue",
        "update",
        "other",
        "--key-limit",
        "None",
        "--rate",
        "NONE",
    ]);
    assert_eq!(cleared["limits"]["max_running_per_key"], json!(null));
    assert_eq!(cleared["limits"]["rate"], json!(null));
    let acme_job = || {
        s.json(&[
            "job",
            "enqueue",
            "Call",
            "-q",
            "partner",
            "--concurrency-key",
            "acme",
        ])
    };
    let job = acme_job();
    assert_eq!(job["concurrency_key"], "acme");
    let unlimited = s.outsourcer(&["job", "enqueue", "Call", "--concurrency-key", "solo"]);
    let note = String::from_utf8_lossy(&unlimited.stderr);
    assert!(
        unlimited.status.success() && note.contains("queue default limits no concurrency key"),
        "a key that holds nothing back is said: {note}"
    );
    s.ok(&["queue", "create", "keyed", "--max-running-per-key", "1"]);
    let keyless = s.outsourcer(&["job", "enqueue", "Call", "-q", "keyed"]);
    let note = String::from_utf8_lossy(&keyless.stderr);
    assert!(
        keyless.status.success() && note.contains("this job has none: no key's limit holds it"),
        "a job without a key in a queue that limits keys is said: {note}"
    );
    let by_key = s.json(&["job", "list", "--concurrency-key", "acme"]);
    assert_eq!(by_key[0]["id"], job["id"], "{by_key}");
    let table = s.ok(&["job", "list", "-q", "partner"]);
    assert!(
        table.contains("concurrency key") && table.contains("acme"),
        "a listing with keys shows them: {table}"
    );
    let plain = s.ok(&["job", "list", "--concurrency-key", "nobody"]);
    assert!(!plain.contains("concurrency key"), "{plain}");
    let listed = s.ok(&["queue", "list"]);
    assert!(
        listed.contains("0 of 1 running, 100/1m starts, 1 per key, 10/1m starts per key"),
        "{listed}"
    );
    let id = job["id"].as_i64().expect("an id").to_string();
    let shown = s.ok(&["job", "show", &id]);
    assert!(
        shown.contains("it may be held back by: concurrency key acme's rate (at most 10 starts per 1m, evenly spaced)")
            && !shown.contains("partner's rate"),
        "a rate that has started nothing holds nothing back: {shown}"
    );
    // An update says what it changed; a paused queue is what holds its jobs.
    let said = s.ok(&[
        "queue", "update", "partner", "--rate", "4/1h 30m", "--pause",
    ]);
    assert!(
        said.contains("updated queue partner: paused, rate 100/1m -> 4/90m"),
        "{said}"
    );
    let said = s.ok(&["queue", "update", "partner", "--rate", "4/90m"]);
    assert!(said.contains("queue partner unchanged"), "{said}");
    let shown = s.ok(&["job", "show", &id]);
    assert!(shown.contains("queue partner is paused"), "{shown}");
    s.ok(&["queue", "update", "partner", "--resume", "--rate", "100/1m"]);
    let idle = s.ok(&["queue", "show", "partner"]);
    assert!(idle.contains("no key runs a job now"), "{idle}");
    let second = acme_job();
    // A worker next to the database starts acme's job: `queue show` says which key runs.
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let start_one = || {
        runtime.block_on(async {
            use outsourced_core::Backend;
            let config = outsourced_backend_sql::SqlConfig::new(s.database());
            let sql = outsourced_backend_sql::SqlBackend::open(config)
                .await
                .expect("open");
            let me = outsourced_core::WorkerInstance::new("w1", "i");
            let options = outsourced_core::ReserveOptions::up_to(1).queues(["partner"]);
            assert_eq!(sql.reserve(&me, options).await.expect("reserve").len(), 1);
        })
    };
    start_one();
    let busy = s.ok(&["queue", "show", "partner"]);
    assert!(
        busy.contains("running per key (at most 1 each): acme 1 (1 key runs jobs; 1 at the limit)"),
        "{busy}"
    );
    let second = second["id"].as_i64().expect("an id").to_string();
    let held = s.ok(&["job", "show", &second]);
    assert!(
        held.contains("concurrency key acme runs as many of its jobs as the queue allows (1 of 1)"),
        "a key at its limit is said to hold its next job: {held}"
    );
    let keys = s.json(&["queue", "show", "partner"]);
    assert_eq!(
        keys["running_per_key"],
        json!([{"key": "acme", "running": 1}])
    );
    let lifted = s.json(&[
        "queue",
        "update",
        "partner",
        "--max-running",
        "none",
        "--rate",
        "none",
        "--max-running-per-key",
        "none",
        "--rate-per-key",
        "none",
    ]);
    assert_eq!(
        lifted["limits"],
        json!({"max_running": null, "rate": null, "max_running_per_key": null, "rate_per_key": null})
    );
    // A limit per key that the queue's own makes idle is said.
    let idle = s.outsourcer(&[
        "queue",
        "create",
        "idle",
        "--max-running",
        "1",
        "--key-limit",
        "5",
    ]);
    let note = String::from_utf8_lossy(&idle.stderr);
    assert!(
        idle.status.success()
            && note.contains("queue idle's max_running_per_key 5 never holds a job back: no more than 1 run at once in all"),
        "{note}"
    );
    // A limit set below what runs says so.
    start_one();
    let lowered = s.outsourcer(&["queue", "update", "partner", "--max-running", "1"]);
    let note = String::from_utf8_lossy(&lowered.stderr);
    assert!(
        lowered.status.success()
            && note
                .contains("2 of queue partner's jobs run now, more than its new max_running of 1"),
        "{note}"
    );
}

#[test]
fn jobs_wait_for_others_and_batches_run_their_callback_from_the_cli() {
    let s = Scratch::new();
    s.ok(&["queue", "create", "scans"]);
    let scan = s.json(&["job", "enqueue", "Scan", "-q", "scans"]);
    let scan = scan["id"].as_i64().expect("an id").to_string();
    let said = s.ok(&[
        "job",
        "enqueue",
        "Report",
        "-q",
        "scans",
        "--depends-on",
        &scan,
    ]);
    assert!(said.contains("pending"), "{said}");
    let report = s.json(&["job", "list", "--dependants-of", &scan]);
    let report = report[0]["id"].as_i64().expect("the dependant").to_string();
    let shown = s.ok(&["job", "show", &report]);
    assert!(
        shown.contains(&format!(
            "dependencies: {scan} (waiting for 1 of them to succeed)"
        )),
        "{shown}"
    );
    let shown = s.ok(&["job", "show", &scan]);
    assert!(shown.contains(&format!("dependants: {report}")), "{shown}");
    let listed = s.json(&["job", "list", "--state", "pending"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    // Mistakes: a job that does not exist, a batch that does not exist.
    let said = s.fails(&[
        "job",
        "enqueue",
        "Report",
        "-q",
        "scans",
        "--depends-on",
        "999",
    ]);
    assert!(
        said.contains("job 999, which this job would depend on, does not exist"),
        "{said}"
    );
    let said = s.fails(&["batch", "show", "42"]);
    assert!(said.contains("batch 42 not found"), "{said}");

    let said = s.fails(&[
        "batch",
        "open",
        "--callback",
        "Notify",
        "--callback-queue",
        "scan",
    ]);
    assert!(
        said.contains("the callback's queue \"scan\" does not exist"),
        "{said}"
    );
    // A batch: its callback is stored pending; the close ends it once its job has ended.
    let said = s.ok(&[
        "batch",
        "open",
        "--callback",
        "Notify",
        "--callback-queue",
        "scans",
    ]);
    assert!(
        said.contains("opened batch 1") && said.contains("batch close 1"),
        "{said}"
    );
    let part = s.json(&["job", "enqueue", "Part", "-q", "scans", "--batch", "1"]);
    assert_eq!(part["batch"], 1);
    let part = part["id"].as_i64().expect("an id").to_string();
    let said = s.ok(&["batch", "close", "1"]);
    assert!(said.contains("runs once its last job has ended"), "{said}");
    // Closed: only its own jobs may add to it.
    let said = s.fails(&["job", "enqueue", "Late", "-q", "scans", "--batch", "1"]);
    assert!(said.contains("batch 1 is closed"), "{said}");
    let said = s.ok(&["job", "cancel", &part]);
    assert!(said.contains("cancelled"), "{said}");
    let batch = s.json(&["batch", "show", "1"]);
    assert_eq!(
        (batch["cancelled"].as_u64(), batch["live"].as_u64()),
        (Some(1), Some(0))
    );
    let callback = batch["callback"]
        .as_i64()
        .expect("its callback")
        .to_string();
    let callback = s.json(&["job", "show", &callback]);
    assert_eq!(callback["state"], "available");
    assert_eq!(callback["args"]["batch"]["cancelled"], 1);
    let shown = s.ok(&["batch", "show", "1"]);
    assert!(
        shown.contains("1 (0 succeeded, 0 failed, 1 cancelled, 0 not ended)"),
        "{shown}"
    );
}
