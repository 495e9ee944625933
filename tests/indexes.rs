//! Secondary index maintenance against a model: seeded random puts, deletes, batches and
//! transactions applied to the state machine (as every replica applies them), a global index
//! added midway and backfilled between the writes, and after each step every Query on every
//! (active) index, paginated with a random `Limit`, must return exactly what the model derives
//! from the table's items. Seeds come from `KVSIM_INDEX_SEEDS` (a count,
//! default 20) or `KVSIM_INDEX_SEED` (one seed); a failure names its seed.

use std::collections::BTreeMap;

use kvsim::model::index::{IndexKind, IndexSpec, IndexState, Projection};
use kvsim::model::table::{Billing, TableSpec};
use kvsim::model::{AttributeValue, Item, KeyAttribute, KeySchema, KeyType};
use kvsim::store::read::Range;
use kvsim::store::{Command, Conditional, IndexChange, ItemWrite, Store, Transaction};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redb::backends::InMemoryBackend;

const TABLE: &str = "Orders";

fn attr(name: &str, key_type: KeyType) -> KeyAttribute {
    KeyAttribute {
        name: name.into(),
        key_type,
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string().parse().expect("number"))
}

/// The table: key (pk S, sk S); GSI `g` on (gpk S, gsk N) keeping `v`; GSI `h` on gpk alone,
/// keys only; LSI `l` on (pk, lsk N) keeping everything.
fn indexes() -> Vec<IndexSpec> {
    let index = |name: &str, kind, id, partition, sort, projection| IndexSpec {
        name: name.into(),
        kind,
        id,
        partition,
        sort,
        projection,
        throughput: None,
        state: IndexState::Active,
    };
    vec![
        index(
            "g",
            IndexKind::Global,
            1,
            vec![attr("gpk", KeyType::S)],
            vec![attr("gsk", KeyType::N)],
            Projection::Include(vec!["v".into()]),
        ),
        index(
            "h",
            IndexKind::Global,
            2,
            vec![attr("gpk", KeyType::S)],
            vec![],
            Projection::KeysOnly,
        ),
        index(
            "l",
            IndexKind::Local,
            3,
            vec![attr("pk", KeyType::S)],
            vec![attr("lsk", KeyType::N)],
            Projection::All,
        ),
    ]
}

fn spec() -> TableSpec {
    TableSpec {
        name: TABLE.into(),
        key_schema: KeySchema {
            partition: attr("pk", KeyType::S),
            sort: Some(attr("sk", KeyType::S)),
        },
        attribute_definitions: vec![
            attr("pk", KeyType::S),
            attr("sk", KeyType::S),
            attr("gpk", KeyType::S),
            attr("gsk", KeyType::N),
            attr("lsk", KeyType::N),
        ],
        billing: Billing::PayPerRequest,
        table_uuid: "u".into(),
        arn: "arn".into(),
        created_at_ms: 0,
    }
}

/// The state machine plus the log index of the next command.
struct Replica {
    store: Store,
    next: u64,
}

impl Replica {
    fn new() -> Replica {
        let db = redb::Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .expect("in-memory database");
        let mut r = Replica {
            store: Store::in_memory(std::sync::Arc::new(db)).expect("store"),
            next: 1,
        };
        r.apply(&Command::CreateIndexedTable {
            spec: spec(),
            indexes: indexes(),
        })
        .expect("table created");
        r
    }

    /// Applies `command` at the next index; the command's own result.
    fn apply(&mut self, command: &Command) -> kvsim::Result<()> {
        let txn = self.store.db().begin_write().expect("write transaction");
        let mut seen = kvsim::store::apply::Seen::default();
        let out = self
            .store
            .apply_with(
                &txn,
                self.next,
                &command.encode().expect("encode"),
                &mut seen,
            )
            .expect("no storage fault");
        seen.write_back(&txn).expect("counts written");
        txn.commit().expect("commit");
        self.next += 1;
        out.map(|_| ())
    }

    /// Every item of partition `partition` of `index`, following `LastEvaluatedKey` with pages
    /// of `limit`.
    fn query(&self, index: &str, partition: &AttributeValue, limit: usize) -> Vec<Item> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        for _ in 0..1000 {
            let page = self
                .store
                .read_range(
                    TABLE,
                    &Range {
                        index: Some(index),
                        partition: Some(partition),
                        then: &[],
                        fetch_from_table: false,
                        sort: None,
                        forward: true,
                        limit: Some(limit),
                        start_after: start.as_ref(),
                        segment: None,
                    },
                )
                .expect("query");
            items.extend(page.items);
            match page.last_key {
                Some(k) => start = Some(k),
                None => return items,
            }
        }
        panic!("pagination of {index} did not end");
    }
}

/// What the model says index `index` holds for partition `partition`, in index order.
fn expected(model: &BTreeMap<(String, String), Item>, index: &str, partition: &str) -> Vec<Item> {
    let keep = |item: &Item, names: &[&str]| -> Item {
        item.iter()
            .filter(|(k, _)| names.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let number = |item: &Item, name: &str| match item.get(name) {
        Some(AttributeValue::N(v)) => v.to_string().parse::<i64>().ok(),
        _ => None,
    };
    let mut rows: Vec<(i64, (String, String), Item)> = Vec::new();
    for (key, item) in model {
        let gpk = matches!(item.get("gpk"), Some(AttributeValue::S(g)) if g == partition);
        match index {
            "g" => {
                if let (true, Some(gsk)) = (gpk, number(item, "gsk")) {
                    rows.push((
                        gsk,
                        key.clone(),
                        keep(item, &["pk", "sk", "gpk", "gsk", "v"]),
                    ));
                }
            }
            "h" => {
                if gpk {
                    rows.push((0, key.clone(), keep(item, &["pk", "sk", "gpk"])));
                }
            }
            "late" => {
                if gpk {
                    rows.push((0, key.clone(), item.clone()));
                }
            }
            _ => {
                if let (true, Some(lsk)) = (key.0 == partition, number(item, "lsk")) {
                    rows.push((lsk, key.clone(), item.clone()));
                }
            }
        }
    }
    rows.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    rows.into_iter().map(|(_, _, item)| item).collect()
}

fn random_item(rng: &mut StdRng) -> Item {
    let mut item = Item::new();
    item.insert("pk".into(), s(["a", "b", "c"][rng.gen_range(0..3)]));
    item.insert("sk".into(), s(&rng.gen_range(0..6).to_string()));
    if rng.gen_bool(0.7) {
        item.insert("gpk".into(), s(["x", "y"][rng.gen_range(0..2)]));
    }
    if rng.gen_bool(0.7) {
        item.insert("gsk".into(), n(rng.gen_range(-3..4)));
    }
    if rng.gen_bool(0.5) {
        item.insert("lsk".into(), n(rng.gen_range(0..3)));
    }
    item.insert("v".into(), s(&rng.gen_range(0..100).to_string()));
    if rng.gen_bool(0.3) {
        item.insert("other".into(), n(rng.gen_range(0..9)));
    }
    if rng.gen_bool(0.05) {
        // A mistyped index key: the write must be refused and change nothing.
        item.insert("gsk".into(), s("not a number"));
    }
    item
}

fn key_of(item: &Item) -> (String, String) {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(v)) => v.clone(),
        _ => String::new(),
    };
    (text("pk"), text("sk"))
}

fn mistyped(item: &Item) -> bool {
    matches!(item.get("gsk"), Some(AttributeValue::S(_)))
}

fn write(rng: &mut StdRng) -> (ItemWrite, Option<Item>) {
    let item = random_item(rng);
    if rng.gen_bool(0.25) {
        let key: Item = item
            .iter()
            .filter(|(k, _)| *k == "pk" || *k == "sk")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let delete = ItemWrite::Delete {
            table: TABLE.into(),
            key,
        };
        return (delete, None);
    }
    let put = ItemWrite::Put {
        table: TABLE.into(),
        item: item.clone(),
    };
    (put, Some(item))
}

fn run(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut replica = Replica::new();
    let mut model: BTreeMap<(String, String), Item> = BTreeMap::new();
    let mut late_active = false;
    // Small batches, so filling and clearing the added index take several entries each,
    // interleaved with the writes (the setting is per thread; each test has its own).
    kvsim::store::apply::set_index_batch(Some(4));
    for step in 0..120 {
        if step == 40 {
            // A global index added to the live table: filled by backfill batches interleaved
            // with the writes below, and checked like the others once active.
            let mut late = indexes()[1].clone();
            late.name = "late".into();
            late.projection = Projection::All;
            let definitions = late.key_attributes().cloned().collect();
            replica
                .apply(&Command::AlterIndexes {
                    name: TABLE.into(),
                    change: IndexChange::Create {
                        index: late,
                        definitions,
                    },
                })
                .unwrap_or_else(|e| panic!("seed {seed}: index not added: {e}"));
        }
        if step == 90 {
            // ... and removed again: gone from reads at once, its entries cleared in batches.
            assert!(
                late_active,
                "seed {seed}: the added index never became active"
            );
            replica
                .apply(&Command::AlterIndexes {
                    name: TABLE.into(),
                    change: IndexChange::Delete {
                        index: "late".into(),
                    },
                })
                .unwrap_or_else(|e| panic!("seed {seed}: index not removed: {e}"));
            late_active = false;
        }
        if step >= 40 {
            let work = replica.store.index_work().expect("index work");
            match work.into_iter().next() {
                Some(command) => {
                    replica
                        .apply(&command)
                        .unwrap_or_else(|e| panic!("seed {seed}: {command:?} failed: {e}"));
                }
                None => late_active = step < 90,
            }
        }
        // One write, or a batch / transaction of a few writes to distinct items.
        let count = if rng.gen_bool(0.7) {
            1
        } else {
            rng.gen_range(2..5)
        };
        let mut writes: Vec<(ItemWrite, Option<Item>)> = Vec::new();
        while writes.len() < count {
            let w = write(&mut rng);
            let key = match &w.0 {
                ItemWrite::Put { item, .. } => key_of(item),
                ItemWrite::Delete { key, .. } => key_of(key),
                _ => unreachable!("only puts and deletes"),
            };
            if writes.iter().all(|(other, _)| {
                let k = match other {
                    ItemWrite::Put { item, .. } => key_of(item),
                    ItemWrite::Delete { key, .. } => key_of(key),
                    _ => unreachable!("only puts and deletes"),
                };
                k != key
            }) {
                writes.push(w);
            }
        }
        let refused = writes
            .iter()
            .any(|(_, item)| item.as_ref().is_some_and(mistyped));
        let command = match count {
            1 => Command::Write(Conditional {
                write: writes[0].0.clone(),
                condition: None,
                old_on_failure: false,
            }),
            _ if rng.gen_bool(0.5) => Command::Batch(writes.iter().map(|w| w.0.clone()).collect()),
            _ => Command::Transact(Transaction {
                actions: writes
                    .iter()
                    .map(|w| Conditional {
                        write: w.0.clone(),
                        condition: None,
                        old_on_failure: false,
                    })
                    .collect(),
                token: None,
                at_ms: 0,
            }),
        };
        let result = replica.apply(&command);
        assert_eq!(
            result.is_err(),
            refused,
            "seed {seed} step {step}: {command:?} gave {result:?}"
        );
        if !refused {
            for (w, item) in writes {
                match (w, item) {
                    (ItemWrite::Put { item, .. }, _) => {
                        model.insert(key_of(&item), item);
                    }
                    (ItemWrite::Delete { key, .. }, _) => {
                        model.remove(&key_of(&key));
                    }
                    _ => unreachable!("only puts and deletes"),
                }
            }
        }
        let limit = rng.gen_range(1..6);
        let mut checked = vec![
            ("g", ["x", "y", "z"]),
            ("h", ["x", "y", "z"]),
            ("l", ["a", "b", "c"]),
        ];
        if late_active {
            checked.push(("late", ["x", "y", "z"]));
        }
        for (index, partitions) in checked {
            for p in partitions {
                let got = replica.query(index, &s(p), limit);
                let want = expected(&model, index, p);
                assert_eq!(
                    got, want,
                    "seed {seed} step {step}: index {index} partition {p} (Limit {limit})"
                );
            }
        }
    }
    let described = replica.store.describe(TABLE).expect("describe");
    for (i, (count, _)) in described.index_stats.iter().enumerate() {
        let name = &described.meta.indexes[i].name;
        let partitions = if name == "l" {
            ["a", "b", "c"]
        } else {
            ["x", "y", "z"]
        };
        let entries: usize = partitions
            .iter()
            .map(|p| expected(&model, name, p).len())
            .sum();
        assert_eq!(*count as usize, entries, "seed {seed}: ItemCount of {name}");
    }
    assert!(
        described.meta.index("late").is_none(),
        "seed {seed}: the removed index is still there"
    );
    assert_eq!(
        replica.store.check_indexes(TABLE).expect("check"),
        Vec::<String>::new(),
        "seed {seed}: entries of the removed index left behind"
    );
}

#[test]
fn every_index_query_agrees_with_a_model_of_the_table() {
    let seeds: Vec<u64> = match std::env::var("KVSIM_INDEX_SEED") {
        Ok(seed) => vec![seed.parse().expect("KVSIM_INDEX_SEED is a number")],
        Err(_) => {
            let count = std::env::var("KVSIM_INDEX_SEEDS")
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(20u64);
            (0..count).collect()
        }
    };
    for seed in seeds {
        run(seed);
    }
}

/// `Expire` deletes only what is still expired when it applies, and takes the items' index
/// entries with them; with time to live off it deletes nothing.
#[test]
fn expiry_rechecks_each_item_at_apply_and_keeps_indexes_exact() {
    use kvsim::store::TableChange;
    let mut replica = Replica::new();
    let now = 1_800_000_000i64;
    let item = |pk: &str, exp: i64| {
        Item::from([
            ("pk".to_string(), s(pk)),
            ("sk".to_string(), s("x")),
            ("gpk".to_string(), s("p")),
            ("gsk".to_string(), n(1)),
            ("exp".to_string(), n(exp)),
        ])
    };
    let key = |pk: &str| Item::from([("pk".to_string(), s(pk)), ("sk".to_string(), s("x"))]);
    let put = |item: Item| {
        Command::Write(Conditional {
            write: ItemWrite::Put {
                table: TABLE.into(),
                item,
            },
            condition: None,
            old_on_failure: false,
        })
    };
    for pk in ["a", "b", "c"] {
        replica.apply(&put(item(pk, now - 10))).expect("put");
    }
    let expire = Command::Expire {
        table: TABLE.into(),
        keys: vec![key("a"), key("b"), key("missing")],
        now: now as u64,
    };
    // Time to live off: nothing goes.
    replica.apply(&expire).expect("expire");
    let present = |replica: &Replica| {
        ["a", "b", "c"]
            .into_iter()
            .filter(|pk| {
                replica
                    .store
                    .get_item(TABLE, &key(pk))
                    .expect("get")
                    .is_some()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(present(&replica), ["a", "b", "c"]);
    replica
        .apply(&Command::AlterTable {
            name: TABLE.into(),
            change: TableChange::TimeToLive {
                attribute: "exp".into(),
                enabled: true,
            },
        })
        .expect("ttl on");
    // `b` was given a later expiry after the leader found it expired: it stays.
    replica.apply(&put(item("b", now + 10))).expect("put");
    replica.apply(&expire).expect("expire");
    assert_eq!(present(&replica), ["b", "c"]);
    assert_eq!(
        replica.store.check_indexes(TABLE).expect("check"),
        Vec::<String>::new()
    );
    let g = replica.query("g", &s("p"), 10);
    assert_eq!(g.len(), 2, "the index lost the expired item: {g:?}");
    assert_eq!(
        replica.store.describe(TABLE).expect("describe").item_count,
        2
    );
}

/// Rows of table id `id` (items and index entries) still stored.
fn rows_of(replica: &Replica, id: u64) -> usize {
    use redb::ReadableDatabase;
    let txn = replica.store.db().begin_read().expect("read");
    let prefix = id.to_be_bytes();
    let entries = txn
        .open_table(kvsim::store::tables::INDEX_ITEMS)
        .expect("table")
        .range::<&[u8]>(prefix.as_slice()..)
        .expect("range")
        .take_while(|row| {
            row.as_ref()
                .is_ok_and(|(k, _)| k.value().starts_with(&prefix))
        })
        .count();
    let items = replica
        .store
        .items()
        .read()
        .range::<[u8], _>((
            std::ops::Bound::Included(&prefix[..]),
            std::ops::Bound::Unbounded,
        ))
        .take_while(|(k, _)| k.starts_with(&prefix))
        .count();
    entries + items
}

/// A deleted table's rows go in bounded batches (`PurgeTable` entries), while a table created
/// again under its name is used at once; nothing of the old one is left at the end.
#[test]
fn a_deleted_table_is_purged_in_batches_while_its_name_is_reused() {
    kvsim::store::apply::set_index_batch(Some(4));
    let mut replica = Replica::new();
    let put = |pk: String| {
        Command::Write(Conditional {
            write: ItemWrite::Put {
                table: TABLE.into(),
                item: Item::from([
                    ("pk".to_string(), s(&pk)),
                    ("sk".to_string(), s("x")),
                    ("gpk".to_string(), s("p")),
                    ("gsk".to_string(), n(1)),
                    ("lsk".to_string(), n(2)),
                ]),
            },
            condition: None,
            old_on_failure: false,
        })
    };
    for i in 0..10 {
        replica.apply(&put(format!("k{i}"))).expect("put");
    }
    let old = replica.store.describe(TABLE).expect("describe").meta.id;
    // Ten items, each in three indexes.
    assert_eq!(rows_of(&replica, old), 40);
    replica
        .apply(&Command::DeleteTable { name: TABLE.into() })
        .expect("delete");
    assert_eq!(rows_of(&replica, old), 36, "one batch goes with the delete");
    replica
        .apply(&Command::CreateIndexedTable {
            spec: spec(),
            indexes: indexes(),
        })
        .expect("created again");
    replica.apply(&put("new".into())).expect("put");
    let mut entries = 0;
    while let Some(command) = replica.store.index_work().expect("work").into_iter().next() {
        assert_eq!(command, Command::PurgeTable { id: old });
        replica.apply(&command).expect("purge");
        entries += 1;
        assert!(entries < 100, "the purge never ends");
    }
    assert_eq!(
        entries, 10,
        "36 rows in batches of 4, the last one finding none left"
    );
    assert_eq!(rows_of(&replica, old), 0);
    assert_eq!(
        replica.store.describe(TABLE).expect("describe").item_count,
        1
    );
    assert_eq!(
        replica.store.check_indexes(TABLE).expect("check"),
        Vec::<String>::new()
    );
    assert_eq!(replica.query("g", &s("p"), 10).len(), 1);
}

/// The item counts of a run of item writes are kept in memory and written back once per
/// transaction: a table-level command later in the same transaction sees them (DeleteTable
/// answers with the count), and so does DescribeTable after the commit, on the table and on
/// every index.
#[test]
fn item_counts_are_exact_across_one_transaction_of_many_writes() {
    use kvsim::store::Outcome;
    use kvsim::store::apply::Seen;
    let db = redb::Database::builder()
        .create_with_backend(InMemoryBackend::new())
        .expect("in-memory database");
    let store = Store::in_memory(std::sync::Arc::new(db)).expect("store");
    let item = |pk: &str| {
        Item::from([
            ("pk".to_string(), s(pk)),
            ("sk".to_string(), s("x")),
            ("gpk".to_string(), s("p")),
        ])
    };
    let put = |pk: &str| Command::PutItem {
        table: TABLE.into(),
        item: item(pk),
    };
    let delete = |pk: &str| Command::DeleteItem {
        table: TABLE.into(),
        key: Item::from([("pk".to_string(), s(pk)), ("sk".to_string(), s("x"))]),
    };
    let mut seen = Seen::default();
    let mut index = 0;
    let mut run = |txn: &redb::WriteTransaction, seen: &mut Seen, command: Command| {
        index += 1;
        store
            .apply_with(txn, index, &command.encode().expect("encode"), seen)
            .expect("no storage fault")
            .expect("applied")
    };

    // One transaction: the table, three items, one of them deleted, one overwritten.
    let txn = store.db().begin_write().expect("write transaction");
    run(
        &txn,
        &mut seen,
        Command::CreateIndexedTable {
            spec: spec(),
            indexes: indexes(),
        },
    );
    for command in [put("a"), put("b"), put("c"), delete("a"), put("b")] {
        run(&txn, &mut seen, command);
    }
    assert!(seen.has_unwritten_counts());
    seen.write_back(&txn).expect("counts written");
    assert!(!seen.has_unwritten_counts());
    txn.commit().expect("commit");
    let described = store.describe(TABLE).expect("described");
    assert_eq!(described.item_count, 2);
    let one = |pk| kvsim::model::item::item_size(&item(pk)) as u64;
    assert_eq!(described.size_bytes, one("b") + one("c"));
    // The global index "h" keys on gpk alone, which every item has ("g" also on gsk, which
    // none has): its count moved with them.
    assert_eq!(
        described.index_stats[..2],
        [(0, 0), (2, described.index_stats[1].1)]
    );
    assert!(described.index_stats[1].1 > 0);

    // A second: two more items, then the table's deletion, which reports all four.
    let txn = store.db().begin_write().expect("write transaction");
    run(&txn, &mut seen, put("d"));
    run(&txn, &mut seen, put("e"));
    let deleted = run(&txn, &mut seen, Command::DeleteTable { name: TABLE.into() });
    match deleted {
        Outcome::Table(description) => assert_eq!(description.item_count, 4),
        other => panic!("expected a table's description, got {other:?}"),
    }
}
