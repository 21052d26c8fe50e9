//! What every command needs: the backend, the directory, the server key, the output mode.

use std::path::PathBuf;

use outsourced_backend_sql::{Directory, ServerKey, SqlBackend, SqlConfig};
use outsourced_core::{Actor, Result};

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

    /// The server key, created on first use (and said so on standard error).
    pub(crate) fn key(&self) -> Result<ServerKey> {
        let path = self.key_path();
        let (key, created) = ServerKey::load_or_create(&path)?;
        if created {
            eprintln!(
                "outsourcer: created the server key {} (keep it safe: it decrypts every consumer secret)",
                path.display()
            );
        }
        Ok(key)
    }
}
