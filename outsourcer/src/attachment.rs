//! `outsourcer job enqueue --attach`, `job attach` and `job attachment`: files streamed in
//! and out in chunks, their SHA-256 computed on the way in and checked on the way out.

use std::path::Path;

use futures::StreamExt;
use outsourced_core::{Backend, ByteStream, Error, JobId, Result, Upload};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::context::Ctx;
use crate::output::print_json;

/// Bytes read from a file at a time.
const READ: usize = 256 * 1024;

fn io(path: &Path, error: std::io::Error) -> Error {
    Error::invalid(format!("{}: {error}", path.display()))
}

/// The file as an upload: its SHA-256 first (one pass), then its bytes (a second), so that the
/// backend refuses it if it changes in between. Its name is kept as metadata only.
pub(crate) async fn upload(path: &Path, content_type: Option<String>) -> Result<Upload> {
    let mut hasher = Sha256::new();
    let mut file = tokio::fs::File::open(path).await.map_err(|e| io(path, e))?;
    let mut buffer = vec![0u8; READ];
    loop {
        let n = file.read(&mut buffer).await.map_err(|e| io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    let file = tokio::fs::File::open(path).await.map_err(|e| io(path, e))?;
    let owned = path.to_owned();
    let body: ByteStream = futures::stream::try_unfold(file, move |mut file| {
        let path = owned.clone();
        async move {
            let mut buffer = vec![0u8; READ];
            let n = file.read(&mut buffer).await.map_err(|e| io(&path, e))?;
            buffer.truncate(n);
            Ok((n > 0).then(|| (bytes::Bytes::from(buffer), file)))
        }
    })
    .boxed();
    let mut upload = Upload::new(body).sha256(format!("{:x}", hasher.finalize()));
    if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
        upload = upload.file_name(name);
    }
    upload.content_type = content_type;
    Ok(upload)
}

/// `outsourcer job attach ID FILE`.
pub(crate) async fn attach(
    ctx: &Ctx,
    id: JobId,
    path: &Path,
    content_type: Option<String>,
) -> Result<()> {
    let file = upload(path, content_type).await?;
    let info = ctx.backend.attach(&ctx.actor(), id, file).await?;
    if ctx.json {
        print_json(&serde_json::json!({ "id": id.0, "size": info.size, "sha256": info.sha256 }));
    } else {
        out!(
            "attached {} ({} bytes, SHA-256 {}) to job {id}",
            path.display(),
            info.size,
            info.sha256
        );
    }
    Ok(())
}

/// `outsourcer job attachment ID -o FILE`: writes it, checks its SHA-256, and removes the
/// file again when the bytes are not what was stored.
pub(crate) async fn save(ctx: &Ctx, id: JobId, output: &Path) -> Result<()> {
    let mut download = ctx.backend.attachment(&ctx.actor(), id).await?;
    let to_stdout = output.as_os_str() == "-";
    let mut sink: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = if to_stdout {
        Box::new(tokio::io::stdout())
    } else {
        Box::new(
            tokio::fs::File::create(output)
                .await
                .map_err(|e| io(output, e))?,
        )
    };
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = download.body.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        sink.write_all(&chunk).await.map_err(|e| io(output, e))?;
    }
    sink.flush().await.map_err(|e| io(output, e))?;
    let sha256 = format!("{:x}", hasher.finalize());
    if sha256 != download.info.sha256 || size != download.info.size {
        if !to_stdout {
            let _ = tokio::fs::remove_file(output).await;
        }
        return Err(Error::invalid(format!(
            "job {id}'s attachment arrived damaged: {size} bytes with SHA-256 {sha256}, stored as {} with {}",
            download.info.size, download.info.sha256
        )));
    }
    if !to_stdout {
        if ctx.json {
            print_json(&serde_json::json!({ "path": output, "size": size, "sha256": sha256 }));
        } else {
            out!(
                "wrote {size} bytes (SHA-256 {sha256}) to {}",
                output.display()
            );
        }
    }
    Ok(())
}
