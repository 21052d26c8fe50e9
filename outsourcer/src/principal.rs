//! `outsourcer worker|producer|admin ...`

use std::path::Path;

use outsourced_backend_sql::{Credentials, Role, secrets::write_private};
use outsourced_core::{Error, Result};
use outsourced_worker::WorkerConfig;
use outsourced_worker::config::BackendConfig;
use serde_json::json;

use crate::args::{AdminCommand, PrincipalCommand, ProducerCommand, WorkerCommand};
use crate::context::Ctx;
use crate::output::{principal_json, principals_table, print_json};

/// `outsourcer worker ...`
pub(crate) async fn worker(ctx: &Ctx, command: WorkerCommand) -> Result<()> {
    match command {
        WorkerCommand::Common(command) => run(ctx, Role::Worker, command).await,
        WorkerCommand::Config { name, output, url } => {
            write_config(ctx, &name, output.as_deref(), url).await
        }
    }
}

/// `outsourcer producer ...`
pub(crate) async fn producer(ctx: &Ctx, command: ProducerCommand) -> Result<()> {
    let directory = ctx.directory();
    let principal = match command {
        ProducerCommand::Common(command) => return run(ctx, Role::Producer, command).await,
        ProducerCommand::Grant { name, queue } => {
            directory.grant(Role::Producer, &name, &queue).await?
        }
        ProducerCommand::Revoke { name, queue } => {
            directory.revoke(Role::Producer, &name, &queue).await?
        }
    };
    show(ctx, &principal);
    Ok(())
}

/// `outsourcer admin ...`
pub(crate) async fn admin(ctx: &Ctx, command: AdminCommand) -> Result<()> {
    match command {
        AdminCommand::Common(command) => run(ctx, Role::Admin, command).await,
        AdminCommand::Password { name } => {
            ctx.directory()
                .set_password(&name, &read_password()?)
                .await?;
            if ctx.json {
                print_json(&json!({ "admin": name, "password": "set" }));
            } else {
                out!("set the dashboard password of admin {name}");
            }
            Ok(())
        }
    }
}

/// What every kind of principal has.
async fn run(ctx: &Ctx, role: Role, command: PrincipalCommand) -> Result<()> {
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
                out!("{}", principals_table(&all));
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
                out!("deleted {role} {name}");
            }
            return Ok(());
        }
    };
    show(ctx, &principal);
    Ok(())
}

fn show(ctx: &Ctx, principal: &outsourced_backend_sql::Principal) {
    if ctx.json {
        print_json(&principal_json(principal));
    } else {
        out!("{}", principals_table(std::slice::from_ref(principal)));
    }
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
        out!("{verb} {} {}", principal.role, principal.name);
        out!("  consumer key:    {}", credentials.consumer_key);
        out!("  consumer secret: {}", credentials.consumer_secret);
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
    // Rewriting a config (after `rotate-secret`, say) keeps what the admin wrote in it.
    let kept = output.and_then(|path| std::fs::read_to_string(path).ok());
    let kept = kept.and_then(|text| WorkerConfig::parse(&text).ok());
    let yaml = config_text(&worker.name, backend, kept);
    match output {
        Some(path) => {
            write_private(path, yaml.trim_end())?;
            if !ctx.json {
                out!("wrote the config of worker {name} to {}", path.display());
            } else {
                print_json(&json!({ "worker": name, "config": path.display().to_string() }));
            }
        }
        None => out!("{}", yaml.trim_end()),
    }
    Ok(())
}

/// A worker's config: `kept`'s sections with the given name and backend (and its `ca_file`,
/// when it named one), or a fresh one with a commented example of `commands:`.
fn config_text(name: &str, backend: BackendConfig, kept: Option<WorkerConfig>) -> String {
    let header = format!(
        "# The config of worker {name}, written by outsourcer. Its keys: docs/worker-config.md.\n\
         # Run it with: outsourced-worker --config <this file>\n\
         # The worker works the queues it is hired for (outsourcer queue hire QUEUE {name}).\n"
    );
    let (mut config, fresh) = match kept {
        Some(kept) => (kept, false),
        None => (WorkerConfig::new(name, backend.clone()), true),
    };
    let ca_file = match &config.backend {
        BackendConfig::Http { ca_file, .. } => ca_file.clone(),
        BackendConfig::Sql { .. } => None,
    };
    config.worker = name.to_owned();
    config.backend = match backend {
        BackendConfig::Http {
            url,
            consumer_key,
            consumer_secret,
            ..
        } => BackendConfig::Http {
            url,
            consumer_key,
            consumer_secret,
            ca_file,
        },
        sql => sql,
    };
    let mut text = format!("{header}{}", config.to_yaml());
    if fresh && config.commands.is_empty() {
        text.push_str(COMMANDS_EXAMPLE);
    }
    text
}

/// What a fresh config says of `commands:`, which the admin fills in.
const COMMANDS_EXAMPLE: &str = "\
# The job classes this worker runs, each by a program: the job's arguments come as JSON on
# standard input, exit status 0 is success. A worker with no class refuses to start.
# commands:
#   Thumbnail:
#     program: ./thumbnail.sh      # relative to this file's directory
#     max_run_time: 5m
";

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
