//! `kvsim create-table`: a table with a partition key and an optional sort key, on-demand,
//! with any secondary indexes (`--gsi`, `--lsi`).

use crate::api::wire::{
    AttributeDefinition, CreateTableInput, CreateTableOutput, KeySchemaElement, ProjectionWire,
    SecondaryIndexWire, WireList,
};
use crate::cli::client::Client;
use crate::cli::render::print_description;
use crate::cli::{Common, KeyTypeArg};
use crate::{Error, Result};

/// Options of `create-table`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the new table (3-255 characters: letters, digits, '_', '-', '.').
    #[arg(long)]
    pub table_name: String,
    /// Name of the partition (hash) key attribute.
    #[arg(long)]
    pub partition_key_name: String,
    /// Type of the partition key.
    #[arg(long, value_enum, ignore_case = true, default_value_t = KeyTypeArg::S)]
    pub partition_key_type: KeyTypeArg,
    /// Name of the sort (range) key attribute, if the table has one.
    #[arg(long)]
    pub sort_key_name: Option<String>,
    /// Type of the sort key [default: S].
    #[arg(long, value_enum, ignore_case = true, requires = "sort_key_name")]
    pub sort_key_type: Option<KeyTypeArg>,
    /// Global secondary indexes, one per `--gsi` (syntax in the help text).
    #[arg(
        long,
        value_name = "SPEC",
        help = "A global secondary index: NAME=PK[:TYPE][,SK[:TYPE]][/PROJECTION], where TYPE is S (default), N or B and PROJECTION is all (default), keys-only or include:ATTR+ATTR... E.g. --gsi byStatus=status,createdAt:N/keys-only. Repeat for more indexes"
    )]
    pub gsi: Vec<String>,
    /// Local secondary indexes, one per `--lsi` (syntax in the help text).
    #[arg(
        long,
        value_name = "SPEC",
        help = "A local secondary index (the table's partition key, another sort key): NAME=SK[:TYPE][/PROJECTION], e.g. --lsi byDate=date:N. Repeat for more"
    )]
    pub lsi: Vec<String>,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `create-table`.
pub async fn run(client: &Client, args: Args) -> Result<()> {
    let table_partition = args.partition_key_name.clone();
    let mut key_schema = vec![KeySchemaElement {
        attribute_name: args.partition_key_name.clone(),
        key_type: "HASH".into(),
    }];
    let mut defs = vec![AttributeDefinition {
        attribute_name: args.partition_key_name,
        attribute_type: args.partition_key_type.as_str().into(),
    }];
    if let Some(sort) = args.sort_key_name {
        key_schema.push(KeySchemaElement {
            attribute_name: sort.clone(),
            key_type: "RANGE".into(),
        });
        defs.push(AttributeDefinition {
            attribute_name: sort,
            attribute_type: args.sort_key_type.unwrap_or(KeyTypeArg::S).as_str().into(),
        });
    }
    let mut add_definition = |name: &str, ty: &str| -> Result<()> {
        match defs.iter().find(|d| d.attribute_name == name) {
            Some(d) if d.attribute_type != ty => Err(Error::validation(format!(
                "attribute {name} is given two types, {} and {ty}",
                d.attribute_type
            ))),
            Some(_) => Ok(()),
            None => {
                defs.push(AttributeDefinition {
                    attribute_name: name.into(),
                    attribute_type: ty.into(),
                });
                Ok(())
            }
        }
    };
    let mut index_list =
        |specs: &[String], flag: &str| -> Result<Option<WireList<SecondaryIndexWire>>> {
            let mut out = Vec::new();
            for text in specs {
                let spec = parse_index(text, flag)?;
                let mut keys = spec.keys.clone();
                if flag == "--lsi" {
                    keys.insert(0, (table_partition.clone(), String::new()));
                }
                for (name, ty) in spec.keys.iter() {
                    add_definition(name, ty)?;
                }
                out.push(SecondaryIndexWire {
                    index_name: Some(spec.name),
                    key_schema: Some(WireList(
                        keys.iter()
                            .enumerate()
                            .map(|(i, (name, _))| KeySchemaElement {
                                attribute_name: name.clone(),
                                key_type: if i == 0 { "HASH" } else { "RANGE" }.into(),
                            })
                            .collect(),
                    )),
                    projection: Some(spec.projection),
                    provisioned_throughput: None,
                });
            }
            Ok((!out.is_empty()).then_some(WireList(out)))
        };
    let global = index_list(&args.gsi, "--gsi")?;
    let local = index_list(&args.lsi, "--lsi")?;
    let input = CreateTableInput {
        table_name: Some(args.table_name),
        key_schema: Some(WireList(key_schema)),
        attribute_definitions: Some(WireList(defs)),
        billing_mode: Some("PAY_PER_REQUEST".into()),
        global_secondary_indexes: global,
        local_secondary_indexes: local,
        ..Default::default()
    };
    let out: CreateTableOutput = client.call_leader("CreateTable", &input).await?;
    print_description(&out.table_description, args.common.output)
}

/// One `--gsi` or `--lsi` value, parsed.
#[derive(Debug, PartialEq)]
struct IndexArg {
    name: String,
    /// Key attributes and their types, partition first (an LSI's: just its sort key).
    keys: Vec<(String, String)>,
    projection: ProjectionWire,
}

/// Parses `NAME=ATTR[:TYPE][,ATTR[:TYPE]][/PROJECTION]` (see `--gsi`'s help).
fn parse_index(text: &str, flag: &str) -> Result<IndexArg> {
    let bad = |why: &str| {
        Error::validation(format!(
            "{flag} {text}: {why} (expected NAME=ATTR[:TYPE][,ATTR[:TYPE]][/all|keys-only|include:A+B])"
        ))
    };
    let (name, rest) = text.split_once('=').ok_or_else(|| bad("no '='"))?;
    let (keys, projection) = match rest.split_once('/') {
        Some((keys, projection)) => (keys, Some(projection)),
        None => (rest, None),
    };
    let most = if flag == "--lsi" { 1 } else { 2 };
    let keys: Vec<(String, String)> = keys
        .split(',')
        .map(|part| {
            let (attr, ty) = part.split_once(':').unwrap_or((part, "S"));
            let ty = ty.to_ascii_uppercase();
            if attr.is_empty() {
                return Err(bad("an empty attribute name"));
            }
            if !matches!(ty.as_str(), "S" | "N" | "B") {
                return Err(bad(&format!("type {ty} is not S, N or B")));
            }
            Ok((attr.to_string(), ty))
        })
        .collect::<Result<_>>()?;
    if keys.len() > most {
        return Err(bad(&format!("at most {most} key attribute(s)")));
    }
    let projection = match projection.map(str::to_ascii_lowercase).as_deref() {
        None | Some("all") => ProjectionWire {
            projection_type: Some("ALL".into()),
            non_key_attributes: None,
        },
        Some("keys-only") => ProjectionWire {
            projection_type: Some("KEYS_ONLY".into()),
            non_key_attributes: None,
        },
        Some(other) => match other.strip_prefix("include:") {
            Some(attrs) if !attrs.is_empty() => ProjectionWire {
                projection_type: Some("INCLUDE".into()),
                // The attribute names as given, not lowercased.
                non_key_attributes: Some(WireList(
                    projection
                        .and_then(|p| p.split_once(':'))
                        .map(|(_, a)| a.split('+').map(str::to_string).collect())
                        .unwrap_or_default(),
                )),
            },
            _ => return Err(bad(&format!("unknown projection {other}"))),
        },
    };
    Ok(IndexArg {
        name: name.to_string(),
        keys,
        projection,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_specs_parse_with_defaults_and_refuse_garbage() {
        let gsi = parse_index("byStatus=status,at:n/include:Title+body", "--gsi").expect("gsi");
        assert_eq!(gsi.name, "byStatus");
        assert_eq!(
            gsi.keys,
            [("status".into(), "S".into()), ("at".into(), "N".into())]
        );
        assert_eq!(gsi.projection.projection_type.as_deref(), Some("INCLUDE"));
        assert_eq!(
            gsi.projection.non_key_attributes.map(|l| l.0),
            Some(vec!["Title".to_string(), "body".to_string()])
        );
        let plain = parse_index("g=pk", "--gsi").expect("plain");
        assert_eq!(plain.projection.projection_type.as_deref(), Some("ALL"));
        let lsi = parse_index("byDate=date:N/keys-only", "--lsi").expect("lsi");
        assert_eq!(lsi.keys, [("date".into(), "N".into())]);
        for bad in [
            "noequals",
            "g=a:X",
            "g=a,b,c",
            "g=a/some",
            "g=,b",
            "g=a/include:",
        ] {
            assert!(parse_index(bad, "--gsi").is_err(), "{bad}");
        }
        assert!(parse_index("l=a,b", "--lsi").is_err());
    }
}
