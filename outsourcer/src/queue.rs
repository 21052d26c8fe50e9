//! `outsourcer queue ...`

use outsourced_backend_sql::Role;
use outsourced_core::{Backend, BackendExt, QueueLimit, QueueUpdate, Result};

use crate::args::{LimitArgs, QueueCommand};
use crate::context::Ctx;
use crate::output::{principal_json, print_json, queue_json, queues_table};

fn limit(args: &LimitArgs) -> Option<QueueLimit> {
    if args.unlimited {
        Some(QueueLimit::Unlimited)
    } else {
        args.limit.map(QueueLimit::Max)
    }
}

pub(crate) async fn run(ctx: &Ctx, command: QueueCommand) -> Result<()> {
    let (backend, by) = (&ctx.backend, ctx.actor());
    let info = match command {
        QueueCommand::Create { name, limit: l } => {
            let created = backend
                .create_queue(&by, &name, limit(&l).unwrap_or_default())
                .await?;
            println_unless_json(
                ctx,
                format!("created queue {name} (limit {})", created.limit),
            );
            created
        }
        QueueCommand::List => {
            let queues = backend.queues(&by).await?;
            if ctx.json {
                print_json(&queues.iter().map(queue_json).collect());
            } else {
                println!("{}", queues_table(&queues));
            }
            return Ok(());
        }
        QueueCommand::Show { name } => backend.queue(&by, &name).await?,
        QueueCommand::Update {
            name,
            limit: l,
            pause,
            resume,
        } => {
            let paused = if pause {
                Some(true)
            } else if resume {
                Some(false)
            } else {
                None
            };
            let update = QueueUpdate {
                limit: limit(&l),
                paused,
            };
            backend.update_queue(&by, &name, update).await?
        }
        QueueCommand::Delete { name } => {
            backend.delete_queue(&by, &name).await?;
            println_unless_json(ctx, format!("deleted queue {name}"));
            if ctx.json {
                print_json(&serde_json::json!({ "deleted": name }));
            }
            return Ok(());
        }
        QueueCommand::Hire { queue, worker } => {
            let hired = ctx.directory().grant(Role::Worker, &worker, &queue).await?;
            return report_access(
                ctx,
                &hired,
                format!("hired worker {worker} for queue {queue}"),
            );
        }
        QueueCommand::Fire { queue, worker } => {
            let fired = ctx
                .directory()
                .revoke(Role::Worker, &worker, &queue)
                .await?;
            return report_access(
                ctx,
                &fired,
                format!("fired worker {worker} from queue {queue}"),
            );
        }
    };
    if ctx.json {
        print_json(&queue_json(&info));
    } else {
        println!("{}", queues_table(std::slice::from_ref(&info)));
    }
    Ok(())
}

fn report_access(
    ctx: &Ctx,
    principal: &outsourced_backend_sql::Principal,
    text: String,
) -> Result<()> {
    if ctx.json {
        print_json(&principal_json(principal));
    } else {
        println!("{text}; it works: {}", principal.queues.join(", "));
    }
    Ok(())
}

pub(crate) fn println_unless_json(ctx: &Ctx, text: String) {
    if !ctx.json {
        println!("{text}");
    }
}
