//! What every command needs: the backend, the directory, the server key, the output mode.

use std::path::PathBuf;

use outsourced_backend_sql::store::secrets::SERVER_KEY_ENV;
use outsourced_backend_sql::{Directory, ServerKey, SqlBackend, SqlConfig};
use outsourced_core::{Actor, Error, Result};

use crate::args::{Cli, Command};

/// Who the CLI acts as: an admin named after the local user.
pub(crate) fn actor() -> Actor {
    let user = std::env::var("USER").unwrap_or_else(|_| "cli".to_owned());
    Actor::Admin(format!("outsourcer:{user}"))
}

/// The open database and the global options.
pub(crate) struct Ctx {
    pub(crate) backend: SqlBackend,
    pub(crate) url: String,
    pub(crate) json: bool,
    key_file: Option<PathBuf>,
}

impl Ctx {
    /// Opens (and migrates) the database the command line names; only a command that sets one
    /// up creates it when missing (see `Command::may_create_database`).
    pub(crate) async fn open(cli: &Cli) -> Result<Ctx> {
        let mut config = SqlConfig::new(&cli.database);
        config.create_if_missing = cli.command.may_create_database();
        if let Command::Serve(args) = &cli.command {
            if let Some(every) = args.idle_recheck {
                config.idle_recheck = every;
            }
            if let Some(mib) = args.max_attachment_mib {
                config.max_attachment_bytes = mib.saturating_mul(1 << 20);
            }
        }
        let backend = SqlBackend::open(config).await?;
        Ok(Ctx {
            backend,
            url: cli.database.clone(),
            json: cli.json,
            key_file: cli.key_file.clone(),
        })
    }

    /// Who the CLI acts as: an admin named after the local user.
    pub(crate) fn actor(&self) -> Actor {
        actor()
    }

    pub(crate) fn directory(&self) -> Directory {
        Directory::new(self.backend.clone())
    }

    /// The server key file: `--key-file`, else `$XDG_CONFIG_HOME/outsourced/server.key`, else
    /// `~/.config/outsourced/server.key`.
    pub(crate) fn key_path(&self) -> PathBuf {
        if let Some(path) = &self.key_file {
            return path.clone();
        }
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
            .unwrap_or_else(|| PathBuf::from("."));
        config.join("outsourced").join("server.key")
    }

    /// The server key, created on first use (and said so on standard error), refused unless
    /// it opens a stored secret (or none is stored yet): a key file given wrong, or missing
    /// where another was used, would otherwise become a new key, and a server started with it
    /// would answer every signed request with a 500. A key created for nothing is removed.
    pub(crate) async fn key(&self) -> Result<ServerKey> {
        let path = self.key_path();
        let (key, created) = ServerKey::load_or_create(&path)?;
        if self.directory().opens_secrets(&key).await? {
            if created {
                said_created(&path);
            }
            return Ok(key);
        }
        let file = "give that key's file (--key-file or OUTSOURCED_KEY_FILE)";
        let (whose, remedy) = match (created, std::env::var_os(SERVER_KEY_ENV).is_some()) {
            (true, _) => {
                let _ = std::fs::remove_file(&path);
                let whose = format!(
                    "there is no server key at {}, and this database's consumer secrets were encrypted with another key",
                    path.display()
                );
                (whose, file.to_owned())
            }
            (false, true) => (
                format!(
                    "the server key in {SERVER_KEY_ENV} is not the one this database's consumer secrets were encrypted with"
                ),
                format!("give that key in {SERVER_KEY_ENV}, or unset it and {file}"),
            ),
            (false, false) => (
                format!(
                    "the server key {} is not the one this database's consumer secrets were encrypted with",
                    path.display()
                ),
                file.to_owned(),
            ),
        };
        Err(Error::invalid(format!(
            "{whose}: {remedy}. If it is lost, give each worker and producer a new secret with `outsourcer worker|producer rotate-secret NAME`"
        )))
    }

    /// The server key, created on first use, unchecked: for giving a principal a new secret,
    /// which is how every secret is moved to a new key when the old one is lost.
    pub(crate) fn key_unchecked(&self) -> Result<ServerKey> {
        let path = self.key_path();
        let (key, created) = ServerKey::load_or_create(&path)?;
        if created {
            said_created(&path);
        }
        Ok(key)
    }
}

fn said_created(path: &std::path::Path) {
    eprintln!(
        "outsourcer: created the server key {} (keep it safe: it decrypts every consumer secret)",
        path.display()
    );
}
