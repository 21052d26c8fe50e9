//! `outsourcer serve`: the HTTP API on its own, with the server's maintenance beside it.

use outsourced_core::{Error, Result};
use outsourced_server::{AppState, ServerConfig, maintenance, router, serve, tls_acceptor};
use outsourced_worker::{Shutdown, Stage};

use crate::args::ServeArgs;
use crate::context::Ctx;

fn io(what: &str, error: std::io::Error) -> Error {
    Error::invalid(format!("{what}: {error}"))
}

/// The app with the API under `mount`; the mount with a trailing slash (which the nested
/// router never sees) leads to the dashboard too.
pub(crate) fn app(state: AppState, mount: &str) -> axum::Router {
    let mount = mount.trim_end_matches('/');
    if mount.is_empty() {
        return router(state);
    }
    let dashboard = format!("{mount}/dashboard");
    let to_dashboard = move || async move { axum::response::Redirect::to(&dashboard) };
    axum::Router::new()
        .route(&format!("{mount}/"), axum::routing::get(to_dashboard))
        .nest(mount, router(state))
}

pub(crate) async fn run(ctx: &Ctx, args: ServeArgs) -> Result<()> {
    // "localhost" alone would fail with the resolver's "invalid socket address".
    if args
        .bind
        .rsplit_once(':')
        .is_none_or(|(_, port)| port.parse::<u16>().is_err())
    {
        // A port alone is a host forgotten, not a port missing.
        let what = match args.bind.parse::<u16>() {
            Ok(port) => format!(
                "is a port without a host: give 127.0.0.1:{port} (this machine only) or 0.0.0.0:{port} (every interface)"
            ),
            Err(_) => "has no port: give a host and a port, such as 127.0.0.1:8080 or 0.0.0.0:8080"
                .to_owned(),
        };
        return Err(Error::invalid(format!("--bind {:?} {what}", args.bind)));
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            Some(tls_acceptor(cert, key).map_err(|e| io("cannot load the TLS certificate", e))?)
        }
        _ => None,
    };
    let defaults = ServerConfig::default();
    let config = ServerConfig {
        public_origin: args.public_origin.clone(),
        require_body_hash: args.require_body_hash,
        metrics_token: args.metrics_token.clone(),
        max_connections: args.max_connections,
        max_connections_per_peer: args.max_connections_per_peer,
        max_requests: args.max_requests,
        first_request_timeout: args
            .first_request_timeout
            .unwrap_or(defaults.first_request_timeout),
        idle_timeout: args.idle_timeout.unwrap_or(defaults.idle_timeout),
        ..defaults
    };
    let state = AppState::new(
        ctx.backend.clone(),
        ctx.key().await?,
        config.clone(),
        tls.is_some(),
    );
    let listener = tokio::net::TcpListener::bind(&args.bind)
        .await
        .map_err(|e| io(&format!("cannot listen on {}", args.bind), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| io("no local address", e))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    out!(
        "serving {scheme}://{addr}{} (database {})",
        args.mount.trim_end_matches('/'),
        outsourced_backend_sql::redact(&ctx.url)
    );
    let shutdown = Shutdown::on_signals_saying([
        "Stopping: requests under way may finish (a second Ctrl-C or SIGTERM stops at once)",
        "Stopping at once",
    ]);
    let stopped = |mut shutdown: Shutdown| async move { shutdown.reached(Stage::Draining).await };
    let draining = state.clone();
    let drain = stopped(shutdown.clone());
    tokio::spawn(async move {
        drain.await;
        draining.drain();
    });
    let maintaining = tokio::spawn(maintenance::maintain(
        state.clone(),
        stopped(shutdown.clone()),
    ));
    let served = serve(
        listener,
        app(state, &args.mount),
        tls,
        &config,
        stopped(shutdown),
    )
    .await;
    maintaining.abort();
    tracing::info!("server stopped");
    served.map_err(|e| io("the server failed", e))
}
