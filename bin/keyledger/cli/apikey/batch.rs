//! `keyledger apikey create-batch`: up to 1000 keys in one `POST /v1/keys/batch`, read from a
//! JSON file of the request body; each result shown in order, the secrets printed this once or
//! written to a new 0600 file.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use keyledger_client::Client;
use keyledger_wire::{CreateKeysRequest, CreatedKeys, KeyBatchResult};

use crate::cli::table::Table;
use crate::cli::{emit, write_json, Output, SecretFile};

/// The most the request file may hold: the server's body limit.
const MAX_REQUEST_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Args)]
pub(crate) struct CreateBatchArgs {
    /// A JSON file holding `{"keys": [...]}`, each item what `apikey create` sends as JSON
    /// (`name`, `expires_in`, `owner`, ...); `-` reads standard input.
    #[arg(long, value_name = "PATH")]
    requests: PathBuf,
    /// Write each created key's id and secret to this new file (mode 0600), one `<id> <secret>`
    /// line each, instead of printing the secrets.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
}

pub(crate) async fn run(client: &Client, output: Output, args: CreateBatchArgs) -> anyhow::Result<()> {
    let request = read_request(&args)?;
    // The file is made before anything is created on the server.
    let reserved = SecretFile::reserve(args.file.as_deref())?;
    let mut answer = client.create_keys(&request).await?.value;
    let created: Vec<String> =
        answer.results.iter().filter_map(|r| Some(format!("{} {}", r.key.as_ref()?.id, r.secret.as_ref()?))).collect();
    if let (Some(reserved), false) = (reserved, created.is_empty()) {
        reserved.store(&created.join("\n"), &format!("{} keys", created.len()))?;
        answer.results.iter_mut().for_each(|r| r.secret = None);
    }
    let show_secrets = args.file.is_none() && !created.is_empty();
    emit(|out| match output {
        Output::Json => write_json(out, &answer),
        Output::Table => write_results(out, &request, &answer, show_secrets),
    })?;
    let failed = answer.results.iter().filter(|r| r.key.is_none()).count();
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} keys were not created; each one's error is shown",
        answer.results.len()
    );
    Ok(())
}

fn read_request(args: &CreateBatchArgs) -> anyhow::Result<CreateKeysRequest> {
    let name = args.requests.display();
    let mut text = String::new();
    let source: Box<dyn Read> = if args.requests.as_os_str() == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(std::fs::File::open(&args.requests).with_context(|| format!("cannot open {name}"))?)
    };
    source.take(MAX_REQUEST_BYTES + 1).read_to_string(&mut text).with_context(|| format!("cannot read {name}"))?;
    anyhow::ensure!(text.len() as u64 <= MAX_REQUEST_BYTES, "{name} is larger than the server's 1 MiB limit");
    serde_json::from_str(&text).with_context(|| format!("{name} is not a batch request (`{{\"keys\": [...]}}`)"))
}

/// One row per requested key: its status and name, then the new key's id (and its secret,
/// when shown) or the error it met.
fn write_results(
    out: &mut dyn Write,
    request: &CreateKeysRequest,
    answer: &CreatedKeys,
    show_secrets: bool,
) -> io::Result<()> {
    let last = if show_secrets { "SECRET OR ERROR" } else { "ERROR" };
    let mut table = Table::with_header(&["#", "STATUS", "NAME", "ID", last]);
    for (i, result) in answer.results.iter().enumerate() {
        let name = request.keys.get(i).map_or("", |k| k.name.as_str());
        table.row(row(i, name, result));
    }
    table.write(out)?;
    if show_secrets {
        writeln!(out)?;
        writeln!(out, "Store the secrets now: they cannot be shown again.")?;
    }
    Ok(())
}

fn row(i: usize, name: &str, result: &KeyBatchResult) -> [String; 5] {
    let (id, last) = match (&result.key, &result.error) {
        (Some(key), _) => (key.id.clone(), result.secret.clone().unwrap_or_default()),
        (None, Some(error)) => ("-".into(), format!("{} ({})", error.message, error.code)),
        (None, None) => ("-".into(), String::new()),
    };
    [i.to_string(), result.status.to_string(), name.to_string(), id, last]
}
