//! `kvsim edit`: the seed's `Edit`. Reads an item and its version, changes it, and writes it
//! back only if the version is unchanged (the `x-kvsim-expected-version` header, checked at
//! apply); on a conflict it reads again and retries with exponential backoff and jitter.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use rand::Rng;
use serde_json::{Value, json};

use crate::api::wire::{GetItemInput, GetItemOutput, PutItemInput, WriteItemOutput};
use crate::cli::client::Client;
use crate::cli::commands::{TableInfo, describe_key, key_from_args, table_info, wire_item};
use crate::cli::patch::{json_patch, merge_patch};
use crate::cli::plain::{item_from_plain, item_to_plain};
use crate::cli::render::write_stdout;
use crate::cli::{Common, EXIT_RETRIES_EXHAUSTED, Output};
use crate::model::{AttributeValue, Item};
use crate::{Error, Result};

/// Options of `edit`.
#[derive(Debug, clap::Args)]
#[command(allow_negative_numbers = true)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true)
    .args(["set", "remove", "merge_patch", "json_patch", "apply"])))]
pub struct Args {
    /// The table.
    #[arg(long)]
    pub table_name: String,
    /// Partition key value of the item (an item that does not exist yet starts as its key).
    #[arg(long)]
    pub partition_key: String,
    /// Sort key value, for tables with a sort key.
    #[arg(long)]
    pub sort_key: Option<String>,
    /// Set PATH to a JSON value: `--set count=1`, `--set 'name="Ann"'`, `--set tags.0=true`
    /// (a dotted path, or a JSON Pointer like /a/b). Repeatable.
    #[arg(long, value_name = "PATH=JSON")]
    pub set: Vec<String>,
    /// Remove PATH (dotted, or a JSON Pointer); nothing happens if it is absent. Repeatable.
    #[arg(long, value_name = "PATH")]
    pub remove: Vec<String>,
    /// Apply an RFC 7386 JSON Merge Patch to the item: `--merge-patch '{"a":1,"b":null}'`.
    #[arg(long, value_name = "JSON")]
    pub merge_patch: Option<String>,
    /// Apply an RFC 6902 JSON Patch: `--json-patch '[{"op":"replace","path":"/a","value":2}]'`.
    #[arg(long, value_name = "JSON")]
    pub json_patch: Option<String>,
    /// Run CMD through `sh -c` with the item as plain JSON on its standard input; what it
    /// prints is the new item (`--apply "jq '.count += 1'"`). Run again on the fresh item
    /// after each conflict.
    #[arg(long, value_name = "CMD")]
    pub apply: Option<String>,
    /// Conflicts retried before giving up (exit code 7).
    #[arg(long, default_value_t = 10)]
    pub max_retries: u32,
    /// Backoff before the first retry, in milliseconds; doubled after each conflict, with
    /// jitter (a random part of it is waited, at least half).
    #[arg(long, default_value_t = 20)]
    pub retry_delay_ms: u64,
    /// Longest backoff, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub max_retry_delay_ms: u64,
    #[command(flatten)]
    pub common: Common,
}

/// A path from `--set`/`--remove` as a JSON Pointer.
fn pointer(path: &str) -> Result<String> {
    if path.is_empty() {
        return Err(Error::validation(
            "an empty path names the whole item; name an attribute",
        ));
    }
    if path.starts_with('/') {
        return Ok(path.to_string());
    }
    Ok(path
        .split('.')
        .map(|seg| format!("/{}", seg.replace('~', "~0").replace('/', "~1")))
        .collect())
}

/// The change the flags ask for, applied to `doc`.
fn change(args: &Args, doc: &Value) -> Result<Value> {
    let kinds = [
        !args.set.is_empty() || !args.remove.is_empty(),
        args.merge_patch.is_some(),
        args.json_patch.is_some(),
        args.apply.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() > 1 {
        return Err(Error::validation(
            "give one kind of change: --set/--remove, --merge-patch, --json-patch or --apply",
        ));
    }
    let mut new = doc.clone();
    if let Some(text) = &args.merge_patch {
        let patch: Value = serde_json::from_str(text)
            .map_err(|e| Error::validation(format!("--merge-patch is not JSON: {e}")))?;
        json_patch::merge(&mut new, &patch);
    } else if let Some(text) = &args.json_patch {
        let patch: json_patch::Patch = serde_json::from_str(text)
            .map_err(|e| Error::validation(format!("--json-patch is not a JSON Patch: {e}")))?;
        json_patch::patch(&mut new, &patch)
            .map_err(|e| Error::validation(format!("--json-patch does not apply: {e}")))?;
    } else if let Some(cmd) = &args.apply {
        new = run_filter(cmd, doc)?;
    } else {
        let mut ops = Vec::new();
        for set in &args.set {
            let (path, value) = set.split_once('=').ok_or_else(|| {
                Error::validation(format!("--set {set}: expected PATH=JSON, like count=1"))
            })?;
            let value: Value = serde_json::from_str(value).map_err(|e| {
                Error::validation(format!(
                    "--set {set}: the value is not JSON ({e}); quote strings, like 'name=\"Ann\"'"
                ))
            })?;
            let path = pointer(path)?;
            let op = if new.pointer(&path).is_some() {
                "replace"
            } else {
                "add"
            };
            ops.push(json!({"op": op, "path": path, "value": value}));
        }
        for path in &args.remove {
            let path = pointer(path)?;
            if new.pointer(&path).is_some() {
                ops.push(json!({"op": "remove", "path": path}));
            }
        }
        let patch: json_patch::Patch =
            serde_json::from_value(Value::Array(ops)).map_err(Error::internal)?;
        json_patch::patch(&mut new, &patch)
            .map_err(|e| Error::validation(format!("the change does not apply: {e}")))?;
    }
    Ok(new)
}

/// Runs `cmd` with `doc` on its standard input; its standard output, as JSON.
fn run_filter(cmd: &str, doc: &Value) -> Result<Value> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::validation(format!("--apply: cannot run sh: {e}")))?;
    let input = doc.to_string();
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| Error::internal("--apply: no standard input"))?;
    // Written from another thread, so a filter that prints before reading all cannot block.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child
        .wait_with_output()
        .map_err(|e| Error::validation(format!("--apply: {e}")))?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(Error::validation(format!(
            "--apply command `{cmd}` failed ({}); nothing was written",
            out.status
        )));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        Error::validation(format!(
            "--apply command `{cmd}` did not print a JSON item ({e}); nothing was written"
        ))
    })
}

/// Whether plain JSON holds `v` exactly (sets and binary come back as lists and strings).
fn plain_exact(v: &AttributeValue) -> bool {
    match v {
        AttributeValue::B(_)
        | AttributeValue::Ss(_)
        | AttributeValue::Ns(_)
        | AttributeValue::Bs(_) => false,
        AttributeValue::L(l) => l.iter().all(plain_exact),
        AttributeValue::M(m) => m.values().all(plain_exact),
        _ => true,
    }
}

/// The item, its version (0 if it does not exist), read at the leader.
async fn read(client: &Client, args: &Args, key: &Item) -> Result<(Option<Item>, u64)> {
    let request = GetItemInput {
        table_name: Some(args.table_name.clone()),
        key: Some(wire_item(key)),
        consistent_read: Some(true),
        ..Default::default()
    };
    let (out, version): (GetItemOutput, _) = client
        .call_versioned("GetItem", &request, None, true)
        .await?;
    match out.item {
        Some(item) => {
            let version = match (version.index, &version.clock) {
                (Some(index), _) => index,
                (None, Some(_)) => {
                    return Err(Error::validation(
                        "kvsim edit needs --mode raft: it writes back only if the item's version \
                         is unchanged, and items in --mode dynamo have vector clocks instead \
                         (use update-item with --condition-expression)",
                    ));
                }
                (None, None) => {
                    return Err(Error::internal(
                        "the server gave no item version (x-kvsim-version)",
                    ));
                }
            };
            Ok((Some(item.0), version))
        }
        None => Ok((None, 0)),
    }
}

/// Runs `edit`; returns the exit code.
pub async fn run(client: &Client, args: Args) -> Result<i32> {
    let info = table_info(client, &args.table_name, true).await?;
    let key = key_from_args(&info, &args.partition_key, args.sort_key.as_deref())?;
    let names = info.key_names();
    let mut conflicts = 0;
    loop {
        let (item, version) = read(client, &args, &key).await?;
        if let Some(item) = &item
            && !item.values().all(plain_exact)
        {
            return Err(Error::validation(format!(
                "{} in {} holds sets or binary, which plain JSON cannot give back exactly; change it with update-item",
                describe_key(&key, &info),
                args.table_name
            )));
        }
        let old = item_to_plain(item.as_ref().unwrap_or(&key), &names);
        let new = change(&args, &old)?;
        let new_item = checked(&info, &key, &new)?;
        if item.is_some() && new == old {
            return report(&info, &args, &key, &old, &new, version, conflicts, false);
        }
        let put = PutItemInput {
            table_name: Some(args.table_name.clone()),
            item: Some(wire_item(&new_item)),
            ..Default::default()
        };
        let written: Result<(WriteItemOutput, crate::cli::client::ItemVersion)> = client
            .call_versioned("PutItem", &put, Some(version), true)
            .await;
        let conflict = match written {
            Ok((_, v)) => {
                let v = v
                    .index
                    .ok_or_else(|| Error::internal("the server gave no item version"))?;
                return report(&info, &args, &key, &old, &new, v, conflicts, true);
            }
            Err(Error::ConditionalCheckFailed { .. }) => true,
            // The write's outcome is unknown: it may still land, so running the change again
            // could apply it twice. Stop and say so.
            Err(Error::Unavailable(why)) => {
                return Err(Error::Unavailable(format!(
                    "the write's outcome is unknown ({why}); it expected version {version} of {}: check the item before editing again",
                    describe_key(&key, &info)
                )));
            }
            Err(e) => return Err(e),
        };
        if conflict {
            conflicts += 1;
        }
        if conflicts > args.max_retries {
            eprintln!(
                "gave up: {} in {} kept changing while it was edited ({} conflicts)",
                describe_key(&key, &info),
                args.table_name,
                conflicts
            );
            return Ok(EXIT_RETRIES_EXHAUSTED);
        }
        let ceiling = args
            .retry_delay_ms
            .saturating_mul(1 << conflicts.saturating_sub(1).min(20))
            .min(args.max_retry_delay_ms);
        let wait = rand::thread_rng().gen_range(ceiling / 2..=ceiling);
        if args.common.verbose {
            eprintln!(
                "conflict {conflicts}/{}: {} changed after version {version}; retrying in {wait} ms",
                args.max_retries,
                describe_key(&key, &info)
            );
        }
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

/// The edited document as an item, refusing one that lost or changed its key.
fn checked(info: &TableInfo, key: &Item, new: &Value) -> Result<Item> {
    let item = item_from_plain(&new.to_string(), "the edited item")?;
    for (name, value) in key {
        if item.get(name) != Some(value) {
            return Err(Error::validation(format!(
                "the edit changed or removed key attribute {name}; an edit keeps the item's key ({})",
                describe_key(key, info)
            )));
        }
    }
    Ok(item)
}

#[allow(clippy::too_many_arguments)]
fn report(
    info: &TableInfo,
    args: &Args,
    key: &Item,
    old: &Value,
    new: &Value,
    version: u64,
    conflicts: u32,
    written: bool,
) -> Result<i32> {
    let jp = json_patch(old, new);
    let mp = merge_patch(old, new);
    if args.common.output == Output::Json {
        let line = json!({
            "written": written,
            "item": new,
            "old": old,
            "version": version,
            "conflicts": conflicts,
            "json_patch": jp,
            "merge_patch": mp,
        });
        write_stdout(format_args!("{line}\n"))?;
        return Ok(0);
    }
    let what = if written { "edited" } else { "unchanged:" };
    write_stdout(format_args!(
        "{what} {} in {}, version {version}{}\n{new}\njson patch:  {jp}\nmerge patch: {}\n",
        describe_key(key, info),
        args.table_name,
        match conflicts {
            0 => String::new(),
            n => format!(" (after {n} conflict(s))"),
        },
        mp.map_or_else(|| "(none: the item holds a null)".into(), |m| m.to_string())
    ))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_paths_become_json_pointers() {
        assert_eq!(pointer("a").unwrap(), "/a");
        assert_eq!(pointer("a.b.0").unwrap(), "/a/b/0");
        assert_eq!(pointer("a/b~c").unwrap(), "/a~1b~0c");
        assert_eq!(pointer("/x/y").unwrap(), "/x/y");
        assert!(pointer("").is_err());
    }
}
