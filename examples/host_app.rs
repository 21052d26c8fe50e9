//! Your own axum application with outsourced mounted under `/outsourced` (the seed's
//! `mount Outsourced::Engine => "/outsourced"`), and a producer enqueueing over signed HTTP.
//!
//! `cargo run -p outsourced-examples --example host_app`

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use outsourced_backend_http::{HttpBackend, HttpConfig};
use outsourced_backend_sql::{Directory, Role, ServerKey, SqlBackend};
use outsourced_core::{Actor, Backend, NewJob};
use outsourced_server::{AppState, ServerConfig};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let backend =
        SqlBackend::connect(&format!("sqlite://{}", dir.path().join("app.db").display())).await?;
    // In production: ServerKey::load_or_create(path), the key `outsourcer` made.
    let key = ServerKey::generate();

    // Your routes, and outsourced's under a prefix of your choice.
    let state = AppState::new(backend.clone(), key.clone(), ServerConfig::default(), false);
    let draining = state.clone();
    let app = Router::new()
        .route("/", get(|| async { "my application" }))
        .nest("/outsourced", outsourced_server::router(state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/outsourced", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let config = ServerConfig::default();
        // `drain` answers the workers' waiting long polls at once (with no job), so that the
        // graceful shutdown does not wait out their waits.
        let shutdown = async move {
            let _ = stopped.await;
            draining.drain();
        };
        outsourced_server::serve(listener, app, None, &config, shutdown).await
    });

    // A producer with its own credentials, allowed to enqueue into the default queue.
    let directory = Directory::new(backend.clone());
    let (_, credentials) = directory.create(&key, Role::Producer, "shop").await?;
    directory.grant(Role::Producer, "shop", "default").await?;
    let producer = Arc::new(HttpBackend::new(HttpConfig::new(
        &url,
        credentials.consumer_key,
        credentials.consumer_secret,
    ))?);

    let job = NewJob::new("SendReceipt", json!({"order": 1234}));
    let stored = producer
        .enqueue(&Actor::Producer("shop".into()), job)
        .await?;
    println!("enqueued job {} over signed HTTP at {url}", stored.id);
    let seen = backend
        .job(&Actor::Admin("example".into()), stored.id)
        .await?;
    println!(
        "the database has it: {} in queue {}, {}",
        seen.class, seen.queue, seen.state
    );

    drop(stop);
    server.await??;
    Ok(())
}
