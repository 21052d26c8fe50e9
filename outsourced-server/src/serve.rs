//! Serving a router: an accept loop with hyper, TLS through rustls when given, and graceful
//! shutdown. Whatever the protocol, a connection is bounded before any request of it is read:
//! connections are capped in total and per peer address; a connection must send its first
//! request within `first_request_timeout` (a TLS handshake too; HTTP/1 headers within
//! `header_timeout`); one with no request in flight (a response's body counts until it is
//! sent) for `idle_timeout` is closed, whatever bytes move (HTTP/2 pings keep nothing open);
//! HTTP/2 peers are pinged and dropped when they stop answering.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::config::ServerConfig;

/// How long in-flight requests may finish after shutdown.
const DRAIN: Duration = Duration::from_secs(35);
/// How often an HTTP/2 peer is pinged, and how long it has to answer.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// Loads a certificate chain and a private key (PEM) into a TLS acceptor (TLS 1.2 and 1.3).
pub fn tls_acceptor(cert: &Path, key: &Path) -> std::io::Result<TlsAcceptor> {
    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(std::fs::File::open(cert)?))
        .collect::<Result<Vec<_>, _>>()?;
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(std::fs::File::open(key)?))?
        .ok_or_else(|| invalid(format!("no private key in {}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `app` on `listener` (over TLS with `tls`), with the connection limits of `config`,
/// until `shutdown` resolves; then lets in-flight requests finish for a while. Each request
/// carries its peer's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(H2_KEEP_ALIVE))
        .keep_alive_timeout(H2_KEEP_ALIVE);
    let builder = Arc::new(builder);
    let limits = Arc::new(Limits::new(config));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Over the caps: closed at once, before a byte of it is read.
        let Some(admitted) = limits.admit(peer.ip()) else {
            tracing::debug!(%peer, "refused a connection over the limits");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let service = Tracked {
            app: app.clone(),
            peer,
            activity: activity.clone(),
        };
        let service = TowerToHyperService::new(service);
        let watcher = graceful.watcher();
        let (builder, tls, limits) = (builder.clone(), tls.clone(), limits.clone());
        tokio::spawn(async move {
            let result = match tls {
                Some(tls) => {
                    // The handshake comes before any request: it has the first request's time.
                    let handshake = limits.first_request;
                    let Ok(Ok(stream)) = tokio::time::timeout(handshake, tls.accept(stream)).await
                    else {
                        return;
                    };
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    let served = watcher.watch(conn.into_owned());
                    until_closed(served, &limits, &activity, admitted).await
                }
                None => {
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    let served = watcher.watch(conn.into_owned());
                    until_closed(served, &limits, &activity, admitted).await
                }
            };
            match result {
                Some(Err(error)) => tracing::debug!(%error, "connection closed"),
                None => {
                    tracing::debug!(%peer, "closed a connection that sent no request in time, or sat idle")
                }
                Some(Ok(())) => {}
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN) => tracing::warn!("shutdown: gave up waiting for connections"),
    }
    Ok(())
}

/// Serves a connection until it ends, or until it must close (`None`). Its place under the
/// caps is given back before its socket closes, so that a peer that sees the close may
/// connect again at once.
async fn until_closed<F, E>(
    served: F,
    limits: &Limits,
    activity: &Activity,
    admitted: Admitted,
) -> Option<Result<(), E>>
where
    F: Future<Output = Result<(), E>>,
{
    tokio::pin!(served);
    let result = tokio::select! {
        served = &mut served => Some(served),
        _ = limits.expired(activity) => None,
    };
    drop(admitted);
    result
}

/// The connection caps, and the deadlines each connection is held to.
struct Limits {
    total: Arc<tokio::sync::Semaphore>,
    per_peer: Mutex<HashMap<IpAddr, usize>>,
    max_per_peer: usize,
    first_request: Duration,
    idle: Duration,
}

/// A connection's place under the caps, given back when it closes.
struct Admitted {
    limits: Arc<Limits>,
    peer: IpAddr,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut per_peer = self
            .limits
            .per_peer
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                per_peer.remove(&self.peer);
            }
        }
    }
}

impl Limits {
    fn new(config: &ServerConfig) -> Self {
        Limits {
            total: Arc::new(tokio::sync::Semaphore::new(config.max_connections)),
            per_peer: Mutex::new(HashMap::new()),
            max_per_peer: config.max_connections_per_peer,
            first_request: config.first_request_timeout,
            idle: config.idle_timeout,
        }
    }

    /// A place for a connection from `peer`, if both caps have room.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Admitted> {
        let permit = self.total.clone().try_acquire_owned().ok()?;
        let mut per_peer = self.per_peer.lock().unwrap_or_else(|e| e.into_inner());
        let n = per_peer.entry(peer).or_default();
        if *n >= self.max_per_peer {
            return None;
        }
        *n += 1;
        Some(Admitted {
            limits: self.clone(),
            peer,
            _permit: permit,
        })
    }

    /// Resolves when the connection must close: no request within the first-request
    /// deadline, or nothing in flight for the idle timeout.
    async fn expired(&self, activity: &Activity) {
        loop {
            let now = activity.elapsed();
            let wait = if !activity.started.load(Ordering::Relaxed) {
                match self.first_request.checked_sub(now) {
                    Some(left) if !left.is_zero() => left,
                    _ => return,
                }
            } else if activity.in_flight.load(Ordering::Relaxed) > 0 {
                self.idle
            } else {
                // Since the last request ended, whatever bytes moved: HTTP/2 pings and their
                // answers keep no idle connection open.
                match self.idle.checked_sub(now.saturating_sub(activity.last())) {
                    Some(left) if !left.is_zero() => left,
                    _ => return,
                }
            };
            tokio::time::sleep(wait.max(Duration::from_millis(50))).await;
        }
    }
}

/// What a connection has done: whether a request came, how many are in flight, when the last
/// one ended.
struct Activity {
    born: Instant,
    started: AtomicBool,
    in_flight: AtomicUsize,
    /// Milliseconds after `born` that the last request ended.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            born: Instant::now(),
            started: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        }
    }

    fn elapsed(&self) -> Duration {
        self.born.elapsed()
    }

    fn touch(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Duration {
        Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// The router as one connection's service: it counts the connection's requests in flight and
/// gives each its peer's address.
#[derive(Clone)]
struct Tracked {
    app: Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

/// A request in flight, counted until its response is produced.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

impl tower::Service<hyper::Request<hyper::body::Incoming>> for Tracked {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        let mut request = request.map(axum::body::Body::new);
        self.activity.started.store(true, Ordering::Relaxed);
        self.activity.in_flight.fetch_add(1, Ordering::Relaxed);
        let counted = InFlight(self.activity.clone());
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let call = tower::ServiceExt::oneshot(self.app.clone(), request);
        Box::pin(async move {
            let response = call.await?;
            // In flight until its body is sent (or dropped): a long download is not idle.
            Ok(response.map(|body| {
                use http_body_util::BodyExt;
                axum::body::Body::new(body.map_frame(move |frame| {
                    let _held = &counted;
                    frame
                }))
            }))
        })
    }
}
