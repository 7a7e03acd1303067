//! `keyledger webhook ...`: the account's webhooks (owners and admins), see docs/webhooks.md.

use std::io::{self, Write};

use clap::{Args, Subcommand};
use keyledger_client::Client;
use keyledger_wire::{
    CreateWebhookRequest, CreatedWebhook, Webhook, WebhookDelivery, WebhookDeliveryList, WebhookList,
};

use super::confirm::{confirm, YesArgs};
use super::table::Table;
use super::{deleted_json, emit, gather, write_json, write_secret_notice, Output, PageArgs};

#[derive(Subcommand)]
pub(crate) enum WebhookCommand {
    /// Create a webhook; its signing secret is shown this once.
    Create(CreateArgs),
    /// List the account's webhooks.
    List(PageArgs),
    /// Show one webhook (never its secret).
    Show(IdArgs),
    /// Delete a webhook: nothing more is delivered to it (asks first; --yes to skip the question).
    Delete(DeleteArgs),
    /// Replace a webhook's signing secret; the new one is shown this once.
    RotateSecret(IdArgs),
    /// A webhook's delivery log, newest first.
    Deliveries(DeliveriesArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Where deliveries are POSTed (https://).
    #[arg(long)]
    url: String,
    /// An event type to deliver: key.created, key.disabled, key.deleted, key.leaked,
    /// key.expiring (repeat the flag).
    #[arg(long = "event", value_name = "TYPE", required = true)]
    events: Vec<String>,
    #[arg(long)]
    description: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct IdArgs {
    /// The webhook's id.
    #[arg(long)]
    id: String,
}

#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    /// The webhook's id.
    #[arg(long)]
    id: String,
    #[command(flatten)]
    yes: YesArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DeliveriesArgs {
    /// The webhook's id.
    #[arg(long)]
    id: String,
    #[command(flatten)]
    page: PageArgs,
}

pub(crate) async fn run(client: &Client, output: Output, command: WebhookCommand) -> anyhow::Result<()> {
    match command {
        WebhookCommand::Create(args) => {
            let request =
                CreateWebhookRequest { url: args.url, event_types: args.events, description: args.description };
            let created = client.create_webhook(&request).await?.value;
            show_secret(output, &created, "Created webhook")?;
        }
        WebhookCommand::RotateSecret(args) => {
            let rotated = client.rotate_webhook_secret(&args.id).await?.value;
            show_secret(output, &rotated, "Rotated the secret of webhook")?;
        }
        WebhookCommand::List(args) => {
            let fetch = |page| async move { client.list_webhooks_page(&page).await };
            let split = |l: WebhookList| (l.webhooks, l.next_cursor);
            let (webhooks, next_cursor) = gather(args.limit, fetch, split).await?;
            let list = WebhookList { webhooks, next_cursor };
            emit(|out| match output {
                Output::Json => write_json(out, &list),
                Output::Table => write_table(out, &list.webhooks),
            })?;
        }
        WebhookCommand::Show(args) => {
            let webhook = client.get_webhook(&args.id).await?;
            emit(|out| match output {
                Output::Json => write_json(out, &webhook),
                Output::Table => write_table(out, std::slice::from_ref(&webhook)),
            })?;
        }
        WebhookCommand::Delete(args) => {
            if !args.yes.yes {
                let url = client.get_webhook(&args.id).await?.url;
                confirm(&format!("Delete webhook {} (to {url})?", args.id), &args.yes)?;
            }
            let written = client.delete_webhook(&args.id).await?;
            emit(|out| match output {
                Output::Json => write_json(out, &deleted_json(&args.id, written.index)),
                Output::Table => writeln!(out, "Deleted webhook {}.", args.id),
            })?;
        }
        WebhookCommand::Deliveries(args) => {
            let id = args.id.as_str();
            let fetch = |page| async move { client.list_webhook_deliveries_page(id, &page).await };
            let split = |l: WebhookDeliveryList| (l.deliveries, l.next_cursor);
            let (deliveries, next_cursor) = gather(args.page.limit, fetch, split).await?;
            let list = WebhookDeliveryList { deliveries, next_cursor };
            emit(|out| match output {
                Output::Json => write_json(out, &list),
                Output::Table => write_deliveries(out, &list.deliveries),
            })?;
        }
    }
    Ok(())
}

fn show_secret(output: Output, created: &CreatedWebhook, headline: &str) -> io::Result<()> {
    emit(|out| match output {
        Output::Json => write_json(out, created),
        Output::Table => {
            write_table(out, std::slice::from_ref(&created.webhook))?;
            writeln!(out)?;
            let headline = format!("{headline} {}.", created.webhook.id);
            write_secret_notice(out, &headline, &created.secret, None)
        }
    })
}

fn write_table(out: &mut dyn Write, webhooks: &[Webhook]) -> io::Result<()> {
    if webhooks.is_empty() {
        return writeln!(out, "No webhooks found.");
    }
    let mut table = Table::with_header(&["ID", "URL", "EVENTS", "CURSOR", "CREATED"]);
    for webhook in webhooks {
        let events = webhook.event_types.join(",");
        let cursor = webhook.cursor.to_string();
        table.row([
            webhook.id.as_str(),
            webhook.url.as_str(),
            events.as_str(),
            cursor.as_str(),
            webhook.created_at.as_str(),
        ]);
    }
    table.write(out)
}

fn write_deliveries(out: &mut dyn Write, deliveries: &[WebhookDelivery]) -> io::Result<()> {
    if deliveries.is_empty() {
        return writeln!(out, "No deliveries recorded yet.");
    }
    let mut table = Table::with_header(&["DELIVERY", "TYPE", "ATTEMPTS", "RESULT", "AT"]);
    for d in deliveries {
        let attempts = d.attempts.to_string();
        let result = if d.delivered { d.result.clone() } else { format!("{} (gave up)", d.result) };
        table.row([d.id.as_str(), d.event_type.as_str(), attempts.as_str(), result.as_str(), d.at.as_str()]);
    }
    table.write(out)
}
