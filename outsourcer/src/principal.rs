//! `outsourcer worker|producer|admin ...`

use std::path::Path;

use outsourced_backend_sql::{Credentials, Role, secrets::write_private};
use outsourced_core::{Error, Result};
use outsourced_worker::WorkerConfig;
use outsourced_worker::config::BackendConfig;
use serde_json::json;

use crate::args::PrincipalCommand;
use crate::context::Ctx;
use crate::output::{principal_json, principals_table, print_json};

pub(crate) async fn run(ctx: &Ctx, role: Role, command: PrincipalCommand) -> Result<()> {
    let directory = ctx.directory();
    let principal = match command {
        PrincipalCommand::Create { name } => {
            let (principal, credentials) = directory.create(&ctx.key()?, role, &name).await?;
            return report_credentials(ctx, &principal, &credentials, "created");
        }
        PrincipalCommand::List => {
            let all = directory.list(role).await?;
            if ctx.json {
                print_json(&all.iter().map(principal_json).collect());
            } else {
                println!("{}", principals_table(&all));
            }
            return Ok(());
        }
        PrincipalCommand::Show { name } => directory.get(role, &name).await?,
        PrincipalCommand::Lock { name } => directory.set_locked(role, &name, true).await?,
        PrincipalCommand::Unlock { name } => directory.set_locked(role, &name, false).await?,
        PrincipalCommand::RotateSecret { name } => {
            let credentials = directory.rotate_secret(&ctx.key()?, role, &name).await?;
            let principal = directory.get(role, &name).await?;
            return report_credentials(ctx, &principal, &credentials, "rotated the secret of");
        }
        PrincipalCommand::Delete { name } => {
            directory.delete(role, &name).await?;
            if ctx.json {
                print_json(&json!({ "deleted": name, "role": role.as_str() }));
            } else {
                println!("deleted {role} {name}");
            }
            return Ok(());
        }
        PrincipalCommand::Grant { name, queue } => {
            only_producers(role, "grant")?;
            directory.grant(role, &name, &queue).await?
        }
        PrincipalCommand::Revoke { name, queue } => {
            only_producers(role, "revoke")?;
            directory.revoke(role, &name, &queue).await?
        }
        PrincipalCommand::Password { name } => {
            if role != Role::Admin {
                return Err(Error::invalid(
                    "only admins log in to the dashboard: use `admin password NAME`",
                ));
            }
            directory.set_password(&name, &read_password()?).await?;
            if ctx.json {
                print_json(&json!({ "admin": name, "password": "set" }));
            } else {
                println!("set the dashboard password of admin {name}");
            }
            return Ok(());
        }
        PrincipalCommand::Config { name, output, url } => {
            if role != Role::Worker {
                return Err(Error::invalid(
                    "`config` writes a worker's config; use `worker config`",
                ));
            }
            return write_config(ctx, &name, output.as_deref(), url).await;
        }
    };
    if ctx.json {
        print_json(&principal_json(&principal));
    } else {
        println!("{}", principals_table(std::slice::from_ref(&principal)));
    }
    Ok(())
}

/// A password: prompted for without echo on a terminal, else the first line of standard input.
fn read_password() -> Result<String> {
    use std::io::IsTerminal;
    let failed = |e: std::io::Error| Error::invalid(format!("cannot read the password: {e}"));
    if std::io::stdin().is_terminal() {
        let password = rpassword::prompt_password("new dashboard password: ").map_err(failed)?;
        let again = rpassword::prompt_password("again: ").map_err(failed)?;
        if password != again {
            return Err(Error::invalid("the two passwords differ"));
        }
        return Ok(password);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(failed)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn only_producers(role: Role, what: &str) -> Result<()> {
    match role {
        Role::Producer => Ok(()),
        Role::Worker => Err(Error::invalid(format!(
            "workers are not granted queues but hired: use `queue hire QUEUE WORKER` instead of `worker {what}`"
        ))),
        Role::Admin => Err(Error::invalid("admins may use every queue already")),
    }
}

fn report_credentials(
    ctx: &Ctx,
    principal: &outsourced_backend_sql::Principal,
    credentials: &Credentials,
    verb: &str,
) -> Result<()> {
    if ctx.json {
        let mut value = principal_json(principal);
        value["consumer_secret"] = json!(credentials.consumer_secret);
        print_json(&value);
    } else {
        println!("{verb} {} {}", principal.role, principal.name);
        println!("  consumer key:    {}", credentials.consumer_key);
        println!("  consumer secret: {}", credentials.consumer_secret);
    }
    Ok(())
}

/// The database URL as the worker will see it: a relative SQLite path made absolute, so the
/// config works from any directory.
fn absolute_sqlite(url: &str) -> String {
    let Some(rest) = url.strip_prefix("sqlite://") else {
        return url.to_owned();
    };
    let (path, query) = rest
        .split_once('?')
        .map_or((rest, None), |(p, q)| (p, Some(q)));
    if path.starts_with('/') || path.contains(":memory:") {
        return url.to_owned();
    }
    let absolute = std::env::current_dir()
        .map(|dir| dir.join(path))
        .unwrap_or_else(|_| path.into());
    match query {
        Some(query) => format!("sqlite://{}?{query}", absolute.display()),
        None => format!("sqlite://{}", absolute.display()),
    }
}

async fn write_config(
    ctx: &Ctx,
    name: &str,
    output: Option<&Path>,
    url: Option<String>,
) -> Result<()> {
    let directory = ctx.directory();
    let worker = directory.get(Role::Worker, name).await?;
    let backend = match url {
        Some(url) => {
            let credentials = directory
                .credentials(&ctx.key()?, Role::Worker, name)
                .await?;
            BackendConfig::Http {
                url,
                consumer_key: credentials.consumer_key,
                consumer_secret: credentials.consumer_secret,
                ca_file: None,
            }
        }
        None => BackendConfig::Sql {
            url: absolute_sqlite(&ctx.url),
        },
    };
    let config = WorkerConfig {
        worker: worker.name.clone(),
        backend,
        queues: worker.queues.clone(),
        concurrency: None,
        batch: None,
        max_run_time: None,
        lease: None,
        idle_wait: None,
        shutdown_grace: None,
        min_priority: None,
        max_priority: None,
        exit_on_complete: false,
        commands: Default::default(),
    };
    let yaml = format!(
        "# The config of worker {name}, written by outsourcer. Run it with:\n#   outsourced-worker --config <this file>\n{}",
        config.to_yaml()
    );
    match output {
        Some(path) => {
            write_private(path, yaml.trim_end())?;
            if !ctx.json {
                println!("wrote the config of worker {name} to {}", path.display());
            } else {
                print_json(&json!({ "worker": name, "config": path.display().to_string() }));
            }
        }
        None => print!("{yaml}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::absolute_sqlite;

    #[test]
    fn relative_sqlite_paths_become_absolute() {
        let url = absolute_sqlite("sqlite://outsourced.db");
        assert!(url.starts_with("sqlite:///"), "{url}");
        assert!(url.ends_with("/outsourced.db"), "{url}");
        assert_eq!(absolute_sqlite("sqlite:///var/x.db"), "sqlite:///var/x.db");
        assert_eq!(absolute_sqlite("postgres://h/db"), "postgres://h/db");
        assert!(absolute_sqlite("sqlite://x.db?mode=rwc").ends_with("/x.db?mode=rwc"));
    }
}
