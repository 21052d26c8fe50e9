//! The dashboard end to end, in headless Chromium: log in, see the demo's queues, open the job
//! that failed for good and its history, refuse an action without the CSRF token, retry the
//! job, run a worker whose handler now succeeds, and watch the page show it succeed. Each step
//! saves a screenshot under `target/dashboard-e2e/`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use outsourced_backend_sql::{Directory, Role, ServerKey, SqlBackend};
use outsourced_core::{Actor, Backend, Job, JobContext, JobError, JobId, JobState, Registry};
use outsourced_server::ServerConfig;
use outsourced_worker::{Shutdown, Stage, Worker, WorkerOptions};
use serde::{Deserialize, Serialize};

use crate::bins::{Scratch, target_dir};
use crate::http::RunningServer;
use crate::support::test_config;

const PASSWORD: &str = "correct horse battery";

/// The demo's report job, now that its data source is back: it succeeds.
#[derive(Serialize, Deserialize)]
struct Report {
    source: String,
}

#[async_trait]
impl Job for Report {
    const CLASS: &'static str = "Demo::Report";

    async fn perform(&self, ctx: &JobContext) -> Result<(), JobError> {
        // Mailed once the report is stored: a follow-up, which the page links to.
        let mail = outsourced_core::NewJob::new("Demo::Mail", serde_json::json!({"to": "ops"}));
        ctx.follow_up(mail.queue("demo"))?;
        ctx.set_result(serde_json::json!({"rows": 1234, "source": self.source}))
    }
}

/// Chromium's path: `OUTSOURCED_TEST_CHROMIUM`, else `chromium` on the PATH. Missing, the test
/// is skipped loudly, except under `CI=true` where it fails.
fn chromium() -> Option<PathBuf> {
    let configured = std::env::var_os("OUTSOURCED_TEST_CHROMIUM").map(PathBuf::from);
    let found = configured.or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("chromium"))
                .find(|path| path.is_file())
        })
    });
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|ci| ci == "true");
        assert!(!ci, "CI=true needs chromium (apt-get install chromium)");
        eprintln!("SKIPPED: the dashboard's end-to-end test needs chromium on the PATH");
    }
    found
}

/// Runs browser steps (a blocking API) without stalling the server's runtime.
fn browse<T>(step: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(step)
}

struct Shots {
    dir: PathBuf,
}

impl Shots {
    fn new() -> Self {
        let dir = target_dir().join("dashboard-e2e");
        std::fs::create_dir_all(&dir).expect("a screenshot directory");
        Shots { dir }
    }

    fn take(&self, tab: &Tab, name: &str) {
        let png = tab
            .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
            .expect("a screenshot");
        let path = self.dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        println!("screenshot: {}", path.display());
    }
}

fn text_of(tab: &Tab, selector: &str) -> String {
    tab.wait_for_element(selector)
        .and_then(|e| e.get_inner_text())
        .unwrap_or_else(|e| panic!("no {selector} on {}: {e}", tab.get_url()))
}

/// The demo's database, kept: `outsourcer demo --keep` in a scratch directory.
fn demo_database(scratch: &Scratch) -> String {
    // Backtraces captured whatever the caller's environment says: the job page shows one.
    let out = scratch
        .command(&["demo", "--jobs", "300", "--workers", "1", "--keep"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run the demo");
    assert!(out.status.success(), "{out:?}");
    let out = String::from_utf8_lossy(&out.stdout);
    let kept = out
        .lines()
        .find_map(|line| line.strip_prefix("kept the demo's database: "))
        .unwrap_or_else(|| panic!("the demo names its database: {out}"));
    format!("sqlite://{}", kept.trim())
}

/// A server over the demo's database with an admin `root` who has a dashboard password.
async fn dashboard_server(url: &str) -> RunningServer {
    let sql = SqlBackend::open(test_config(url)).await.expect("open");
    let directory = Directory::new(sql.clone());
    let key = ServerKey::generate();
    directory
        .create(&key, Role::Admin, "root")
        .await
        .expect("root");
    directory
        .set_password("root", PASSWORD)
        .await
        .expect("password");
    let limits = outsourced_core::QueueUpdate {
        max_running: Some(Some(5)),
        rate: Some(Some("100/1m".parse().expect("a rate"))),
        rate_per_key: Some(Some("10/1m".parse().expect("a rate"))),
        ..Default::default()
    };
    let admin = outsourced_core::Actor::Admin("root".into());
    let limited = outsourced_core::Backend::update_queue(&sql, &admin, "demo", limits).await;
    limited.expect("run limits on the demo's queue");
    RunningServer::start(sql, ServerConfig::default()).await
}

/// Logs in through the form and returns the overview's queue table.
fn log_in(tab: &Tab, shots: &Shots, dashboard: &str) -> String {
    tab.navigate_to(dashboard).expect("navigate");
    tab.wait_for_element("#password").expect("the login form");
    assert!(
        tab.get_url().ends_with("/dashboard/login"),
        "{}",
        tab.get_url()
    );
    shots.take(tab, "01-login");
    let type_into = |selector: &str, text: &str| {
        let field = tab.wait_for_element(selector).expect("a field");
        field.click().expect("focus");
        tab.type_str(text).expect("type");
    };
    type_into("#name", "root");
    type_into("#password", PASSWORD);
    tab.wait_for_element("#log-in")
        .expect("a button")
        .click()
        .expect("log in");
    let queues = text_of(tab, "#queues");
    shots.take(tab, "02-overview");
    queues
}

/// POSTs the job's retry form from the page's own session with `csrf` (none when `None`) and
/// returns the status.
fn post_retry(tab: &Tab, action: &str, csrf: Option<&str>) -> u16 {
    let body = csrf.map_or_else(String::new, |t| format!("csrf={t}"));
    let script = format!(
        "fetch({action:?}, {{method: 'POST', redirect: 'manual', \
         headers: {{'Content-Type': 'application/x-www-form-urlencoded'}}, body: {body:?}}}) \
         .then(r => r.status)"
    );
    let value = tab.evaluate(&script, true).expect("fetch").value;
    let status = value.and_then(|v| v.as_u64()).expect("a status");
    u16::try_from(status).expect("a status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_end_to_end() {
    let Some(chromium) = chromium() else { return };
    let scratch = Scratch::new();
    let database = demo_database(&scratch);
    let server = dashboard_server(&database).await;
    let dashboard = format!("{}/dashboard", server.url);
    let shots = Shots::new();
    let options = LaunchOptions::default_builder()
        .path(Some(chromium))
        .sandbox(false)
        .window_size(Some((1400, 1000)))
        .idle_browser_timeout(Duration::from_secs(120))
        .build()
        .expect("launch options");
    let browser = browse(|| Browser::new(options)).expect("chromium starts");
    let tab = browse(|| browser.new_tab()).expect("a tab");

    let queues = browse(|| log_in(&tab, &shots, &dashboard));
    assert!(
        queues.contains("demo"),
        "the demo's queue is listed: {queues}"
    );
    assert!(
        queues.contains("0 of 5 running, 100/1m starts, 10/1m starts per key"),
        "its run limits are shown: {queues}"
    );

    // The job that failed for good, from the jobs list filtered by state.
    let (id, history) = browse(|| {
        tab.navigate_to(&format!("{dashboard}/jobs?state=failed&queue=demo"))
            .expect("navigate");
        let listed = text_of(&tab, "#jobs");
        assert!(listed.contains("Demo::Report"), "{listed}");
        assert!(
            listed.contains("s3://reports/2026-11.csv is gone"),
            "the list shows its last error: {listed}"
        );
        shots.take(&tab, "03-failed-list");
        // Retrying what the filter selects asks first, saying how many.
        tab.wait_for_element("#bulk-retry")
            .expect("a bulk retry")
            .click()
            .expect("bulk retry");
        let asked = text_of(&tab, "h1");
        assert_eq!(asked, "Retry 1 job?");
        shots.take(&tab, "09-bulk-retry");
        tab.wait_for_element("#keep")
            .expect("a way back")
            .click()
            .expect("keep");
        tab.wait_for_element("#jobs tbody a")
            .expect("a job link")
            .click()
            .expect("open");
        let history = text_of(&tab, "#history");
        let decisive = text_of(&tab, "#last-error-line");
        assert!(decisive.contains("is gone"), "{decisive}");
        shots.take(&tab, "03-failed-job");
        let url = tab.get_url();
        let id: i64 = url
            .rsplit('/')
            .next()
            .and_then(|s| s.parse().ok())
            .expect("an id");
        (id, history)
    });
    assert!(
        history.contains("s3://reports/2026-11.csv is gone"),
        "{history}"
    );
    assert_eq!(history.matches("retry_scheduled").count(), 2, "{history}");
    assert!(history.contains("failed"), "{history}");

    // Without the token, or with a wrong one, the action is refused and nothing changes.
    let action = format!("{dashboard}/jobs/{id}/retry");
    assert_eq!(browse(|| post_retry(&tab, &action, None)), 403);
    assert_eq!(browse(|| post_retry(&tab, &action, Some("forged"))), 403);
    let admin = Actor::Admin("root".into());
    let job = server.sql.job(&admin, JobId(id)).await.expect("the job");
    assert_eq!(
        job.state,
        JobState::Failed,
        "a refused action changes nothing"
    );

    let state = browse(|| {
        tab.wait_for_element("#retry")
            .expect("a retry button")
            .click()
            .expect("retry");
        tab.wait_for_element("#job-state.available")
            .expect("available after retry");
        shots.take(&tab, "04-retried");
        (text_of(&tab, "#job-state"), text_of(&tab, "#notice"))
    });
    assert_eq!(state.0, "available");
    // The operator opens a backtrace; the refreshes to come must leave it open.
    browse(|| {
        tab.wait_for_element("#backtrace-3 summary")
            .expect("the first failure's backtrace")
            .click()
            .expect("open it");
    });
    assert!(
        state.1.contains(&format!("Job {id} runs again")),
        "{state:?}"
    );

    // A report that waits for the job: pending until it succeeds.
    let queue = outsourced_core::QueueLimit::default();
    let created = outsourced_core::Backend::create_queue(&server.sql, &admin, "reports", queue);
    created.await.expect("a queue of reports");
    let report = outsourced_core::NewJob::new("Demo::Summary", serde_json::json!([]))
        .queue("reports")
        .depends_on([JobId(id)]);
    let report = server
        .sql
        .enqueue(&admin, report)
        .await
        .expect("a dependant");
    assert_eq!(report.state, JobState::Pending);

    // A worker whose handler succeeds, next to the database; the page refreshes itself.
    let (trigger, shutdown) = Shutdown::manual();
    let mut registry = Registry::new();
    registry.register::<Report>();
    let worker = Worker::new(Arc::new(server.sql.clone()), "demo-worker")
        .registry(registry)
        .options(WorkerOptions {
            queues: vec!["demo".into()],
            ..WorkerOptions::default()
        });
    let running = tokio::spawn(async move { worker.run(shutdown).await });
    let history = browse(|| {
        let waited = tab
            .wait_for_element_with_custom_timeout("#job-state.succeeded", Duration::from_secs(60));
        waited.expect("the page shows the job succeeded");
        shots.take(&tab, "05-succeeded");
        let open = tab.evaluate("document.querySelector('#backtrace-3').open", false);
        let open = open.expect("evaluate").value;
        let history = (text_of(&tab, "#history"), text_of(&tab, "#result"), open);
        let link = tab
            .find_element("#follow-ups a")
            .expect("the follow-up's link");
        link.click().expect("follow it");
        tab.wait_for_element("#parent a")
            .expect("the follow-up links back");
        shots.take(&tab, "05b-follow-up");
        // The job's dependant, runnable now, links to it; and it to its dependant.
        tab.navigate_to(&format!("{dashboard}/jobs/{}", report.id))
            .expect("navigate");
        tab.wait_for_element("#dependencies a")
            .expect("the dependant links to its dependency");
        shots.take(&tab, "05c-dependant");
        let dependant = (text_of(&tab, "#job-state"), text_of(&tab, "#history"));
        tab.find_element("#dependencies a")
            .expect("the link")
            .click()
            .expect("follow it");
        tab.wait_for_element("#dependants a")
            .expect("the dependency links to its dependant");
        (history, dependant)
    });
    let (history, dependant) = history;
    assert_eq!(dependant.0, "available", "{dependant:?}");
    assert!(
        dependant.1.contains("dependencies_succeeded"),
        "{dependant:?}"
    );

    // A batch of two reports, one of them ended: its page says how far it got; the operator
    // cancels it, and its callback may run.
    let callback = outsourced_core::NewJob::new("Demo::Notify", serde_json::json!({}));
    let batch = outsourced_core::NewBatch::new(callback.queue("reports")).description("November");
    let batch = server.sql.open_batch(&admin, batch).await.expect("a batch");
    let id_of_batch = batch.counts.id;
    for _ in 0..2 {
        let part = outsourced_core::NewJob::new("Demo::Part", serde_json::json!([]));
        let part = part.queue("reports").batch(id_of_batch);
        let part = server.sql.enqueue(&admin, part).await.expect("a part");
        if part.id.0 % 2 == 0 {
            server
                .sql
                .cancel(&admin, part.id)
                .await
                .expect("cancel a part");
        }
    }
    let pages = browse(|| {
        tab.navigate_to(&format!("{dashboard}/batches/{id_of_batch}"))
            .expect("navigate");
        tab.wait_for_element("#batch-counts").expect("the counts");
        shots.take(&tab, "05d-batch");
        let before = (
            text_of(&tab, "#batch-state"),
            text_of(&tab, "#batch-counts"),
        );
        tab.find_element("#cancel-batch")
            .expect("the cancel button")
            .click()
            .expect("cancel the batch");
        tab.wait_for_element("#batch-state.ended")
            .expect("the batch ended");
        shots.take(&tab, "05e-batch-cancelled");
        (before, text_of(&tab, "#callback"), text_of(&tab, "#notice"))
    });
    let ((state, counts), callback, notice) = pages;
    assert_eq!(state, "open");
    assert!(
        counts.contains("2:") && counts.contains("1 not ended"),
        "{counts}"
    );
    assert!(callback.contains("available"), "{callback}");
    assert!(
        notice.contains(&format!("Batch {id_of_batch} is closed")),
        "{notice}"
    );
    let (history, result, open) = history;
    assert_eq!(
        open,
        Some(serde_json::json!(true)),
        "the refreshes left the opened backtrace open"
    );
    assert!(result.contains("\"rows\": 1234"), "{result}");
    trigger.advance(Stage::Draining);
    running
        .await
        .expect("the worker's task")
        .expect("the worker");
    assert!(
        history.contains("retried") && history.contains("admin:root"),
        "{history}"
    );
    let job = server.sql.job(&admin, JobId(id)).await.expect("the job");
    assert_eq!(job.state, JobState::Succeeded);

    // Jobs by unique key: the filter lists the key's job, whose page links back to it.
    let keyed = outsourced_core::NewJob::new("Demo::Digest", serde_json::json!([42]))
        .queue("demo")
        .unique(outsourced_core::Unique::key("user-42"));
    let keyed = server
        .sql
        .enqueue(&admin, keyed)
        .await
        .expect("a keyed job");
    let listed = browse(|| {
        tab.navigate_to(&format!("{dashboard}/jobs?key=user-42"))
            .expect("navigate");
        let listed = text_of(&tab, "#jobs");
        shots.take(&tab, "06-jobs-by-key");
        tab.navigate_to(&format!("{dashboard}/jobs/{}", keyed.id))
            .expect("navigate");
        tab.wait_for_element("#unique-key a")
            .expect("the key links to its jobs")
            .click()
            .expect("follow the key");
        tab.wait_for_element("#jobs").expect("the listing");
        (listed, text_of(&tab, "#jobs"))
    });
    assert!(listed.0.contains("Demo::Digest"), "{listed:?}");
    assert_eq!(
        listed.0.matches("Demo::").count(),
        1,
        "only the key's job: {listed:?}"
    );
    assert_eq!(listed.0, listed.1, "the key's link lists the same");

    // Firing a worker asks first.
    let asked = browse(|| {
        tab.navigate_to(&format!("{dashboard}/workers"))
            .expect("navigate");
        tab.wait_for_element("#workers").expect("the workers page");
        shots.take(&tab, "07-workers");
        tab.wait_for_element("a.fire")
            .expect("a worker to fire")
            .click()
            .expect("fire");
        let asked = text_of(&tab, "h1");
        shots.take(&tab, "08-confirm-fire");
        tab.wait_for_element("#keep")
            .expect("a way back")
            .click()
            .expect("keep");
        tab.wait_for_element("#workers")
            .expect("back on the workers page");
        asked
    });
    assert!(
        asked.starts_with("Fire ") && asked.ends_with('?'),
        "{asked}"
    );
}
