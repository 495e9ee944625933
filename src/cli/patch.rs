//! Diffs between two plain-JSON items, as `kvsim watch` and `kvsim edit` print them: an
//! RFC 6902 JSON Patch (made by the `json-patch` crate) and an RFC 7386 Merge Patch.
//!
//! A Merge Patch cannot set a member to `null` (null means "remove" in a merge patch), so an
//! item holding a NULL attribute has no exact merge patch: [`merge_patch`] says so by
//! returning `None` rather than a patch that would not give the new item back.

use serde_json::{Map, Value};

/// The JSON Patch that turns `old` into `new`.
pub fn json_patch(old: &Value, new: &Value) -> Value {
    serde_json::to_value(json_patch::diff(old, new)).unwrap_or(Value::Null)
}

/// The Merge Patch that turns `old` into `new`, or `None` if there is none (a `null` value in
/// `new` that a merge patch would read as "remove").
pub fn merge_patch(old: &Value, new: &Value) -> Option<Value> {
    if has_null(new) {
        return None;
    }
    Some(merge_diff(old, new))
}

fn has_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.values().any(has_null),
        // Arrays are replaced whole by a merge patch; nulls inside them survive it.
        _ => false,
    }
}

fn merge_diff(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut patch = Map::new();
            for (k, v) in b {
                match a.get(k) {
                    Some(was) if was == v => {}
                    Some(was) => {
                        patch.insert(k.clone(), merge_diff(was, v));
                    }
                    None => {
                        patch.insert(k.clone(), v.clone());
                    }
                }
            }
            for k in a.keys().filter(|k| !b.contains_key(*k)) {
                patch.insert(k.clone(), Value::Null);
            }
            Value::Object(patch)
        }
        // Anything else is replaced whole.
        _ => new.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn doc() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            (0i64..100).prop_map(|n| json!(n)),
            "[a-c]{0,2}".prop_map(Value::String),
        ];
        let value = leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map("[a-d]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        prop::collection::btree_map("[a-e]", value, 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    proptest! {
        #[test]
        fn both_patches_turn_the_old_item_into_the_new(old in doc(), new in doc()) {
            let mut patched = old.clone();
            let ops: json_patch::Patch =
                serde_json::from_value(json_patch(&old, &new)).expect("a JSON Patch");
            json_patch::patch(&mut patched, &ops).expect("applies");
            prop_assert_eq!(&patched, &new);
            let mut merged = old.clone();
            json_patch::merge(&mut merged, &merge_patch(&old, &new).expect("no nulls"));
            prop_assert_eq!(&merged, &new);
        }
    }

    #[test]
    fn a_null_member_has_no_merge_patch() {
        let old = json!({"a": 1});
        assert_eq!(merge_patch(&old, &json!({"a": null})), None);
        assert_eq!(
            merge_patch(&old, &json!({"a": [null]})),
            Some(json!({"a": [null]}))
        );
        assert_eq!(
            merge_patch(
                &json!({"a": 1, "b": {"c": 1, "d": 2}}),
                &json!({"b": {"c": 2, "d": 2}})
            ),
            Some(json!({"a": null, "b": {"c": 2}}))
        );
    }
}
