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
use crate::{Error, Result};

/// What a request asked to be told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// Nothing (the default).
    None,
    /// The total per table.
    Total,
    /// The total and each resource's share: the table's, or for a read of an index, the
    /// index's. (Index writes are not yet broken out: a write's units are the table's.)
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
        match self {
            Report::None => None,
            Report::Total => Some(ConsumedCapacity {
                table_name: table.to_string(),
                capacity_units: units,
                ..ConsumedCapacity::default()
            }),
            Report::Indexes => Some(ConsumedCapacity {
                table_name: table.to_string(),
                capacity_units: units,
                table: Some(Capacity {
                    capacity_units: units,
                }),
                ..ConsumedCapacity::default()
            }),
        }
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
        let mut out = self.one(table, units)?;
        if self == Report::Indexes {
            out.table = Some(Capacity {
                capacity_units: 0.0,
            });
            let share = BTreeMap::from([(
                index.to_string(),
                Capacity {
                    capacity_units: units,
                },
            )]);
            match kind {
                IndexKind::Global => out.global_secondary_indexes = Some(share),
                IndexKind::Local => out.local_secondary_indexes = Some(share),
            }
        }
        Some(out)
    }

    /// Per-table figures for a multi-table request, in table-name order, when asked for.
    pub fn tables(self, tally: Tally) -> Option<Vec<ConsumedCapacity>> {
        (self != Report::None).then(|| {
            tally
                .0
                .into_iter()
                .filter_map(|(table, units)| self.one(&table, units))
                .collect()
        })
    }
}

/// Units summed per table.
#[derive(Default)]
pub struct Tally(BTreeMap<String, f64>);

impl Tally {
    /// Adds `units` to `table`'s sum.
    pub fn add(&mut self, table: &str, units: f64) {
        *self.0.entry(table.to_string()).or_default() += units;
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
}
