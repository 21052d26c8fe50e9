//! The dashboard's forms without a browser: logins refused and accepted, pages behind the
//! session, each action with and without its CSRF token, and logging out.

use outsourced_backend_sql::{Directory, Role, ServerKey, SqlBackend};
use outsourced_core::{Actor, Backend, BackendExt, JobState, NewJob, QueueLimit, ReserveOptions};
use outsourced_server::ServerConfig;
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::json;

use crate::http::RunningServer;
use crate::support::test_config;

const PASSWORD: &str = "a long enough password";

struct Browser {
    client: reqwest::Client,
    base: String,
    cookie: String,
}

impl Browser {
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form(form)
            .send()
            .await
            .expect("an answer")
    }

    async fn page(&self, path: &str) -> (StatusCode, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("an answer");
        (response.status(), response.text().await.unwrap_or_default())
    }

    /// The CSRF token the overview's forms carry.
    async fn csrf(&self) -> String {
        let (_, html) = self.page("").await;
        let marker = "name=\"csrf\" value=\"";
        let start = html.find(marker).expect("a form with a token") + marker.len();
        html[start..].split('"').next().expect("a token").to_owned()
    }
}

/// The login form's token and the cookie that goes with it, as a browser gets them.
pub(crate) async fn login_form(client: &reqwest::Client, base: &str) -> (String, String) {
    let form = client.get(format!("{base}/login")).send().await;
    let form = form.expect("the login form");
    let cookie = form.headers()["set-cookie"].to_str().unwrap_or_default();
    let cookie = cookie.split(';').next().unwrap_or_default().to_owned();
    let html = form.text().await.unwrap_or_default();
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a token") + marker.len();
    let token = html[start..].split('"').next().expect("a token").to_owned();
    (token, cookie)
}

async fn log_in(base: &str, name: &str, password: &str) -> (StatusCode, Option<String>) {
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("a client");
    let (token, login_cookie) = login_form(&client, base).await;
    let response = client
        .post(format!("{base}/login"))
        .header("cookie", login_cookie)
        .form(&[("name", name), ("password", password), ("csrf", &token)])
        .send()
        .await
        .expect("an answer");
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("outsourced_session=") && !v.starts_with("outsourced_session=;"))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    (response.status(), cookie)
}

async fn setup() -> (RunningServer, Browser) {
    let sql = SqlBackend::open(test_config("sqlite::memory:"))
        .await
        .expect("open");
    let directory = Directory::new(sql.clone());
    let key = ServerKey::generate();
    directory
        .create(&key, Role::Admin, "root")
        .await
        .expect("root");
    directory
        .create(&key, Role::Admin, "nopass")
        .await
        .expect("nopass");
    directory
        .create(&key, Role::Worker, "w1")
        .await
        .expect("w1");
    assert!(directory.set_password("root", "short").await.is_err());
    directory
        .set_password("root", PASSWORD)
        .await
        .expect("password");
    let server = RunningServer::start(sql, ServerConfig::default()).await;
    let base = format!("{}/dashboard", server.url);
    let (status, cookie) = log_in(&base, "root", PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let browser = Browser {
        client: reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .expect("a client"),
        base,
        cookie: cookie.expect("a session cookie"),
    };
    (server, browser)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_and_sessions() {
    let (server, browser) = setup().await;
    let base = &browser.base;
    for (name, password) in [
        ("root", "wrong password"),
        ("nobody", PASSWORD),
        ("nopass", ""),
    ] {
        let (status, cookie) = log_in(base, name, password).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}");
        assert!(cookie.is_none(), "no session for {name}");
    }
    let anonymous = reqwest::Client::builder().redirect(Policy::none()).build();
    let anonymous = anonymous.expect("a client").get(base).send().await;
    let anonymous = anonymous.expect("an answer");
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        anonymous.headers()["location"],
        format!("{}/login", "/outsourced/dashboard")
    );
    assert_eq!(browser.page("/workers").await.0, StatusCode::OK);

    // A locked admin's session ends at once.
    let directory = Directory::new(server.sql.clone());
    directory
        .set_locked(Role::Admin, "root", true)
        .await
        .expect("lock");
    assert_eq!(browser.page("").await.0, StatusCode::SEE_OTHER);
    directory
        .set_locked(Role::Admin, "root", false)
        .await
        .expect("unlock");
    assert_eq!(browser.page("").await.0, StatusCode::OK);

    // Logging out needs the token too, and ends the session.
    let refused = browser.post("/logout", &[]).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let csrf = browser.csrf().await;
    let out = browser.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(browser.page("").await.0, StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_needs_the_token() {
    let (server, browser) = setup().await;
    let admin = Actor::Admin("root".into());
    let sql = &server.sql;
    sql.create_queue(&admin, "mail", QueueLimit::default())
        .await
        .expect("a queue");
    let job = NewJob::new("Mail", json!([])).queue("mail");
    let waiting = sql.enqueue(&admin, job).await.expect("a job").id.0;
    let csrf = browser.csrf().await;
    let directory = Directory::new(sql.clone());
    let actions: [(String, Vec<(&str, &str)>); 5] = [
        (format!("/jobs/{waiting}/cancel"), vec![]),
        ("/queues/mail/pause".into(), vec![]),
        ("/workers/w1/hire".into(), vec![("queue", "mail")]),
        (format!("/jobs/{waiting}/retry"), vec![]),
        ("/queues/mail/resume".into(), vec![]),
    ];
    for (path, fields) in &actions {
        for token in [None, Some("forged")] {
            let mut form = fields.clone();
            form.extend(token.map(|t| ("csrf", t)));
            let response = browser.post(path, &form).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path} {token:?}");
        }
    }
    let job = sql
        .job(&admin, outsourced_core::JobId(waiting))
        .await
        .expect("job");
    assert_eq!(job.state, JobState::Available, "nothing changed");
    assert!(!sql.queue(&admin, "mail").await.expect("mail").paused);
    assert!(
        directory
            .get(Role::Worker, "w1")
            .await
            .expect("w1")
            .queues
            .is_empty()
    );

    // With the token, each does what it says and goes back to its page.
    for (path, fields) in &actions[..3] {
        let mut form = fields.clone();
        form.push(("csrf", &csrf));
        let response = browser.post(path, &form).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
    }
    let job = sql
        .job(&admin, outsourced_core::JobId(waiting))
        .await
        .expect("job");
    assert_eq!(job.state, JobState::Cancelled);
    assert!(sql.queue(&admin, "mail").await.expect("mail").paused);
    let hired = directory.get(Role::Worker, "w1").await.expect("w1").queues;
    assert_eq!(hired, vec!["mail".to_owned()]);
    let (_, workers) = browser.page("/workers").await;
    assert!(
        workers.contains("/workers/w1/fire"),
        "the page offers to fire w1"
    );
    let fired = browser
        .post("/workers/w1/fire", &[("queue", "mail"), ("csrf", &csrf)])
        .await;
    assert_eq!(fired.status(), StatusCode::SEE_OTHER);
    assert!(
        directory
            .get(Role::Worker, "w1")
            .await
            .expect("w1")
            .queues
            .is_empty()
    );
    let unknown = browser
        .post("/workers/w1/hire", &[("queue", "nope"), ("csrf", &csrf)])
        .await;
    assert_eq!(
        unknown.status(),
        StatusCode::NOT_FOUND,
        "hiring for no queue is refused"
    );
    // The retry of the cancelled job, then the queue resumed.
    for (path, _) in &actions[3..] {
        let response = browser.post(path, &[("csrf", &csrf)]).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
    }
    let job = sql
        .job(&admin, outsourced_core::JobId(waiting))
        .await
        .expect("job");
    assert_eq!(job.state, JobState::Available);
    let history = sql.history(&admin, job.id).await.expect("history");
    let last = history.last().expect("rows");
    assert_eq!(last.actor, admin, "the history names the dashboard's admin");
    assert!(!sql.queue(&admin, "mail").await.expect("mail").paused);
    let (status, listing) = browser.page("/jobs?queue=mail&state=available").await;
    assert_eq!(status, StatusCode::OK);
    assert!(listing.contains(&format!("/jobs/{waiting}\"")), "{listing}");
    let (status, _) = browser.page("/jobs?state=nonsense").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_explorer_is_served_from_the_binary() {
    let (server, browser) = setup().await;
    let client = &browser.client;
    let get = |path: &str| client.get(format!("{}{path}", server.url)).send();
    let redirect = get("/docs").await.expect("an answer");
    assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
    let page = get("/docs/").await.expect("an answer");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("the page");
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("https://"),
        "no file comes from elsewhere: {html}"
    );
    let init = get("/docs/swagger-initializer.js")
        .await
        .expect("an answer");
    let init = init.text().await.expect("the script");
    assert!(init.contains("../v1/openapi.json"), "{init}");
    let bundle = get("/docs/swagger-ui-bundle.js").await.expect("an answer");
    assert_eq!(bundle.status(), StatusCode::OK);
    assert!(bundle.bytes().await.expect("the bundle").len() > 100_000);
    let doc = get("/v1/openapi.json").await.expect("an answer");
    let doc: serde_json::Value = doc.json().await.expect("the document");
    assert!(doc["paths"]["/v1/reserve"].is_object());
}

/// The jobs page filters by unique key (kept on the next page's link), and a job's page links
/// its key to that listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_listed_by_their_unique_key() {
    let (server, browser) = setup().await;
    let admin = Actor::Admin("root".into());
    let keyed =
        |key: &str| NewJob::new("Digest", json!([])).unique(outsourced_core::Unique::key(key));
    let listed = server.sql.enqueue(&admin, keyed("user 7/&")).await;
    let listed = listed.expect("a keyed job");
    let other = server.sql.enqueue(&admin, keyed("user-8")).await;
    let other = other.expect("another key");
    let link = |id: i64| format!("/jobs/{id}\">{id}</a>");
    let (status, html) = browser.page("/jobs?key=user+7%2F%26").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&link(listed.id.0)), "{html}");
    assert!(!html.contains(&link(other.id.0)), "{html}");
    assert!(
        html.contains("value=\"user 7/&#38;\""),
        "the filter shows the key, escaped: {html}"
    );
    let (_, page) = browser.page(&format!("/jobs/{}", listed.id)).await;
    assert!(page.contains("/jobs?key=user%207/%26\""), "{page}");
}

/// Each action leaves a notice that the next page shows once; firing asks first; the jobs
/// page goes to a job by its id; the mount and a trailing slash lead to the dashboard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_say_what_they_did_and_fire_asks_first() {
    let (server, browser) = setup().await;
    let admin = Actor::Admin("root".into());
    let sql = &server.sql;
    sql.create_queue(&admin, "mail", QueueLimit::default())
        .await
        .expect("a queue");
    let csrf = browser.csrf().await;
    let paused = browser.post("/queues/mail/pause", &[("csrf", &csrf)]).await;
    assert_eq!(paused.status(), StatusCode::SEE_OTHER);
    let notice = paused
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("outsourced_notice="))
        .and_then(|v| v.split(';').next())
        .expect("a notice cookie")
        .to_owned();
    let shown = browser
        .client
        .get(&browser.base)
        .header("cookie", format!("{}; {notice}", browser.cookie))
        .send()
        .await
        .expect("an answer");
    let cleared = shown.headers().get_all("set-cookie").iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.starts_with("outsourced_notice=;") && v.contains("Max-Age=0"))
    });
    assert!(cleared, "the page clears the notice it showed");
    let html = shown.text().await.expect("the overview");
    assert!(
        html.contains("id=\"notice\"") && html.contains("Queue mail is paused"),
        "{html}"
    );
    let (_, again) = browser.page("").await;
    assert!(
        !again.contains("id=\"notice\""),
        "a page without the cookie says nothing"
    );

    // Firing asks first; the question's form fires.
    Directory::new(sql.clone())
        .grant(Role::Worker, "w1", "mail")
        .await
        .expect("hire");
    let (_, workers) = browser.page("/workers").await;
    assert!(
        workers.contains("/workers/w1/fire?queue=mail\""),
        "{workers}"
    );
    let (status, question) = browser.page("/workers/w1/fire?queue=mail").await;
    assert_eq!(status, StatusCode::OK);
    assert!(question.contains("Fire w1 from mail?"), "{question}");
    assert!(question.contains("action=\"/outsourced/dashboard/workers/w1/fire\""));
    assert!(
        question.contains("name=\"queue\" value=\"mail\""),
        "{question}"
    );
    let hired = Directory::new(sql.clone()).get(Role::Worker, "w1").await;
    assert_eq!(
        hired.expect("w1").queues,
        vec!["mail".to_owned()],
        "asking fires no one"
    );
    let (status, _) = browser.page("/workers/w1/fire?queue=other").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "w1 is not hired for other");

    // Each worker's processes with the jobs they hold, linked.
    sql.create_queue(&admin, "work", QueueLimit::default())
        .await
        .expect("a queue");
    let held = sql
        .enqueue(&admin, NewJob::new("Crunch", json!([])).queue("work"))
        .await;
    let held = held.expect("a job").id.0;
    let me = outsourced_core::WorkerInstance::new("w1", "host-1-4242");
    let leased = sql
        .reserve(
            &me,
            outsourced_core::ReserveOptions::up_to(1).queues(["work"]),
        )
        .await
        .expect("a lease");
    assert_eq!(leased.len(), 1);
    let (_, workers) = browser.page("/workers").await;
    assert!(workers.contains("host-1-4242"), "{workers}");
    assert!(workers.contains("online"), "{workers}");
    assert!(
        workers.contains(&format!("/jobs/{held}\">{held}</a> Crunch")),
        "{workers}"
    );

    // A due job that the queue's run limits hold back says so on its page.
    let one_at_a_time = outsourced_core::QueueUpdate {
        max_running: Some(Some(1)),
        ..outsourced_core::QueueUpdate::default()
    };
    sql.update_queue(&admin, "work", one_at_a_time)
        .await
        .expect("a limit");
    let waits = sql
        .enqueue(&admin, NewJob::new("Crunch", json!([])).queue("work"))
        .await;
    let waits = waits.expect("a job").id.0;
    let (_, page) = browser.page(&format!("/jobs/{waits}")).await;
    assert!(
        page.contains("id=\"held-back\"")
            && page.contains("runs as many jobs as its limit allows (1 at once)"),
        "{page}"
    );
    let (_, page) = browser.page(&format!("/jobs/{held}")).await;
    assert!(
        !page.contains("id=\"held-back\""),
        "a running job is not held: {page}"
    );

    // A live job's page refreshes only once the job changed: 204 while it shows the latest.
    let job = sql
        .job(&admin, outsourced_core::JobId(waits))
        .await
        .expect("job");
    let at = job.updated_at.timestamp_millis();
    let (status, _) = browser.page(&format!("/jobs/{waits}?at={at}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "unchanged: nothing to swap");
    let (status, page) = browser.page(&format!("/jobs/{waits}?at={}", at - 1)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(&format!("?at={at}\"")),
        "the next refresh asks from here: {page}"
    );

    // Locking asks first, then refuses the worker; unlocking is one click.
    let (status, question) = browser.page("/workers/w1/lock").await;
    assert_eq!(status, StatusCode::OK);
    assert!(question.contains("Lock w1 out?"), "{question}");
    let refused = browser.post("/workers/w1/lock", &[]).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "no token, no lock");
    let directory = Directory::new(sql.clone());
    assert!(!directory.get(Role::Worker, "w1").await.expect("w1").locked);
    let locked = browser.post("/workers/w1/lock", &[("csrf", &csrf)]).await;
    assert_eq!(locked.status(), StatusCode::SEE_OTHER);
    assert!(directory.get(Role::Worker, "w1").await.expect("w1").locked);
    let (_, workers) = browser.page("/workers").await;
    assert!(workers.contains("/workers/w1/unlock\""), "{workers}");
    let unlocked = browser.post("/workers/w1/unlock", &[("csrf", &csrf)]).await;
    assert_eq!(unlocked.status(), StatusCode::SEE_OTHER);
    assert!(!directory.get(Role::Worker, "w1").await.expect("w1").locked);

    // The jobs page's id box.
    let job = sql
        .enqueue(&admin, NewJob::new("Mail", json!([])).queue("mail"))
        .await;
    let id = job.expect("a job").id.0;
    let go = browser
        .client
        .get(format!("{}/jobs?id={id}", browser.base))
        .header("cookie", &browser.cookie)
        .send()
        .await
        .expect("an answer");
    assert_eq!(go.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        go.headers()["location"],
        format!("/outsourced/dashboard/jobs/{id}")
    );
    let (status, refused) = browser.page("/jobs?id=abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(refused.contains("not a job id"), "{refused}");

    // The mount and the dashboard with a trailing slash (the mount with one is the host's
    // router's: `outsourcer serve`'s is checked in user_path).
    for path in ["", "/dashboard/"] {
        let response = browser
            .client
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path:?}");
        assert_eq!(
            response.headers()["location"],
            "/outsourced/dashboard",
            "{path:?}"
        );
    }
}

/// The ids a jobs page links, in order.
fn listed(html: &str) -> Vec<i64> {
    html.split("href=\"/outsourced/dashboard/jobs/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next()?.parse().ok())
        .collect()
}

/// The query string of a paging link on a page, by its id.
fn link(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let start = html[..at].rfind("href=\"")? + "href=\"".len();
    let href = html[start..].split('"').next()?;
    Some(
        href.trim_start_matches("/outsourced/dashboard")
            .replace("&#38;", "&"),
    )
}

/// The jobs list pages both ways: older, then back to the newer page it came from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_list_pages_both_ways() {
    let (server, browser) = setup().await;
    let admin = Actor::Admin("root".into());
    server
        .sql
        .create_queue(&admin, "pages", QueueLimit::default())
        .await
        .expect("a queue");
    let mut ids = Vec::new();
    for n in 0..60 {
        let job = NewJob::new("Page", json!([n])).queue("pages");
        ids.push(server.sql.enqueue(&admin, job).await.expect("a job").id.0);
    }
    ids.reverse();
    let (_, first) = browser.page("/jobs?queue=pages").await;
    assert_eq!(listed(&first), ids[..50].to_vec());
    assert!(
        link(&first, "newer").is_none(),
        "the first page is the newest"
    );
    let older = link(&first, "older").expect("an older page");
    let (_, second) = browser.page(&older).await;
    assert_eq!(listed(&second), ids[50..].to_vec());
    assert!(link(&second, "older").is_none(), "nothing older: {second}");
    let newer = link(&second, "newer").expect("a newer page");
    assert!(newer.contains("queue=pages"), "the filter is kept: {newer}");
    let (_, back) = browser.page(&newer).await;
    assert_eq!(listed(&back), ids[..50].to_vec(), "back where it started");
    assert!(link(&back, "newer").is_none(), "nothing newer: {back}");
    assert!(link(&back, "older").is_some());
}

/// The overview counts exactly (no cap), shows how full each queue is, and charts what the
/// database's tallies say was done in the last hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_counts_exactly_and_charts_the_tallies() {
    let (server, browser) = setup().await;
    let admin = Actor::Admin("root".into());
    let created = server
        .sql
        .create_queue(&admin, "mail", QueueLimit::Max(20_000));
    created.await.expect("a queue");
    let jobs = (0..10_001).map(|i| NewJob::new("Send", json!([i])).queue("mail"));
    let stored = server.sql.enqueue_batch(&admin, jobs.collect()).await;
    assert_eq!(stored.expect("enqueue").len(), 10_001);
    let me = outsourced_core::WorkerInstance::new("w1", "i");
    let leased = server
        .sql
        .reserve(&me, ReserveOptions::up_to(3).queues(["mail"]));
    for job in leased.await.expect("reserve") {
        let done = server.sql.complete(&me, &job.lease.to_ref()).await;
        done.expect("complete");
    }
    server.sql.flush_tallies().await.expect("add the tallies");
    let (status, html) = browser.page("").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(">9998</a>"), "the exact backlog: {html}");
    // The one worker process that reserved, beside the workers the directory has.
    assert!(
        html.contains(">1 running now</a> (processes heard of in the last 2 minutes)"),
        "live instances: {html}"
    );
    assert!(html.contains("9998 of 20000 live"), "how full: {html}");
    assert!(
        html.contains(r#"class="used" x="0" y="0" width="49""#),
        "{html}"
    );
    assert!(
        html.contains("10001 enqueued, 3 started, 3 succeeded, 0 failed"),
        "the last hour's tallies: {html}"
    );
    assert_eq!(html.matches("<svg class=\"chart\"").count(), 3, "{html}");
    // A limit per key: the overview names the busiest keys.
    let per_key = outsourced_core::QueueUpdate {
        max_running_per_key: Some(Some(1)),
        ..Default::default()
    };
    let created = server
        .sql
        .create_queue(&admin, "calls", QueueLimit::default())
        .await;
    created.expect("a queue");
    server
        .sql
        .update_queue(&admin, "calls", per_key)
        .await
        .expect("a limit");
    let keyed = NewJob::new("Call", json!([]))
        .queue("calls")
        .concurrency_key("acme");
    server.sql.enqueue(&admin, keyed).await.expect("enqueue");
    let (_, html) = browser.page("").await;
    assert!(html.contains("no key runs a job now"), "{html}");
    let leased = server
        .sql
        .reserve(&me, ReserveOptions::up_to(1).queues(["calls"]));
    assert_eq!(leased.await.expect("reserve").len(), 1);
    let (_, html) = browser.page("").await;
    assert!(
        html.contains("busiest keys: acme 1 (1 at the limit)"),
        "{html}"
    );
    // One queue's charts.
    server.sql.flush_tallies().await.expect("add the tallies");
    let (_, html) = browser.page("?queue=calls").await;
    assert!(html.contains("Queue calls, the last hour"), "{html}");
    assert!(
        html.contains("1 enqueued, 1 started, 0 succeeded"),
        "{html}"
    );
    assert!(
        html.contains("hx-get=\"/outsourced/dashboard?queue=calls\""),
        "{html}"
    );
}

/// The class box takes a class, or the start of one followed by `*`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_listed_by_class_prefix() {
    let (server, browser) = setup().await;
    let admin = Actor::Admin("root".into());
    let mut ids = Vec::new();
    for class in ["Mailer::Welcome", "Mailer::Reset", "Report"] {
        let job = server
            .sql
            .enqueue(&admin, NewJob::new(class, json!([])))
            .await;
        ids.push(job.expect("enqueue").id.0);
    }
    let (status, html) = browser.page("/jobs?class=Mailer%3A%3A*").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed(&html), [ids[1], ids[0]], "{html}");
    let (_, html) = browser.page("/jobs?class=Mailer%3A%3AReset").await;
    assert_eq!(listed(&html), [ids[1]], "an exact class: {html}");
}

/// A long history (a job tried sixty times) is shown a hundred steps at a time, the latest
/// first, with links to earlier and later steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_history_is_paged() {
    let (server, browser) = setup().await;
    let admin = Actor::Admin("root".into());
    let flaky = NewJob::new("Flaky", json!([])).max_attempts(1000);
    let job = server.sql.enqueue(&admin, flaky).await.expect("enqueue").id;
    let me = outsourced_core::WorkerInstance::new("w1", "i");
    for _ in 0..60 {
        let leased = server.sql.reserve(&me, ReserveOptions::up_to(1));
        let leased = leased.await.expect("reserve").pop().expect("the job");
        let again = outsourced_core::Failure {
            error: outsourced_core::ErrorInfo::new("not yet"),
            retry: outsourced_core::RetryPlan::After(std::time::Duration::ZERO),
        };
        let failed = server.sql.fail(&me, &leased.lease.to_ref(), again).await;
        failed.expect("fail");
    }
    // 121 steps: the enqueue, then a start and a failure sixty times.
    let step = |html: &str, seq: u32| html.contains(&format!("<tr><td>{seq}</td>"));
    let (_, latest) = browser.page(&format!("/jobs/{job}")).await;
    assert!(step(&latest, 121) && step(&latest, 22), "{latest}");
    assert!(!step(&latest, 21), "a hundred steps: {latest}");
    assert!(latest.contains(&format!(
        "/jobs/{job}?steps_before=22\" id=\"earlier-steps\""
    )));
    assert!(!latest.contains("later-steps"), "{latest}");
    let (_, earlier) = browser.page(&format!("/jobs/{job}?steps_before=22")).await;
    assert!(step(&earlier, 1) && step(&earlier, 21) && !step(&earlier, 22));
    assert!(!earlier.contains("earlier-steps"), "{earlier}");
    assert!(
        earlier.contains(&format!(
            "/jobs/{job}?steps_before=122\" id=\"later-steps\""
        )),
        "{earlier}"
    );
}

/// Rotating a worker's secret asks first, needs the token, and shows the new secret once, on
/// the page that answers the form (never in a link or a notice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_secret_is_rotated_after_asking() {
    let (server, browser) = setup().await;
    // A worker whose secret is under the server's key.
    server.client(Role::Worker, "w2").await;
    let directory = Directory::new(server.sql.clone());
    let before = directory.credentials(&server.key, Role::Worker, "w2").await;
    let before = before.expect("w2's credentials");
    let (_, workers) = browser.page("/workers").await;
    assert!(
        workers.contains("/workers/w2/rotate\" class=\"rotate\""),
        "{workers}"
    );
    let (status, asked) = browser.page("/workers/w2/rotate").await;
    assert_eq!(status, StatusCode::OK);
    assert!(asked.contains("Give w2 a new secret?"), "{asked}");
    for token in [None, Some("forged")] {
        let form: Vec<(&str, &str)> = token.map(|t| ("csrf", t)).into_iter().collect();
        let refused = browser.post("/workers/w2/rotate", &form).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    }
    let unchanged = directory.credentials(&server.key, Role::Worker, "w2").await;
    assert_eq!(
        unchanged.expect("w2").consumer_secret,
        before.consumer_secret
    );
    let csrf = browser.csrf().await;
    let rotated = browser.post("/workers/w2/rotate", &[("csrf", &csrf)]).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let no_store = rotated.headers()["cache-control"]
        .to_str()
        .unwrap_or_default();
    assert_eq!(no_store, "no-store");
    let shown = rotated.text().await.unwrap_or_default();
    let after = directory.credentials(&server.key, Role::Worker, "w2").await;
    let after = after.expect("w2's credentials");
    assert_ne!(after.consumer_secret, before.consumer_secret);
    assert_eq!(after.consumer_key, before.consumer_key, "the key stays");
    let secret = format!(
        "<code id=\"consumer-secret\">{}</code>",
        after.consumer_secret
    );
    assert!(shown.contains(&secret), "{shown}");
    let (status, _) = browser.page("/workers/nobody/rotate").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The notice an action's answer carries, decoded.
fn notice_of(response: &reqwest::Response) -> String {
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("outsourced_notice="))
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_owned();
    url::form_urlencoded::parse(format!("n={cookie}").as_bytes())
        .map(|(_, text)| text.into_owned())
        .next()
        .unwrap_or_default()
}

/// Retrying or cancelling what a filter selects: a confirmation that says how many, the CSRF
/// token, each job's history naming the admin, the jobs outside the filter untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_a_filter_selects_are_retried_and_cancelled_in_bulk() {
    let (server, browser) = setup().await;
    let (sql, admin) = (&server.sql, Actor::Admin("root".into()));
    for queue in ["mail", "other"] {
        let created = sql.create_queue(&admin, queue, QueueLimit::default()).await;
        created.expect("a queue");
    }
    let me = outsourced_core::WorkerInstance::new("w1", "i");
    let mut failed = Vec::new();
    for queue in ["mail", "mail", "mail", "other"] {
        let job = NewJob::new("Send", json!([])).queue(queue).max_attempts(1);
        let id = sql.enqueue(&admin, job).await.expect("enqueue").id;
        let leased = sql.reserve(&me, ReserveOptions::up_to(1).queues([queue]));
        let leased = leased.await.expect("reserve").pop().expect("the job");
        assert_eq!(leased.job.id, id);
        let no = outsourced_core::Failure {
            error: outsourced_core::ErrorInfo::new("no"),
            retry: outsourced_core::RetryPlan::Never,
        };
        sql.fail(&me, &leased.lease.to_ref(), no)
            .await
            .expect("fail");
        failed.push(id);
    }
    let waiting = NewJob::new("Send", json!([])).queue("mail");
    sql.enqueue(&admin, waiting).await.expect("enqueue");

    let (_, listed) = browser.page("/jobs?state=failed&queue=mail").await;
    let link = "/jobs/bulk?action=retry&amp;state=failed&#38;queue=mail\" id=\"bulk-retry\"";
    assert!(listed.contains(link), "{listed}");
    let (status, asked) = browser
        .page("/jobs/bulk?action=retry&state=failed&queue=mail")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(asked.contains("Retry 3 jobs?"), "{asked}");
    assert!(
        asked.contains("3 jobs match, of which 3 can be retried."),
        "{asked}"
    );
    let form = [("action", "retry"), ("state", "failed"), ("queue", "mail")];
    let refused = browser.post("/jobs/bulk", &form).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let state_of = |id| async move { sql.job(&admin_actor(), id).await.expect("job").state };
    assert_eq!(
        state_of(failed[0]).await,
        JobState::Failed,
        "nothing changed"
    );

    let csrf = browser.csrf().await;
    let mut form = form.to_vec();
    form.push(("csrf", &csrf));
    let done = browser.post("/jobs/bulk", &form).await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let to = done.headers()["location"].to_str().unwrap_or_default();
    assert!(
        to.ends_with("/dashboard/jobs?state=failed&queue=mail"),
        "{to}"
    );
    assert_eq!(notice_of(&done), "Retried 3 jobs.");
    for id in &failed[..3] {
        assert_eq!(state_of(*id).await, JobState::Available);
        let history = sql.history(&admin, *id).await.expect("history");
        let last = history.last().expect("a step");
        assert_eq!(last.actor, admin, "the admin is named");
    }
    assert_eq!(
        state_of(failed[3]).await,
        JobState::Failed,
        "another queue's job stays"
    );

    let cancel = [
        ("action", "cancel"),
        ("queue", "mail"),
        ("csrf", csrf.as_str()),
    ];
    let done = browser.post("/jobs/bulk", &cancel).await;
    assert_eq!(notice_of(&done), "Cancelled 4 jobs.");
    assert_eq!(state_of(failed[0]).await, JobState::Cancelled);
    // Delete: finished jobs only, gone with their history; another queue's job stays.
    let (_, asked) = browser.page("/jobs/bulk?action=delete&queue=mail").await;
    assert!(
        asked.contains("4 jobs match, of which 4 can be deleted."),
        "{asked}"
    );
    let running = NewJob::new("Send", json!([])).queue("mail");
    let live = sql.enqueue(&admin, running).await.expect("enqueue").id;
    let delete = [
        ("action", "delete"),
        ("queue", "mail"),
        ("csrf", csrf.as_str()),
    ];
    let done = browser.post("/jobs/bulk", &delete).await;
    assert_eq!(notice_of(&done), "Deleted 4 jobs.");
    let gone = sql.job(&admin, failed[0]).await;
    assert!(
        matches!(gone, Err(outsourced_core::Error::NotFound { .. })),
        "{gone:?}"
    );
    assert!(
        sql.history(&admin, failed[0]).await.is_err(),
        "its history is gone"
    );
    assert_eq!(
        state_of(live).await,
        JobState::Available,
        "a live job stays"
    );
    assert_eq!(
        state_of(failed[3]).await,
        JobState::Failed,
        "another queue's job stays"
    );
    let bad = [("action", "delete-everything"), ("csrf", csrf.as_str())];
    let refused = browser.post("/jobs/bulk", &bad).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
}

fn admin_actor() -> Actor {
    Actor::Admin("root".into())
}

/// The mistakes an operator makes get sentences: an unknown state names the states, an
/// unknown queue says so, a form without a body is refused as one without its token, a bulk
/// action with nothing to do says so instead of asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_get_clear_answers() {
    let (server, browser) = setup().await;
    let admin = Actor::Admin("root".into());
    let created = server
        .sql
        .create_queue(&admin, "mail", QueueLimit::default());
    created.await.expect("a queue");
    let job = NewJob::new("Send", json!([])).queue("mail");
    server.sql.enqueue(&admin, job).await.expect("enqueue");
    let (status, said) = browser.page("/jobs?state=faild").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        said.contains("&#34;faild&#34; is no state: one of pending, scheduled"),
        "{said}"
    );
    let (status, said) = browser.page("/jobs/abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(said.contains("&#34;abc&#34; is not a job id"), "{said}");
    let (status, said) = browser.page("/jobs?before=xyz").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        said.contains("this page&#39;s link is not valid (before:"),
        "{said}"
    );
    let (_, listed) = browser.page("/jobs?queue=mial").await;
    assert!(listed.contains("There is no queue named mial."), "{listed}");
    let bare = browser
        .client
        .post(format!("{}/queues/mail/pause", browser.base))
        .header("cookie", &browser.cookie)
        .send()
        .await
        .expect("an answer");
    assert_eq!(bare.status(), StatusCode::FORBIDDEN, "no form, no token");
    let nothing = browser.page("/jobs/bulk?action=retry&queue=mail").await;
    assert_eq!(nothing.0, StatusCode::SEE_OTHER);
    let asked = browser
        .client
        .get(format!(
            "{}/jobs/bulk?action=retry&queue=mail",
            browser.base
        ))
        .header("cookie", &browser.cookie)
        .send()
        .await
        .expect("an answer");
    assert_eq!(
        notice_of(&asked),
        "The one job this filter selects cannot be retried."
    );
}
