//! The conformance suite on PostgreSQL and MariaDB, directly and through the HTTP backend.
//! Each harness gets a fresh schema (PostgreSQL) or database (MariaDB).

use outsourced_core::conformance;

use crate::http::http_harness_with;
use crate::support::{Namespaces, Server, sql_harness_with};

async fn suite(server: Server, over_http: bool) {
    let Some(url) = server.url() else {
        return;
    };
    let spaces = Namespaces::new(server, &url).await;
    let name = format!("{server:?}{}", if over_http { " over http" } else { "" });
    let make = || async {
        let config = spaces.fresh().await;
        if over_http {
            http_harness_with(config).await
        } else {
            sql_harness_with(config).await
        }
    };
    conformance::run(&name, make).await;
    outsourced_worker::conformance::run(&format!("{name}, worker"), make).await;
    spaces.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_postgres() {
    suite(Server::Postgres, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_over_http_on_postgres() {
    suite(Server::Postgres, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_mariadb() {
    suite(Server::MariaDb, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_over_http_on_mariadb() {
    suite(Server::MariaDb, true).await;
}
