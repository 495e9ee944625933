//! `kvsim stream`: shows a table's DynamoDB stream, or enables or disables it (UpdateTable's
//! `StreamSpecification`). `kvsim watch` follows an enabled stream.

use crate::api::wire::{
    StreamSpecification, TableDescriptionWire, UpdateTableInput, UpdateTableOutput,
};
use crate::cli::client::Client;
use crate::cli::commands::table_info;
use crate::cli::render::print_json;
use crate::cli::{Common, Output};
use crate::{Error, Result};

/// What a stream's records carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum View {
    /// Only the key attributes.
    KeysOnly,
    /// The item after the write.
    NewImage,
    /// The item before the write.
    OldImage,
    /// Both (what `kvsim watch` needs to print diffs).
    NewAndOldImages,
}

impl View {
    fn wire(self) -> &'static str {
        match self {
            View::KeysOnly => "KEYS_ONLY",
            View::NewImage => "NEW_IMAGE",
            View::OldImage => "OLD_IMAGE",
            View::NewAndOldImages => "NEW_AND_OLD_IMAGES",
        }
    }
}

/// Options of `stream`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The table.
    #[arg(long)]
    pub table_name: String,
    /// Enable a new stream whose records carry this (disabling and enabling again makes a
    /// new stream, as in DynamoDB).
    #[arg(long, value_enum, value_name = "VIEW", conflicts_with = "disable")]
    pub enable: Option<View>,
    /// Disable the table's stream (its records stay readable until the retention passes).
    #[arg(long)]
    pub disable: bool,
    #[command(flatten)]
    pub common: Common,
}

/// The command that enables `table`'s stream with diffs, for messages that need one.
pub fn enable_hint(table: &str) -> String {
    format!("kvsim stream --table-name {table} --enable new-and-old-images")
}

fn show(d: &TableDescriptionWire, output: Output) -> Result<()> {
    let enabled = d
        .stream_specification
        .as_ref()
        .is_some_and(|s| s.stream_enabled == Some(true));
    let view = d
        .stream_specification
        .as_ref()
        .and_then(|s| s.stream_view_type.clone());
    match output {
        Output::Json => print_json(&serde_json::json!({
            "table": d.table_name,
            "enabled": enabled,
            "view_type": view,
            "latest_stream_arn": d.latest_stream_arn,
            "latest_stream_label": d.latest_stream_label,
        })),
        Output::Table => {
            match (enabled, &d.latest_stream_arn) {
                (true, Some(arn)) => println!(
                    "stream of {} is ENABLED ({})\n{arn}",
                    d.table_name,
                    view.as_deref().unwrap_or("?")
                ),
                (false, Some(arn)) => {
                    println!("stream of {} is DISABLED (latest: {arn})", d.table_name);
                }
                (_, None) => println!(
                    "{} has no stream; enable one with: {}",
                    d.table_name,
                    enable_hint(&d.table_name)
                ),
            }
            Ok(())
        }
    }
}

/// Runs `stream`.
pub async fn run(client: &Client, args: Args) -> Result<()> {
    let spec = match (args.enable, args.disable) {
        (Some(view), _) => Some(StreamSpecification {
            stream_enabled: Some(true),
            stream_view_type: Some(view.wire().into()),
        }),
        (None, true) => Some(StreamSpecification {
            stream_enabled: Some(false),
            stream_view_type: None,
        }),
        (None, false) => None,
    };
    let Some(spec) = spec else {
        let info = table_info(client, &args.table_name, false).await?;
        return show(&info.description, args.common.output);
    };
    let out: UpdateTableOutput = client
        .call_leader(
            "UpdateTable",
            &UpdateTableInput {
                table_name: Some(args.table_name.clone()),
                stream_specification: Some(spec),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| match e {
            Error::ResourceNotFound(_) => {
                Error::ResourceNotFound(format!("table {} does not exist", args.table_name))
            }
            other => other,
        })?;
    show(&out.table_description, args.common.output)
}
