//! `ReturnConsumedCapacity`: the capacity units DynamoDB would charge a request, reported as
//! DynamoDB reports them. kvsim does not throttle; the figures let applications that log or
//! budget capacity run unchanged, and let a user see what a workload would cost.
//!
//! DynamoDB's published rules: a write costs one unit per KB of the larger of the item's old
//! and new sizes, rounded up, at least one; a read costs one unit per 4 KB, rounded up, at
//! least one, halved when eventually consistent. Query and Scan round the total size of the
//! items they read (before any filter); BatchGetItem and BatchWriteItem round each item on its
//! own. Transactions cost twice. A `ClientRequestToken` replay costs the reads of its items.

use std::collections::BTreeMap;

use crate::api::wire::{Capacity, ConsumedCapacity};
use crate::model::Item;
use crate::model::index::IndexKind;
use crate::model::item::item_size;
use crate::store::IndexCharge;
use crate::{Error, Result};

/// What a request asked to be told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// Nothing (the default).
    None,
    /// The total per table.
    Total,
    /// The total and each resource's share: the table's and each index's a write changed,
    /// or for a read of an index, the index's.
    Indexes,
}

impl Report {
    /// Parses `ReturnConsumedCapacity`.
    ///
    /// # Errors
    /// DynamoDB's `ValidationException` for a value outside its enum.
    pub fn parse(value: Option<&str>) -> Result<Report> {
        match value {
            None | Some("NONE") => Ok(Report::None),
            Some("TOTAL") => Ok(Report::Total),
            Some("INDEXES") => Ok(Report::Indexes),
            Some(other) => Err(Error::validation(format!(
                "1 validation error detected: Value '{other}' at 'returnConsumedCapacity' failed to satisfy constraint: Member must satisfy enum value set: [INDEXES, TOTAL, NONE]"
            ))),
        }
    }

    /// Whether the request asked for figures (sizing items costs a walk over each).
    pub fn wanted(self) -> bool {
        self != Report::None
    }

    /// One table's figure, when asked for.
    pub fn one(self, table: &str, units: f64) -> Option<ConsumedCapacity> {
        self.shares(
            table,
            Share {
                table: units,
                ..Share::default()
            },
        )
    }

    /// A single-item write's figure, when asked for: `units` for the table, plus what it cost
    /// each index it changed (`factor` times its entry writes' units; 2 in a transaction).
    /// `CapacityUnits` is the sum; `INDEXES` also gives each share.
    pub fn write(
        self,
        table: &str,
        units: f64,
        indexes: &[IndexCharge],
        factor: f64,
    ) -> Option<ConsumedCapacity> {
        let mut share = Share {
            table: units,
            ..Share::default()
        };
        share.add_indexes(indexes, factor);
        self.shares(table, share)
    }

    /// The figure for one table's `share`, when asked for.
    fn shares(self, table: &str, share: Share) -> Option<ConsumedCapacity> {
        let total =
            share.table + share.global.values().sum::<f64>() + share.local.values().sum::<f64>();
        let mut out = ConsumedCapacity {
            table_name: table.to_string(),
            capacity_units: total,
            ..ConsumedCapacity::default()
        };
        match self {
            Report::None => return None,
            Report::Total => {}
            Report::Indexes => {
                out.table = Some(Capacity {
                    capacity_units: share.table,
                });
                let map = |m: BTreeMap<String, f64>| {
                    (!m.is_empty()).then(|| {
                        m.into_iter()
                            .map(|(name, units)| {
                                (
                                    name,
                                    Capacity {
                                        capacity_units: units,
                                    },
                                )
                            })
                            .collect()
                    })
                };
                out.global_secondary_indexes = map(share.global);
                out.local_secondary_indexes = map(share.local);
            }
        }
        Some(out)
    }

    /// The figure of a Query or Scan on `index` of `table`, when asked for: with `INDEXES`,
    /// the index's share is all of it and the table's nothing, as DynamoDB reports a read of
    /// an index.
    pub fn index_read(
        self,
        table: &str,
        index: &str,
        kind: IndexKind,
        units: f64,
    ) -> Option<ConsumedCapacity> {
        let mut share = Share::default();
        match kind {
            IndexKind::Global => share.global.insert(index.to_string(), units),
            IndexKind::Local => share.local.insert(index.to_string(), units),
        };
        self.shares(table, share)
    }

    /// Per-table figures for a multi-table request, in table-name order, when asked for.
    pub fn tables(self, tally: Tally) -> Option<Vec<ConsumedCapacity>> {
        (self != Report::None).then(|| {
            tally
                .0
                .into_iter()
                .filter_map(|(table, share)| self.shares(&table, share))
                .collect()
        })
    }
}

/// One table's units and those of each of its indexes.
#[derive(Default)]
struct Share {
    table: f64,
    global: BTreeMap<String, f64>,
    local: BTreeMap<String, f64>,
}

impl Share {
    fn add_indexes(&mut self, indexes: &[IndexCharge], factor: f64) {
        for charge in indexes {
            let units: f64 = charge
                .writes
                .iter()
                .map(|bytes| write_units(u64::from(*bytes)))
                .sum();
            let map = match charge.kind {
                IndexKind::Global => &mut self.global,
                IndexKind::Local => &mut self.local,
            };
            *map.entry(charge.index.clone()).or_default() += factor * units;
        }
    }
}

/// Units summed per table (and per index).
#[derive(Default)]
pub struct Tally(BTreeMap<String, Share>);

impl Tally {
    /// Adds `units` to `table`'s sum.
    pub fn add(&mut self, table: &str, units: f64) {
        self.0.entry(table.to_string()).or_default().table += units;
    }

    /// Adds what a write cost `table`'s indexes, `factor` times their entry writes' units.
    pub fn add_indexes(&mut self, table: &str, indexes: &[IndexCharge], factor: f64) {
        if !indexes.is_empty() {
            self.0
                .entry(table.to_string())
                .or_default()
                .add_indexes(indexes, factor);
        }
    }
}

/// Write units for an item of `bytes` (the larger of its old and new sizes).
pub fn write_units(bytes: u64) -> f64 {
    blocks(bytes, 1024)
}

/// Read units for reading `item` on its own (a missing item still costs one read).
pub fn item_read_units(item: Option<&Item>, consistent: bool) -> f64 {
    read_units(item.map_or(0, |i| item_size(i) as u64), consistent)
}

/// Read units for `bytes` read in one go (an item, or a Query or Scan page).
pub fn read_units(bytes: u64, consistent: bool) -> f64 {
    let units = blocks(bytes, 4096);
    if consistent { units } else { units / 2.0 }
}

/// `bytes` in `block`-sized units, rounded up, at least one.
fn blocks(bytes: u64, block: u64) -> f64 {
    // At most a few thousand: exact in an f64.
    bytes.div_ceil(block).max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_follow_dynamodbs_published_examples() {
        // A 3.5 KB item reads as 4 KB; a 10 KB item as 12 KB.
        assert_eq!(read_units(3_500, true), 1.0);
        assert_eq!(read_units(10 * 1024, true), 3.0);
        assert_eq!(read_units(10 * 1024, false), 1.5);
        // A missing item still costs a read.
        assert_eq!(read_units(0, false), 0.5);
        // Writes round up to the KB: 500 bytes is one unit, 3.5 KB four.
        assert_eq!(write_units(500), 1.0);
        assert_eq!(write_units(3_584), 4.0);
        assert_eq!(write_units(0), 1.0);
        assert_eq!(write_units(1024), 1.0);
        assert_eq!(write_units(1025), 2.0);
    }

    #[test]
    fn reports_take_dynamodbs_shapes() {
        assert_eq!(Report::parse(None).ok(), Some(Report::None));
        assert!(Report::parse(Some("ALL")).is_err());
        assert_eq!(Report::None.one("T", 1.0), None);
        let total = Report::Total.one("T", 2.0);
        assert_eq!(
            total
                .as_ref()
                .map(|c| (c.capacity_units, c.table.is_none())),
            Some((2.0, true))
        );
        let mut tally = Tally::default();
        tally.add("B", 1.0);
        tally.add("A", 0.5);
        tally.add("B", 2.0);
        let tables = Report::Indexes.tables(tally).unwrap_or_default();
        let got: Vec<(&str, f64, Option<f64>)> = tables
            .iter()
            .map(|c| {
                (
                    c.table_name.as_str(),
                    c.capacity_units,
                    c.table.as_ref().map(|t| t.capacity_units),
                )
            })
            .collect();
        assert_eq!(got, vec![("A", 0.5, Some(0.5)), ("B", 3.0, Some(3.0))]);
    }

    #[test]
    fn index_writes_add_to_the_total_and_show_as_shares() {
        let charges = [
            // The index key changed: the old entry deleted, a 1.5 KB one put.
            IndexCharge {
                index: "g".into(),
                kind: IndexKind::Global,
                writes: vec![100, 1_536],
            },
            IndexCharge {
                index: "l".into(),
                kind: IndexKind::Local,
                writes: vec![10],
            },
        ];
        let total = Report::Total.write("T", 1.0, &charges, 1.0);
        assert_eq!(total.as_ref().map(|c| c.capacity_units), Some(5.0));
        assert!(total.is_some_and(|c| c.global_secondary_indexes.is_none()));
        let shares = Report::Indexes.write("T", 1.0, &charges, 2.0);
        let units = |m: Option<&BTreeMap<String, Capacity>>, k: &str| {
            m.and_then(|m| m.get(k)).map(|c| c.capacity_units)
        };
        assert_eq!(
            shares.as_ref().map(|c| (
                c.capacity_units,
                c.table.as_ref().map(|t| t.capacity_units),
                units(c.global_secondary_indexes.as_ref(), "g"),
                units(c.local_secondary_indexes.as_ref(), "l"),
            )),
            Some((9.0, Some(1.0), Some(6.0), Some(2.0)))
        );
        // A write that changed no index reports the table alone.
        let plain = Report::Indexes.write("T", 2.0, &[], 1.0);
        assert!(plain.is_some_and(|c| c.capacity_units == 2.0
            && c.global_secondary_indexes.is_none()
            && c.local_secondary_indexes.is_none()));
    }
}
