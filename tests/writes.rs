//! Conditional writes and UpdateItem over DynamoDB's wire protocol: conditions checked where
//! the write applies (so concurrent writers through different nodes race exactly), update
//! expressions with every action, ReturnValues of every kind, and DynamoDB's errors.

mod common;

use common::TestCluster;
use serde_json::{Value, json};

const CCF: &str = "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException";
const V: &str = "com.amazon.coral.validate#ValidationException";

async fn cluster() -> (TestCluster, u64) {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    tc.create_table(leader, "Tab", ("pk", "S"), None).await;
    (tc, leader)
}

async fn get(tc: &TestCluster, id: u64, pk: &str) -> Value {
    let (s, b) = tc
        .call(
            id,
            "GetItem",
            json!({"TableName": "Tab", "Key": {"pk": {"S": pk}}, "ConsistentRead": true}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    b["Item"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_puts_and_deletes() {
    let (tc, leader) = cluster().await;
    let follower = tc.other_than(leader);
    let put_new = json!({"TableName": "Tab", "Item": {"pk": {"S": "a"}, "v": {"N": "1"}},
        "ConditionExpression": "attribute_not_exists(pk)"});
    let (s, b) = tc.call(follower, "PutItem", put_new.clone()).await;
    assert_eq!((s, &b), (200, &json!({})));
    // The second create fails, changes nothing, and can show what was there.
    let mut again = put_new.clone();
    again["Item"]["v"] = json!({"N": "2"});
    again["ReturnValuesOnConditionCheckFailure"] = json!("ALL_OLD");
    let (s, b) = tc.call(follower, "PutItem", again).await;
    assert_eq!((s, b["__type"].as_str()), (400, Some(CCF)), "{b}");
    assert_eq!(b["message"], "The conditional request failed");
    assert_eq!(b["Item"], json!({"pk": {"S": "a"}, "v": {"N": "1"}}), "{b}");
    assert_eq!(get(&tc, leader, "a").await["v"], json!({"N": "1"}));
    // Without ReturnValuesOnConditionCheckFailure, no item in the error.
    let (_, b) = tc.call(leader, "PutItem", put_new).await;
    assert!(b.get("Item").is_none(), "{b}");

    // A delete under a false condition keeps the item; under a true one removes it.
    let del = |v: &str| {
        json!({"TableName": "Tab", "Key": {"pk": {"S": "a"}}, "ConditionExpression": "v = :v",
               "ExpressionAttributeValues": {":v": {"N": v}}, "ReturnValues": "ALL_OLD"})
    };
    let (s, b) = tc.call(leader, "DeleteItem", del("9")).await;
    assert_eq!((s, b["__type"].as_str()), (400, Some(CCF)), "{b}");
    let (s, b) = tc.call(leader, "DeleteItem", del("1")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["Attributes"]["v"], json!({"N": "1"}));
    assert!(get(&tc, leader, "a").await.is_null());

    // Expression errors are DynamoDB's.
    for (body, message) in [
        (
            json!({"TableName": "Tab", "Item": {"pk": {"S": "b"}}, "ConditionExpression": "attribute_exists(pk)",
                   "ExpressionAttributeValues": {":x": {"S": "unused"}}}),
            "Value provided in ExpressionAttributeValues unused in expressions: keys: {:x}",
        ),
        (
            json!({"TableName": "Tab", "Item": {"pk": {"S": "b"}}, "ConditionExpression": "v = :nope"}),
            "Invalid ConditionExpression: An expression attribute value used in expression is not defined; attribute value: :nope",
        ),
        (
            json!({"TableName": "Tab", "Item": {"pk": {"S": "b"}}, "ReturnValuesOnConditionCheckFailure": "ALL_NEW"}),
            "1 validation error detected: Value 'ALL_NEW' at 'returnValuesOnConditionCheckFailure' failed to satisfy constraint: Member must satisfy enum value set: [ALL_OLD, NONE]",
        ),
    ] {
        let (s, b) = tc.call(leader, "PutItem", body.clone()).await;
        assert_eq!((s, b["__type"].as_str()), (400, Some(V)), "{body}: {b}");
        assert_eq!(b["message"], message, "{body}");
    }
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_item_with_every_action_and_return_value() {
    let (tc, leader) = cluster().await;
    let follower = tc.other_than(leader);
    let update = |expr: &str, values: Value, ret: &str| {
        json!({"TableName": "Tab", "Key": {"pk": {"S": "u"}}, "UpdateExpression": expr,
               "ExpressionAttributeValues": values, "ReturnValues": ret})
    };
    // An absent item is created from its key.
    let (s, b) = tc
        .call(
            follower,
            "UpdateItem",
            update(
                "SET n = :one, l = :l, m = :m ADD s :s",
                json!({":one": {"N": "1"}, ":l": {"L": [{"S": "x"}]}, ":m": {"M": {}}, ":s": {"SS": ["a"]}}),
                "ALL_NEW",
            ),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["Attributes"],
        json!({"pk": {"S": "u"}, "n": {"N": "1"}, "l": {"L": [{"S": "x"}]}, "m": {"M": {}}, "s": {"SS": ["a"]}})
    );
    // UPDATED_OLD and UPDATED_NEW show just the written paths.
    let (_, b) = tc
        .call(
            leader,
            "UpdateItem",
            update(
                "SET n = n + :two, m.k = :two, l = list_append(l, :l) DELETE s :s",
                json!({":two": {"N": "2"}, ":l": {"L": [{"S": "y"}]}, ":s": {"SS": ["a"]}}),
                "UPDATED_OLD",
            ),
        )
        .await;
    assert_eq!(
        b["Attributes"],
        json!({"n": {"N": "1"}, "l": {"L": [{"S": "x"}]}, "s": {"SS": ["a"]}}),
        "m.k did not exist before"
    );
    let (_, b) = tc
        .call(
            leader,
            "UpdateItem",
            update(
                "REMOVE l[0] SET n = n - :one",
                json!({":one": {"N": "1"}}),
                "UPDATED_NEW",
            ),
        )
        .await;
    assert_eq!(
        b["Attributes"],
        json!({"n": {"N": "2"}, "l": {"L": [{"S": "y"}]}})
    );
    let item = get(&tc, follower, "u").await;
    assert_eq!(
        item,
        json!({"pk": {"S": "u"}, "n": {"N": "2"}, "l": {"L": [{"S": "y"}]}, "m": {"M": {"k": {"N": "2"}}}}),
        "the emptied set is gone"
    );
    // Optimistic locking with a version attribute.
    let cas = |expected: &str| {
        json!({"TableName": "Tab", "Key": {"pk": {"S": "u"}},
               "UpdateExpression": "SET #v = if_not_exists(#v, :zero) + :one",
               "ConditionExpression": "attribute_not_exists(#v) OR #v = :expected",
               "ExpressionAttributeNames": {"#v": "version"},
               "ExpressionAttributeValues": {":zero": {"N": "0"}, ":one": {"N": "1"}, ":expected": {"N": expected}},
               "ReturnValues": "UPDATED_NEW"})
    };
    let (s, b) = tc.call(leader, "UpdateItem", cas("0")).await;
    assert_eq!(
        (s, &b["Attributes"]),
        (200, &json!({"version": {"N": "1"}})),
        "{b}"
    );
    let (s, b) = tc.call(leader, "UpdateItem", cas("0")).await;
    assert_eq!(
        (s, b["__type"].as_str()),
        (400, Some(CCF)),
        "a stale version: {b}"
    );
    let (s, _) = tc.call(leader, "UpdateItem", cas("1")).await;
    assert_eq!(s, 200);

    for (body, message) in [
        (
            update("SET pk = :one", json!({":one": {"N": "1"}}), "NONE"),
            "One or more parameter values were invalid: Cannot update attribute pk. This attribute is part of the key",
        ),
        (
            update("SET n = n + :s", json!({":s": {"S": "x"}}), "NONE"),
            "Invalid UpdateExpression: Incorrect operand type for operator or function; operator or function: +, operand type: S",
        ),
        (
            update("SET l = missing", json!({}), "NONE"),
            "ExpressionAttributeValues must not be empty",
        ),
        (
            update("SET x = nothing_here", json!({":v": {"N": "1"}}), "NONE"),
            "Value provided in ExpressionAttributeValues unused in expressions: keys: {:v}",
        ),
        (
            update("ADD n :s", json!({":s": {"SS": ["z"]}}), "NONE"),
            "An operand in the update expression has an incorrect data type",
        ),
        (
            update("SET n = :one", json!({":one": {"N": "1"}}), "EVERYTHING"),
            "1 validation error detected: Value 'EVERYTHING' at 'returnValues' failed to satisfy constraint: Member must satisfy enum value set: [ALL_NEW, UPDATED_OLD, ALL_OLD, NONE, UPDATED_NEW]",
        ),
    ] {
        let (s, b) = tc.call(leader, "UpdateItem", body.clone()).await;
        assert_eq!((s, b["__type"].as_str()), (400, Some(V)), "{body}: {b}");
        assert_eq!(b["message"], message, "{body}");
    }
    // A rejected update changed nothing.
    assert_eq!(get(&tc, leader, "u").await["n"], json!({"N": "2"}));
    tc.cluster.shutdown().await;
}

/// Conditions and ADD run where the write applies, on the state at its log index: concurrent
/// clients through different nodes get exact answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_conditional_writes_race_exactly() {
    let (tc, _) = cluster().await;
    let nodes = tc.running();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (http, addr) = (tc.http.clone(), tc.addr(nodes[i % nodes.len()]));
        tasks.push(tokio::spawn(async move {
            let create = common::call_addr(
                &http,
                &addr,
                "PutItem",
                json!({"TableName": "Tab", "Item": {"pk": {"S": "once"}, "by": {"N": i.to_string()}},
                       "ConditionExpression": "attribute_not_exists(pk)"}),
            )
            .await;
            let add = common::call_addr(
                &http,
                &addr,
                "UpdateItem",
                json!({"TableName": "Tab", "Key": {"pk": {"S": "counter"}}, "UpdateExpression": "ADD n :one",
                       "ExpressionAttributeValues": {":one": {"N": "1"}}}),
            )
            .await;
            (create, add)
        }));
    }
    let mut created = 0;
    for t in tasks {
        let ((cs, cb), (as_, ab)) = t.await.expect("task");
        match (cs, cb["__type"].as_str()) {
            (200, _) => created += 1,
            (400, Some(CCF)) => {}
            other => panic!("unexpected create answer {other:?}: {cb}"),
        }
        assert_eq!(as_, 200, "{ab}");
    }
    assert_eq!(created, 1, "exactly one conditional create wins");
    let leader = tc.leader().await;
    assert_eq!(get(&tc, leader, "counter").await["n"], json!({"N": "24"}));
    tc.converged().await;
    tc.assert_identical();
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_writes_and_gets_across_tables() {
    let (tc, leader) = cluster().await;
    tc.create_table(leader, "Other", ("id", "N"), None).await;
    let follower = tc.other_than(leader);
    let puts = |range: std::ops::Range<u32>| -> Vec<Value> {
        range
            .map(|i| json!({"PutRequest": {"Item": {"pk": {"S": format!("k{i}")}, "v": {"N": i.to_string()}, "big": {"S": "x"}}}}))
            .collect()
    };
    let (s, b) = tc
        .call(
            follower,
            "BatchWriteItem",
            json!({"RequestItems": {"Tab": puts(0..20),
                   "Other": [{"PutRequest": {"Item": {"id": {"N": "1"}}}}, {"PutRequest": {"Item": {"id": {"N": "2"}}}},
                             {"DeleteRequest": {"Key": {"id": {"N": "3"}}}}]}}),
        )
        .await;
    assert_eq!((s, &b), (200, &json!({"UnprocessedItems": {}})));
    // Refused batches write nothing: too many, duplicates, a missing table, a bad item.
    for (body, want_type, message) in [
        (
            json!({"RequestItems": {"Tab": puts(100..126)}}),
            V,
            "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length less than or equal to 25, Member must have length greater than or equal to 1]",
        ),
        (
            json!({"RequestItems": {"Tab": puts(100..120), "Other": (0..6).map(|i| json!({"PutRequest": {"Item": {"id": {"N": (100 + i).to_string()}}}})).collect::<Vec<_>>()}}),
            V,
            "Too many items requested for the BatchWriteItem call",
        ),
        (
            json!({"RequestItems": {"Tab": [puts(100..101)[0].clone(), {"DeleteRequest": {"Key": {"pk": {"S": "k100"}}}}]}}),
            V,
            "Provided list of item keys contains duplicates",
        ),
        (
            json!({"RequestItems": {"Tab": puts(100..102), "Nope": puts(0..1)}}),
            "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
            "Requested resource not found",
        ),
        (
            json!({"RequestItems": {"Tab": [puts(100..101)[0].clone(), {"PutRequest": {"Item": {"v": {"N": "1"}}}}]}}),
            V,
            "One or more parameter values were invalid: Missing the key pk in the item",
        ),
    ] {
        let (s, b) = tc.call(leader, "BatchWriteItem", body.clone()).await;
        assert_eq!(
            (s, b["__type"].as_str()),
            (400, Some(want_type)),
            "{body}: {b}"
        );
        assert_eq!(b["message"], message, "{body}");
    }
    assert_eq!(
        tc.scan_all(leader, "Tab").await.len(),
        20,
        "refused batches wrote nothing"
    );
    // BatchGetItem through a follower, consistent, with a projection; missing keys are left out.
    let keys: Vec<Value> = (0..25)
        .map(|i| json!({"pk": {"S": format!("k{i}")}}))
        .collect();
    let (s, b) = tc
        .call(
            follower,
            "BatchGetItem",
            json!({"RequestItems": {
                "Tab": {"Keys": keys, "ProjectionExpression": "#v", "ExpressionAttributeNames": {"#v": "v"}, "ConsistentRead": true},
                "Other": {"Keys": [{"id": {"N": "1"}}, {"id": {"N": "3"}}]}}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["UnprocessedKeys"], json!({}));
    let mut got: Vec<i64> = b["Responses"]["Tab"]
        .as_array()
        .expect("Tab")
        .iter()
        .map(|i| {
            assert_eq!(i.as_object().map(|o| o.len()), Some(1), "projected: {i}");
            i["v"]["N"]
                .as_str()
                .and_then(|n| n.parse().ok())
                .expect("v")
        })
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    assert_eq!(b["Responses"]["Other"], json!([{"id": {"N": "1"}}]));
    let too_many: Vec<Value> = (0..101)
        .map(|i| json!({"pk": {"S": format!("k{i}")}}))
        .collect();
    let (s, b) = tc
        .call(
            leader,
            "BatchGetItem",
            json!({"RequestItems": {"Tab": {"Keys": too_many}}}),
        )
        .await;
    assert_eq!(
        (s, b["message"].as_str()),
        (
            400,
            Some("Too many items requested for the BatchGetItem call")
        ),
        "{b}"
    );
    tc.converged().await;
    tc.assert_identical();
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_are_all_or_nothing_idempotent_and_survive_failover() {
    let (tc, leader) = cluster().await;
    tc.create_table(leader, "Other", ("id", "N"), None).await;
    let follower = tc.other_than(leader);
    for (pk, n) in [("b", "1"), ("c", "1"), ("d", "1")] {
        let (s, _) = tc
            .call(
                leader,
                "PutItem",
                json!({"TableName": "Tab", "Item": {"pk": {"S": pk}, "n": {"N": n}}}),
            )
            .await;
        assert_eq!(s, 200);
    }
    let tx = |check: &str| {
        json!({"TransactItems": [
            {"Put": {"TableName": "Tab", "Item": {"pk": {"S": "a"}, "n": {"N": "0"}}, "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Update": {"TableName": "Tab", "Key": {"pk": {"S": "b"}}, "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}},
            {"Delete": {"TableName": "Tab", "Key": {"pk": {"S": "c"}}}},
            {"ConditionCheck": {"TableName": "Tab", "Key": {"pk": {"S": "d"}}, "ConditionExpression": check,
                                "ExpressionAttributeValues": {":one": {"N": "1"}}, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
            {"Put": {"TableName": "Other", "Item": {"id": {"N": "7"}}}}
        ]})
    };
    // A failing check cancels everything, with each action's reason in order.
    let (s, b) = tc
        .call(follower, "TransactWriteItems", tx("n > :one"))
        .await;
    assert_eq!(
        (s, b["__type"].as_str()),
        (
            400,
            Some("com.amazonaws.dynamodb.v20120810#TransactionCanceledException")
        ),
        "{b}"
    );
    assert_eq!(
        b["message"],
        "Transaction cancelled, please refer cancellation reasons for specific reasons [None, None, None, ConditionalCheckFailed, None]"
    );
    assert_eq!(
        b["CancellationReasons"][3],
        json!({"Code": "ConditionalCheckFailed", "Message": "The conditional request failed", "Item": {"pk": {"S": "d"}, "n": {"N": "1"}}})
    );
    assert_eq!(b["CancellationReasons"][0], json!({"Code": "None"}));
    assert!(get(&tc, leader, "a").await.is_null(), "nothing was written");
    assert_eq!(get(&tc, leader, "b").await["n"], json!({"N": "1"}));
    assert!(!get(&tc, leader, "c").await.is_null());
    // The same transaction with a true check applies whole.
    let mut ok = tx("n = :one");
    ok["ClientRequestToken"] = json!("token-1");
    let (s, b) = tc.call(follower, "TransactWriteItems", ok.clone()).await;
    assert_eq!((s, &b), (200, &json!({})));
    assert_eq!(get(&tc, leader, "a").await["n"], json!({"N": "0"}));
    assert_eq!(get(&tc, leader, "b").await["n"], json!({"N": "2"}));
    assert!(get(&tc, leader, "c").await.is_null());
    // Two actions on one item are refused.
    let (s, b) = tc
        .call(
            leader,
            "TransactWriteItems",
            json!({"TransactItems": [
                {"Delete": {"TableName": "Tab", "Key": {"pk": {"S": "d"}}}},
                {"ConditionCheck": {"TableName": "Tab", "Key": {"pk": {"S": "d"}}, "ConditionExpression": "attribute_exists(pk)"}}]}),
        )
        .await;
    assert_eq!(
        (s, b["message"].as_str()),
        (
            400,
            Some("Transaction request cannot include multiple operations on one item")
        ),
        "{b}"
    );
    // TransactGetItems sees one state, with projections; a missing item answers {}.
    let (s, b) = tc
        .call(
            follower,
            "TransactGetItems",
            json!({"TransactItems": [
                {"Get": {"TableName": "Tab", "Key": {"pk": {"S": "a"}}}},
                {"Get": {"TableName": "Tab", "Key": {"pk": {"S": "c"}}}},
                {"Get": {"TableName": "Tab", "Key": {"pk": {"S": "b"}}, "ProjectionExpression": "n"}}]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["Responses"],
        json!([{"Item": {"pk": {"S": "a"}, "n": {"N": "0"}}}, {}, {"Item": {"n": {"N": "2"}}}])
    );

    // The token outlives the leader: after a failover, the retry changes nothing...
    let old_leader = tc.leader().await;
    tc.cluster
        .crash_node(old_leader, follower)
        .await
        .expect("crash the leader");
    let survivor = tc.running()[0];
    let retried = common::eventually(
        std::time::Duration::from_secs(20),
        "the retry to be answered by a new leader",
        || {
            let (tc, ok) = (&tc, ok.clone());
            async move {
                let (s, b) = tc.call(survivor, "TransactWriteItems", ok).await;
                (s != 503).then_some((s, b))
            }
        },
    )
    .await;
    assert_eq!(retried, (200, json!({})), "an idempotent retry succeeds");
    assert_eq!(
        get(&tc, survivor, "b").await["n"],
        json!({"N": "2"}),
        "and adds nothing"
    );
    // ...and the same token for another request is refused.
    let mut other = tx("n = :one");
    other["TransactItems"][1]["Update"]["ExpressionAttributeValues"][":one"] = json!({"N": "5"});
    other["ClientRequestToken"] = json!("token-1");
    let (s, b) = tc.call(survivor, "TransactWriteItems", other).await;
    assert_eq!(
        (s, b["__type"].as_str()),
        (
            400,
            Some("com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException")
        ),
        "{b}"
    );
    tc.cluster.shutdown().await;
}

/// Writes learn their table's key schema from a per-node cache. A table deleted and created
/// again with another key schema must be written by the new one at once, through any node: the
/// cache must never keep the old table's metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_created_again_with_another_key_is_written_by_its_new_key() {
    let (tc, leader) = cluster().await;
    for id in tc.running() {
        let (s, b) = tc
            .call(
                id,
                "PutItem",
                json!({"TableName": "Tab", "Item": {"pk": {"S": "x"}}}),
            )
            .await;
        assert_eq!(s, 200, "node {id} caches the first table: {b}");
    }
    let (s, b) = tc
        .call(leader, "DeleteTable", json!({"TableName": "Tab"}))
        .await;
    assert_eq!(s, 200, "{b}");
    tc.create_table(leader, "Tab", ("id", "N"), Some(("sk", "S")))
        .await;
    for id in tc.running() {
        let item =
            json!({"TableName": "Tab", "Item": {"id": {"N": id.to_string()}, "sk": {"S": "s"}}});
        let (s, b) = tc.call(id, "PutItem", item).await;
        assert_eq!(s, 200, "node {id} writes by the new key: {b}");
        let old = json!({"TableName": "Tab", "Item": {"pk": {"S": "x"}}});
        let (s, b) = tc.call(id, "PutItem", old).await;
        assert_eq!(s, 400, "node {id} refuses the old key: {b}");
        assert_eq!(b["__type"], V, "{b}");
    }
    tc.cluster.shutdown().await;
}
