//! `outsourcer worker|producer|admin ...`

use std::path::Path;

use outsourced_backend_sql::{Credentials, Principal, Role, store::secrets::write_private};
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
    show(ctx, &principal).await
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
            let (principal, credentials) = directory.create(&ctx.key().await?, role, &name).await?;
            return report_credentials(ctx, &principal, &credentials, "created");
        }
        PrincipalCommand::List => {
            let all = directory.list(role).await?;
            let live = live_processes(ctx, role, &all).await?;
            if ctx.json {
                let listed = all.iter().zip(&live).map(|(p, live)| listed_json(p, *live));
                print_json(&listed.collect());
            } else {
                out!("{}", principals_table(&all, &live));
            }
            return Ok(());
        }
        PrincipalCommand::Show { name } => directory.get(role, &name).await?,
        PrincipalCommand::Lock { name } => directory.set_locked(role, &name, true).await?,
        PrincipalCommand::Unlock { name } => directory.set_locked(role, &name, false).await?,
        PrincipalCommand::RotateSecret { name } => {
            let credentials = directory
                .rotate_secret(&ctx.key_unchecked()?, role, &name)
                .await?;
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
    show(ctx, &principal).await
}

async fn show(ctx: &Ctx, principal: &Principal) -> Result<()> {
    let one = std::slice::from_ref(principal);
    let live = live_processes(ctx, principal.role, one).await?;
    if ctx.json {
        print_json(&listed_json(principal, live[0]));
    } else {
        out!("{}", principals_table(one, &live));
    }
    Ok(())
}

/// How many processes of each of `principals` the database heard from lately (a worker's
/// instances; `None` for producers and admins, which have none).
async fn live_processes(
    ctx: &Ctx,
    role: Role,
    principals: &[Principal],
) -> Result<Vec<Option<usize>>> {
    if role != Role::Worker {
        return Ok(vec![None; principals.len()]);
    }
    let live = ctx.backend.live_instances().await?;
    let of = |name: &str| live.iter().filter(|i| i.worker == name).count();
    Ok(principals.iter().map(|p| Some(of(&p.name))).collect())
}

/// A principal as JSON, with a worker's live processes.
fn listed_json(principal: &Principal, live: Option<usize>) -> serde_json::Value {
    let mut json = principal_json(principal);
    if let Some(live) = live {
        json["live_processes"] = json!(live);
    }
    json
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
/// config works from any directory, without the `mode` an admin's URL may carry to create the
/// file (a worker never creates a database, and `mode=rwc` in its config would say it might).
fn absolute_sqlite(url: &str) -> String {
    let Some(rest) = url.strip_prefix("sqlite://") else {
        return url.to_owned();
    };
    let (path, query) = rest
        .split_once('?')
        .map_or((rest, None), |(p, q)| (p, Some(q)));
    if path.contains(":memory:") {
        return url.to_owned();
    }
    let absolute = match path.starts_with('/') {
        true => path.into(),
        false => std::env::current_dir()
            .map(|dir| dir.join(path))
            .unwrap_or_else(|_| path.into()),
    };
    let kept: Vec<&str> = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|param| !param.is_empty() && !param.starts_with("mode="))
        .collect();
    match kept.is_empty() {
        true => format!("sqlite://{}", absolute.display()),
        false => format!("sqlite://{}?{}", absolute.display(), kept.join("&")),
    }
}

/// Refuses a server URL a worker could not use, and words a note for one without a path: `outsourcer
/// serve` mounts the API under `/outsourced` unless told otherwise, so a bare host is more
/// often a mount forgotten than a server mounted at its root.
fn check_url(url: &str) -> Result<Option<String>> {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return Err(Error::invalid(format!(
            "--url {url:?} is not a server's URL: give http:// or https://, the host, and the API's mount (such as http://127.0.0.1:8080/outsourced)"
        )));
    };
    let path = rest.split_once('/').map_or("", |(_, path)| path);
    let bare = path.trim_matches('/').is_empty();
    Ok(bare.then(|| {
        format!(
            "note: --url {url:?} has no path; `outsourcer serve` mounts the API under /outsourced unless given --mount (then: {}/outsourced)",
            url.trim_end_matches('/')
        )
    }))
}

async fn write_config(
    ctx: &Ctx,
    name: &str,
    output: Option<&Path>,
    url: Option<String>,
) -> Result<()> {
    let directory = ctx.directory();
    let worker = directory.get(Role::Worker, name).await?;
    let mut note = None;
    let backend = match url {
        Some(url) => {
            note = check_url(&url)?;
            let credentials = directory
                .credentials(&ctx.key().await?, Role::Worker, name)
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
    let output = output.filter(|path| path.as_os_str() != "-");
    // Rewriting a config (after `rotate-secret`, say) keeps what the admin wrote in it.
    let existing = output.and_then(|path| std::fs::read_to_string(path).ok());
    let yaml = config_text(&worker.name, backend, existing);
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
    if let Some(note) = note {
        eprintln!("{note}");
    }
    Ok(())
}

/// A worker's config as text. A valid file already there keeps its text (comments, order,
/// every other section): only its `worker:` and `backend:` sections are written anew, the
/// backend keeping a `ca_file` it named. A new file gets a header and a commented example of
/// `commands:`.
fn config_text(name: &str, backend: BackendConfig, existing: Option<String>) -> String {
    let old = existing.and_then(|text| WorkerConfig::parse(&text).ok().map(|c| (text, c)));
    let Some((text, old)) = old else {
        let header = format!(
            "# The config of worker {name}, written by outsourcer. Its keys: docs/worker-config.md.\n\
             # Run it with: outsourced-worker --config <this file>\n\
             # The worker works the queues it is hired for (outsourcer queue hire QUEUE {name}).\n"
        );
        let fresh = WorkerConfig::new(name, backend).to_yaml();
        return format!("{header}{fresh}{COMMANDS_EXAMPLE}");
    };
    let backend = match (backend, old.backend) {
        (
            BackendConfig::Http {
                url,
                consumer_key,
                consumer_secret,
                ..
            },
            BackendConfig::Http { ca_file, .. },
        ) => BackendConfig::Http {
            url,
            consumer_key,
            consumer_secret,
            ca_file,
        },
        (backend, _) => backend,
    };
    let ours = WorkerConfig::new(name, backend).to_yaml();
    let (head, rest) = leading_comments(&without_sections(&text, &["worker", "backend"]));
    format!("{head}{ours}{rest}")
}

/// `text` without its top-level sections named `keys` (each key's line and the indented lines
/// under it).
fn without_sections(text: &str, keys: &[&str]) -> String {
    let mut kept = String::new();
    let mut skipping = false;
    for line in text.lines() {
        let top_level = !line.starts_with([' ', '\t']) && !line.trim().is_empty();
        if top_level {
            let key = line.split(':').next().unwrap_or_default().trim();
            skipping = !line.starts_with('#') && keys.contains(&key);
        }
        if !skipping {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    kept
}

/// The comment lines at the top of `text`, and the rest.
fn leading_comments(text: &str) -> (String, String) {
    let end = text
        .lines()
        .take_while(|line| line.starts_with('#'))
        .map(|line| line.len() + 1)
        .sum::<usize>()
        .min(text.len());
    (text[..end].to_owned(), text[end..].to_owned())
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
    use super::{absolute_sqlite, config_text};
    use outsourced_worker::WorkerConfig;
    use outsourced_worker::config::BackendConfig;

    #[test]
    fn a_config_written_again_keeps_the_admins_text() {
        let sql = || BackendConfig::Sql {
            url: "sqlite:///a.db".into(),
        };
        let first = config_text("w1", sql(), None);
        assert!(first.contains("# commands:"), "{first}");
        let edited =
            format!("# mine\n{first}concurrency: 3\ncommands:\n  Thumb:\n    program: /bin/true\n");
        let http = BackendConfig::Http {
            url: "https://h/outsourced".into(),
            consumer_key: "k".into(),
            consumer_secret: "s".into(),
            ca_file: None,
        };
        let again = config_text("w1", http.clone(), Some(edited));
        let parsed = WorkerConfig::parse(&again).expect("still a config");
        assert_eq!(parsed.backend, http);
        assert_eq!(parsed.concurrency, Some(3));
        assert!(parsed.commands.contains_key("Thumb"));
        assert!(again.starts_with("# mine\n"), "{again}");
        assert!(again.contains("# commands:"), "comments stay: {again}");
        assert_eq!(again.matches("worker:").count(), 1, "{again}");
    }

    #[test]
    fn relative_sqlite_paths_become_absolute_and_mode_is_dropped() {
        let url = absolute_sqlite("sqlite://outsourced.db");
        assert!(url.starts_with("sqlite:///"), "{url}");
        assert!(url.ends_with("/outsourced.db"), "{url}");
        assert_eq!(absolute_sqlite("sqlite:///var/x.db"), "sqlite:///var/x.db");
        assert_eq!(absolute_sqlite("postgres://h/db"), "postgres://h/db");
        assert!(absolute_sqlite("sqlite://x.db?mode=rwc").ends_with("/x.db"));
        assert_eq!(absolute_sqlite("sqlite:///x.db?mode=rwc"), "sqlite:///x.db");
        let kept = absolute_sqlite("sqlite:///x.db?mode=rwc&cache=shared");
        assert_eq!(kept, "sqlite:///x.db?cache=shared");
    }
}
