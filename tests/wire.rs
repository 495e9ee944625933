//! Wire-protocol tests: literal DynamoDB JSON requests against an in-process cluster, checking
//! exact `__type`s, messages, status codes and response shapes, plus leader hints, forwarding
//! and the status route.

mod common;

use common::TestCluster;
use serde_json::{Value, json};

const V: &str = "com.amazon.coral.validate#ValidationException";
const SER: &str = "com.amazon.coral.service#SerializationException";
const RNF: &str = "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException";
const RIU: &str = "com.amazonaws.dynamodb.v20120810#ResourceInUseException";

async fn raw(
    tc: &TestCluster,
    id: u64,
    target: Option<&str>,
    body: &[u8],
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = tc
        .http
        .post(format!("http://{}/", tc.addr(id)))
        .body(body.to_vec());
    if let Some(t) = target {
        req = req.header("X-Amz-Target", t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    assert_eq!(
        ct.as_deref(),
        Some("application/x-amz-json-1.0"),
        "content type"
    );
    let bytes = resp.bytes().await.expect("body");
    (status, serde_json::from_slice(&bytes).expect("JSON body"))
}

async fn music(tc: &TestCluster, leader: u64) {
    tc.create_table(leader, "Music", ("Artist", "S"), Some(("SongTitle", "S")))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_dynamodb_types_and_messages() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    music(&tc, leader).await;
    let big = "x".repeat(400 * 1024);
    let cases: Vec<(&str, Value, u16, &str, String)> = vec![
        ("GetItem", json!({"TableName": "Nope", "Key": {"Artist": {"S": "a"}}}), 400, RNF, "Requested resource not found".into()),
        ("DescribeTable", json!({"TableName": "Nope"}), 400, RNF, "Requested resource not found: Table: Nope not found".into()),
        ("PutItem", json!({"TableName": "Nope", "Item": {"Artist": {"S": "a"}}}), 400, RNF, "Requested resource not found".into()),
        ("DeleteTable", json!({"TableName": "Nope"}), 400, RNF, "Requested resource not found: Table: Nope not found".into()),
        // UpdateTimeToLive checks its specification before looking the table up.
        (
            "UpdateTimeToLive",
            json!({"TableName": "Nope"}),
            400, V, "1 validation error detected: Value null at 'timeToLiveSpecification' failed to satisfy constraint: Member must not be null".into(),
        ),
        (
            "UpdateTimeToLive",
            json!({"TableName": "Nope", "TimeToLiveSpecification": {"Enabled": true}}),
            400, V, "1 validation error detected: Value null at 'timeToLiveSpecification.attributeName' failed to satisfy constraint: Member must not be null".into(),
        ),
        (
            "UpdateTimeToLive",
            json!({"TableName": "Music", "TimeToLiveSpecification": {"AttributeName": "exp"}}),
            400, V, "1 validation error detected: Value null at 'timeToLiveSpecification.enabled' failed to satisfy constraint: Member must not be null".into(),
        ),
        (
            "UpdateTimeToLive",
            json!({"TableName": "Music", "TimeToLiveSpecification": {"Enabled": true, "AttributeName": ""}}),
            400, V, "1 validation error detected: Value '' at 'timeToLiveSpecification.attributeName' failed to satisfy constraint: Member must have length greater than or equal to 1".into(),
        ),
        ("DescribeTimeToLive", json!({"TableName": "Nope"}), 400, RNF, "Requested resource not found".into()),
        (
            "PutItem",
            json!({"TableName": "Music", "Item": {"Artist": {"S": "a"}}}),
            400, V, "One or more parameter values were invalid: Missing the key SongTitle in the item".into(),
        ),
        (
            "PutItem",
            json!({"TableName": "Music", "Item": {"Artist": {"N": "1"}, "SongTitle": {"S": "x"}}}),
            400, V, "One or more parameter values were invalid: Type mismatch for key Artist expected: S actual: N".into(),
        ),
        (
            "GetItem",
            json!({"TableName": "Music", "Key": {"Artist": {"N": "1"}, "SongTitle": {"S": "x"}}}),
            400, V, "The provided key element does not match the schema".into(),
        ),
        (
            "GetItem",
            json!({"TableName": "Music", "Key": {"Artist": {"S": "a"}}}),
            400, V, "The provided key element does not match the schema".into(),
        ),
        (
            "PutItem",
            json!({"TableName": "Music", "Item": {"Artist": {"S": "a"}, "SongTitle": {"S": "b"}, "Blob": {"S": big}}}),
            400, V, "Item size has exceeded the maximum allowed size".into(),
        ),
        (
            "PutItem",
            json!({"TableName": "Music", "Item": {"Artist": {"S": ""}, "SongTitle": {"S": "b"}}}),
            400, V, "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: Artist".into(),
        ),
        (
            "PutItem",
            json!({"TableName": "Music", "Item": {"Artist": {"S": "a"}, "SongTitle": {"S": "b"}, "N": {"N": "1234567890123456789012345678901234567890"}}}),
            400, V, "Attempting to store more than 38 significant digits in a Number".into(),
        ),
        (
            "PutItem",
            json!({"TableName": "Music", "Item": {"Artist": {"S": "a"}, "SongTitle": {"S": "b"}, "N": {"N": "1e126"}}}),
            400, V, "Number overflow. Attempting to store a number with magnitude larger than supported range".into(),
        ),
        (
            "PutItem",
            json!({"TableName": "Music", "Item": {"Artist": {"S": "a"}, "SongTitle": {"S": "b"}, "N": {"N": "abc"}}}),
            400, V, "The parameter cannot be converted to a numeric value: abc".into(),
        ),
        (
            "PutItem",
            json!({"TableName": "Music", "Item": {"Artist": {"S": "a"}, "SongTitle": {"S": "b"}, "E": {}}}),
            400, V, "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes".into(),
        ),
        (
            "PutItem",
            json!({"TableName": "Music", "Item": {"Artist": {"S": "a"}, "SongTitle": {"S": "b"}, "E": {"S": "x", "N": "1"}}}),
            400, V, "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes".into(),
        ),
        ("PutItem", json!({"TableName": "Music", "Item": {"Artist": {"S": 5}}}), 400, SER, "NUMBER_VALUE cannot be converted to String".into()),
        ("GetItem", json!({"TableName": 123, "Key": {}}), 400, SER, "NUMBER_VALUE cannot be converted to String".into()),
        ("GetItem", json!({"TableName": "Music", "Key": {"Artist": {"S": "a"}}, "ConsistentRead": "yes"}), 400, SER,
            "Unexpected token received from parser".into()),
        ("ListTables", json!({"Limit": "x"}), 400, SER, "STRING_VALUE cannot be converted to Long".into()),
        ("GetItem", json!({"TableName": ["Music"], "Key": {}}), 400, SER, "Unrecognized collection type class java.lang.String".into()),
        ("PutItem", json!({"TableName": "Music"}), 400, V,
            "1 validation error detected: Value null at 'item' failed to satisfy constraint: Member must not be null".into()),
        ("GetItem", json!({"Key": {}}), 400, V,
            "1 validation error detected: Value null at 'tableName' failed to satisfy constraint: Member must not be null".into()),
        ("DescribeTable", json!({"TableName": "ab"}), 400, V,
            "TableName must be at least 3 characters long and at most 255 characters long".into()),
        ("PutItem", json!({"TableName": "Music", "Item": {"Artist": {"S": "a"}, "SongTitle": {"S": "t"}}, "ConditionExpression": "((attribute_not_exists(Artist)))"}), 400, V,
            "Invalid ConditionExpression: The expression has redundant parentheses;".into()),
        ("PutItem", json!({"TableName": "Music", "Item": {"Artist": {"S": "a"}, "SongTitle": {"S": "t"}}, "ConditionExpression": "contains(#a, #a)", "ExpressionAttributeNames": {"#a": "data"}}), 400, V,
            "Invalid ConditionExpression: The first operand must be distinct from the remaining operands for this operator or function; operator: contains, first operand: [data]".into()),
        ("PutItem", json!({"TableName": "Music", "Item": {"Artist": {"S": "a"}, "SongTitle": {"S": "t"}}, "ConditionExpression": "attribute_not_exists(#n)", "ExpressionAttributeNames": {"#n": "a", "name": "x"}}), 400, V,
            "ExpressionAttributeNames contains invalid key: Syntax error; key: \"name\"".into()),
        ("UpdateItem", json!({"TableName": "Music", "Key": {"Artist": {"S": "a"}, "SongTitle": {"S": "t"}}, "UpdateExpression": "SET y = size(x)"}), 400, V,
            "Invalid UpdateExpression: The function is not allowed in an update expression; function: size".into()),
        ("GetItem", json!({"TableName": "Music", "Key": {"Artist": {"S": "a"}, "SongTitle": {"S": "t"}}, "AttributesToGet": []}), 400, V,
            "1 validation error detected: Value '[]' at 'attributesToGet' failed to satisfy constraint: Member must have length greater than or equal to 1".into()),
        ("TransactGetItems", json!({"TransactItems": [{"Get": {"TableName": "Music", "Key": {"Artist": {"S": "a"}, "SongTitle": {"S": "t"}},
                                                              "ExpressionAttributeNames": {"#a": "a"}}}]}), 400, V,
            "ExpressionAttributeNames can only be specified when using expressions".into()),
        ("TransactWriteItems", json!({"TransactItems": []}), 400, V,
            "1 validation error detected: Value '[]' at 'transactItems' failed to satisfy constraint: Member must have length greater than or equal to 1".into()),
        ("BatchWriteItem", json!({"RequestItems": {"Music": [{"PutRequest": {"Item": {"Artist": {"N": "1"}, "SongTitle": {"S": "t"}}}}]}}), 400, V,
            "The provided key element does not match the schema".into()),
        ("DescribeTable", json!({}), 400, V,
            "The parameter 'TableName' is required but was not present in the request".into()),
        ("PutItem", json!({"TableName": "", "Item": {"Artist": {"S": "a"}}}), 400, V,
            "1 validation error detected: Value '' at 'tableName' failed to satisfy constraint: Member must have length greater than or equal to 1".into()),
        ("CreateTable", json!({"TableName": "a!", "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
                               "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}], "BillingMode": "PAY_PER_REQUEST"}), 400, V,
            "2 validation errors detected: Value 'a!' at 'tableName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; Value 'a!' at 'tableName' failed to satisfy constraint: Member must have length greater than or equal to 3".into()),
        ("PutItem", json!({"TableName": "Music", "Item": {"Artist": {"S": "a"}, "SongTitle": {"S": "t"}}, "ReturnItemCollectionMetrics": "BOGUS"}), 400, V,
            "1 validation error detected: Value 'BOGUS' at 'returnItemCollectionMetrics' failed to satisfy constraint: Member must satisfy enum value set: [SIZE, NONE]".into()),
        ("PutItem", json!({"TableName": "Music", "Item": {"Artist": {"S": "a"}, "SongTitle": {"S": "t"}}, "ReturnValues": "ALL_NEW"}), 400, V,
            "ReturnValues can only be ALL_OLD or NONE".into()),
        (
            "CreateTable",
            json!({"TableName": "Music", "KeySchema": [{"AttributeName": "Artist", "KeyType": "HASH"}],
                   "AttributeDefinitions": [{"AttributeName": "Artist", "AttributeType": "S"}], "BillingMode": "PAY_PER_REQUEST"}),
            400, RIU, "Table already exists: Music".into(),
        ),
        (
            "CreateTable",
            json!({"TableName": "NoBilling", "KeySchema": [{"AttributeName": "a", "KeyType": "HASH"}],
                   "AttributeDefinitions": [{"AttributeName": "a", "AttributeType": "S"}]}),
            400, V, "One or more parameter values were invalid: ReadCapacityUnits and WriteCapacityUnits must both be specified when BillingMode is PROVISIONED".into(),
        ),
        (
            "CreateTable",
            json!({"TableName": "BadDefs", "KeySchema": [{"AttributeName": "a", "KeyType": "HASH"}],
                   "AttributeDefinitions": [{"AttributeName": "b", "AttributeType": "S"}], "BillingMode": "PAY_PER_REQUEST"}),
            400, V, "One or more parameter values were invalid: Some index key attributes are not defined in AttributeDefinitions. Keys: [a], AttributeDefinitions: [b]".into(),
        ),
        (
            "Query",
            json!({"TableName": "Music", "KeyConditionExpression": "SongTitle = :t", "ExpressionAttributeValues": {":t": {"S": "x"}}}),
            400, V, "Query condition missed key schema element: Artist".into(),
        ),
        (
            "Query",
            json!({"TableName": "Music", "KeyConditionExpression": "Artist = :a", "ExpressionAttributeValues": {":a": {"S": "x"}, ":b": {"S": "y"}}}),
            400, V, "Value provided in ExpressionAttributeValues unused in expressions: keys: {:b}".into(),
        ),
        ("Scan", json!({"TableName": "Music", "Limit": 0}), 400, V,
            "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1".into()),
        ("Query", json!({"TableName": "Music", "Limit": 0, "KeyConditionExpression": "Artist = :a", "ExpressionAttributeValues": {":a": {"S": "x"}}}), 400, V,
            "1 validation error detected: Value at 'Limit' failed to satisfy constraint: Member must have value greater than or equal to 1".into()),
        ("Query", json!({"TableName": "Music", "Select": "COUNT", "ProjectionExpression": "x", "KeyConditionExpression": "Artist = :a", "ExpressionAttributeValues": {":a": {"S": "x"}}}), 400, V,
            "Cannot specify the ProjectionExpression when choosing to get only the Count".into()),
        ("Scan", json!({"TableName": "Music", "Select": "COUNT", "ProjectionExpression": "x"}), 400, V,
            "Cannot specify the ProjectionExpression when choosing to get COUNT".into()),
        ("Query", json!({"TableName": "Music", "KeyConditionExpression": "Artist = :a", "ExpressionAttributeValues": {":a": {"S": "x"}},
                         "ExclusiveStartKey": {"Artist": {"S": "other"}, "SongTitle": {"S": "t"}}}), 400, V,
            "The provided starting key is outside query boundaries based on provided conditions".into()),
        ("Query", json!({"TableName": "Music", "KeyConditionExpression": "Artist = :a AND SongTitle > :t", "ExpressionAttributeValues": {":a": {"S": "x"}, ":t": {"S": "m"}},
                         "ExclusiveStartKey": {"Artist": {"S": "x"}, "SongTitle": {"S": "a"}}}), 400, V,
            "The provided starting key does not match the range key predicate".into()),
        ("Scan", json!({"TableName": "Music", "FilterExpression": "a = :b"}), 400, V,
            "Invalid FilterExpression: An expression attribute value used in expression is not defined; attribute value: :b".into()),
        ("Scan", json!({"TableName": "Music", "Select": "SPECIFIC_ATTRIBUTES"}), 400, V,
            "Must specify the AttributesToGet or ProjectionExpression when choosing to get SPECIFIC_ATTRIBUTES".into()),
        ("Query", json!({"TableName": "Music", "Select": "SPECIFIC_ATTRIBUTES", "KeyConditionExpression": "Artist = :a", "ExpressionAttributeValues": {":a": {"S": "x"}}}), 400, V,
            "1 validation error detected: Must specify the AttributesToGet or ProjectionExpression when choosing to get SPECIFIC_ATTRIBUTES".into()),
        (
            "Query",
            json!({"TableName": "Music", "KeyConditionExpression": "Artist = :a", "FilterExpression": "Artist = :a",
                   "ExpressionAttributeValues": {":a": {"S": "x"}}}),
            400, V, "Filter Expression can only contain non-primary key attributes: Primary key attribute: Artist".into(),
        ),
        (
            "Query",
            json!({"TableName": "Music", "KeyConditionExpression": "Artist = :a", "ExpressionAttributeValues": {":a": {"S": ""}}}),
            400, V, "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: Artist".into(),
        ),
        (
            "CreateTable",
            json!({"TableName": "Streamy", "KeySchema": [{"AttributeName": "a", "KeyType": "HASH"}],
                   "AttributeDefinitions": [{"AttributeName": "a", "AttributeType": "S"}], "BillingMode": "PAY_PER_REQUEST",
                   "StreamSpecification": {"StreamEnabled": "yes"}}),
            400, SER, "Unexpected token received from parser".into(),
        ),
    ];
    for (op, body, status, type_name, message) in cases {
        let (got_status, got) = tc.call(leader, op, body.clone()).await;
        assert_eq!(got_status, status, "{op} {body}: {got}");
        assert_eq!(got["__type"], type_name, "{op} {body}: {got}");
        assert_eq!(got["message"], message.as_str(), "{op} {body}: {got}");
    }
    // Rejected writes changed nothing.
    let (_, scan) = tc.call(leader, "Scan", json!({"TableName": "Music"})).await;
    assert_eq!(scan["Count"], 0, "{scan}");
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_4xx_in_dynamodb_shape() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    let target = Some("DynamoDB_20120810.PutItem");
    let cases: Vec<(Option<&str>, Vec<u8>, u16, &str)> = vec![
        (target, b"{not json".to_vec(), 400, SER),
        (target, b"[1,2]".to_vec(), 400, SER),
        (target, vec![0xff, 0xfe, 0x00], 400, SER),
        (
            Some("DynamoDB_20120810.Frobnicate"),
            b"{}".to_vec(),
            400,
            "com.amazon.coral.service#UnknownOperationException",
        ),
        (
            Some("Other.PutItem"),
            b"{}".to_vec(),
            400,
            "com.amazon.coral.service#UnknownOperationException",
        ),
        (
            None,
            b"{}".to_vec(),
            400,
            "com.amazon.coral.service#UnknownOperationException",
        ),
        (target, vec![b' '; 17 << 20], 413, V),
    ];
    for (target, body, status, type_name) in cases {
        for id in tc.running() {
            let (got_status, got) = raw(&tc, id, target, &body, &[]).await;
            assert_eq!(got_status, status, "{target:?} on node {id}: {got}");
            assert_eq!(got["__type"], type_name, "{target:?} on node {id}: {got}");
            assert!(got["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    }
    let _ = leader;
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_round_trip_in_canonical_form_and_queries_follow_key_order() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    tc.create_table(leader, "Nums", ("p", "S"), Some(("n", "N")))
        .await;
    for n in ["10", "2", "1.50", "-7", "1e2", "007"] {
        let (s, b) = tc
            .call(leader, "PutItem", json!({"TableName": "Nums", "Item": {"p": {"S": "x"}, "n": {"N": n}, "raw": {"S": n}}}))
            .await;
        assert_eq!((s, &b), (200, &json!({})), "PutItem {n}");
    }
    let (s, body) = tc
        .call(
            leader,
            "Query",
            json!({"TableName": "Nums", "KeyConditionExpression": "#p = :p AND #n BETWEEN :lo AND :hi",
                   "ExpressionAttributeNames": {"#p": "p", "#n": "n"},
                   "ExpressionAttributeValues": {":p": {"S": "x"}, ":lo": {"N": "-10"}, ":hi": {"N": "50"}}}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let ns: Vec<&str> = body["Items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["n"]["N"].as_str())
        .collect();
    assert_eq!(
        ns,
        ["-7", "1.5", "2", "7", "10"],
        "numeric order and canonical form"
    );
    assert_eq!(body["Count"], 5);
    assert_eq!(body["ScannedCount"], 5);

    // Descending, limited, paginated, and COUNT.
    let (_, page) = tc
        .call(leader, "Query", json!({"TableName": "Nums", "KeyConditionExpression": "p = :p", "ScanIndexForward": false, "Limit": 2,
            "ExpressionAttributeValues": {":p": {"S": "x"}}}))
        .await;
    let ns: Vec<&str> = page["Items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["n"]["N"].as_str())
        .collect();
    assert_eq!(ns, ["100", "10"]);
    assert_eq!(
        page["LastEvaluatedKey"],
        json!({"p": {"S": "x"}, "n": {"N": "10"}})
    );
    let (_, next) = tc
        .call(leader, "Query", json!({"TableName": "Nums", "KeyConditionExpression": "p = :p", "ScanIndexForward": false, "Limit": 2,
            "ExclusiveStartKey": page["LastEvaluatedKey"], "ExpressionAttributeValues": {":p": {"S": "x"}}}))
        .await;
    let ns: Vec<&str> = next["Items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["n"]["N"].as_str())
        .collect();
    assert_eq!(ns, ["7", "2"]);
    let (_, count) = tc
        .call(
            leader,
            "Query",
            json!({"TableName": "Nums", "KeyConditionExpression": "p = :p", "Select": "COUNT",
            "ExpressionAttributeValues": {":p": {"S": "x"}}}),
        )
        .await;
    assert_eq!(count, json!({"Count": 6, "ScannedCount": 6}));

    // As in DynamoDB, a page that reaches its Limit names a LastEvaluatedKey even when it holds
    // the partition's last item; the next page is then empty and final.
    let (_, all) = tc
        .call(
            leader,
            "Query",
            json!({"TableName": "Nums", "KeyConditionExpression": "p = :p", "Limit": 6,
            "ExpressionAttributeValues": {":p": {"S": "x"}}}),
        )
        .await;
    assert_eq!(all["Count"], 6);
    assert_eq!(
        all["LastEvaluatedKey"],
        json!({"p": {"S": "x"}, "n": {"N": "100"}})
    );
    let (_, after) = tc
        .call(leader, "Query", json!({"TableName": "Nums", "KeyConditionExpression": "p = :p", "Limit": 6,
            "ExclusiveStartKey": all["LastEvaluatedKey"], "ExpressionAttributeValues": {":p": {"S": "x"}}}))
        .await;
    assert_eq!(after, json!({"Items": [], "Count": 0, "ScannedCount": 0}));

    // ReturnValues ALL_OLD on overwrite and delete.
    let (_, put) = tc
        .call(leader, "PutItem", json!({"TableName": "Nums", "Item": {"p": {"S": "x"}, "n": {"N": "2"}, "raw": {"S": "new"}}, "ReturnValues": "ALL_OLD"}))
        .await;
    assert_eq!(
        put["Attributes"],
        json!({"p": {"S": "x"}, "n": {"N": "2"}, "raw": {"S": "2"}})
    );
    let (_, del) = tc
        .call(leader, "DeleteItem", json!({"TableName": "Nums", "Key": {"p": {"S": "x"}, "n": {"N": "2.0"}}, "ReturnValues": "ALL_OLD"}))
        .await;
    assert_eq!(
        del["Attributes"]["raw"],
        json!({"S": "new"}),
        "2.0 and 2 are the same key"
    );
    let (_, gone) = tc
        .call(
            leader,
            "GetItem",
            json!({"TableName": "Nums", "Key": {"p": {"S": "x"}, "n": {"N": "2"}}}),
        )
        .await;
    assert_eq!(gone, json!({}));

    // DescribeTable's full shape.
    let (_, d) = tc
        .call(leader, "DescribeTable", json!({"TableName": "Nums"}))
        .await;
    let t = &d["Table"];
    assert_eq!(t["TableStatus"], "ACTIVE");
    assert_eq!(t["ItemCount"], 5);
    assert!(t["TableSizeBytes"].as_u64().is_some_and(|n| n > 0));
    assert_eq!(
        t["KeySchema"],
        json!([{"AttributeName": "p", "KeyType": "HASH"}, {"AttributeName": "n", "KeyType": "RANGE"}])
    );
    assert_eq!(
        t["AttributeDefinitions"],
        json!([{"AttributeName": "p", "AttributeType": "S"}, {"AttributeName": "n", "AttributeType": "N"}])
    );
    assert_eq!(
        t["TableArn"],
        "arn:aws:dynamodb:us-east-1:000000000000:table/Nums"
    );
    assert!(
        uuid::Uuid::parse_str(t["TableId"].as_str().unwrap_or("")).is_ok(),
        "TableId is a UUID: {t}"
    );
    assert!(t["CreationDateTime"].as_f64().is_some_and(|c| c > 1.6e9));
    assert_eq!(t["BillingModeSummary"]["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(t["ProvisionedThroughput"]["ReadCapacityUnits"], 0);

    let (_, deleted) = tc
        .call(leader, "DeleteTable", json!({"TableName": "Nums"}))
        .await;
    assert_eq!(deleted["TableDescription"]["TableStatus"], "DELETING");
    let (s, _) = tc
        .call(leader, "DescribeTable", json!({"TableName": "Nums"}))
        .await;
    assert_eq!(s, 400);
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_tables_paginates_in_name_order() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    for name in ["Delta", "Alpha", "Charlie", "Bravo", "Echo"] {
        tc.create_table(leader, name, ("k", "S"), None).await;
    }
    let mut names = Vec::new();
    let mut start: Option<Value> = None;
    let mut pages = 0;
    loop {
        let mut req = json!({"Limit": 2});
        if let Some(s) = start.take() {
            req["ExclusiveStartTableName"] = s;
        }
        let (_, page) = tc.call(leader, "ListTables", req).await;
        pages += 1;
        names.extend(page["TableNames"].as_array().cloned().unwrap_or_default());
        match page.get("LastEvaluatedTableName") {
            Some(n) => start = Some(n.clone()),
            None => break,
        }
    }
    assert_eq!(
        names,
        json!(["Alpha", "Bravo", "Charlie", "Delta", "Echo"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    );
    assert_eq!(pages, 3);
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_forward_or_hint_and_serve_consistent_reads() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    music(&tc, leader).await;
    let follower = tc.other_than(leader);
    let leader_addr = tc.addr(leader);

    // A client asking for a hint gets the leader's address and nothing is written.
    let body =
        json!({"TableName": "Music", "Item": {"Artist": {"S": "a"}, "SongTitle": {"S": "hinted"}}})
            .to_string();
    let (status, hint) = raw(
        &tc,
        follower,
        Some("DynamoDB_20120810.PutItem"),
        body.as_bytes(),
        &[("x-kvsim-redirect", "hint")],
    )
    .await;
    assert_eq!(status, 421, "{hint}");
    assert_eq!(hint["__type"], "kvsim#NotLeaderException");
    assert_eq!(hint["leader_id"], leader);
    assert_eq!(hint["leader_addr"], leader_addr.as_str());

    // An SDK-style request is forwarded, and a consistent read through the follower sees it.
    // So does an eventually consistent one: the follower answers a forwarded write before
    // applying it, and holds its next local read until it has.
    for (consistent, rounds) in [(true, 5), (false, 40)] {
        for i in 0..rounds {
            let v = format!("{consistent}-{i}");
            let (s, b) = tc
                .call(follower, "PutItem", json!({"TableName": "Music", "Item": {"Artist": {"S": "a"}, "SongTitle": {"S": "t"}, "V": {"S": v}}}))
                .await;
            assert_eq!(s, 200, "{b}");
            let (s, got) = tc
                .call(follower, "GetItem", json!({"TableName": "Music", "Key": {"Artist": {"S": "a"}, "SongTitle": {"S": "t"}}, "ConsistentRead": consistent}))
                .await;
            assert_eq!(s, 200, "{got}");
            assert_eq!(
                got["Item"]["V"]["S"],
                v.as_str(),
                "read at the follower after writing through it (consistent: {consistent}, round {i})"
            );
        }
    }
    let (s, b) = tc
        .call(follower, "CreateTable", json!({"TableName": "ThroughFollower", "KeySchema": [{"AttributeName": "a", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "a", "AttributeType": "S"}], "BillingMode": "PAY_PER_REQUEST"}))
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, listed) = tc.call(follower, "ListTables", json!({})).await;
    assert_eq!(s, 200, "{listed}");
    assert!(
        listed["TableNames"]
            .as_array()
            .is_some_and(|names| names.iter().any(|n| n == "ThroughFollower")),
        "a table created through the follower is listed there at once: {listed}"
    );
    let (_, hinted) = tc.call(leader, "GetItem", json!({"TableName": "Music", "Key": {"Artist": {"S": "a"}, "SongTitle": {"S": "hinted"}}})).await;
    assert_eq!(hinted, json!({}), "the hinted write was not applied");

    // A forwarded request keeps its SigV4 credential scope: the region in the new table's ARN
    // is the caller's, whichever node it asked.
    let auth = "AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/dynamodb/aws4_request, \
                SignedHeaders=host, Signature=00";
    let body = json!({"TableName": "Regional", "KeySchema": [{"AttributeName": "a", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "a", "AttributeType": "S"}], "BillingMode": "PAY_PER_REQUEST"})
    .to_string();
    let (status, created) = raw(
        &tc,
        follower,
        Some("DynamoDB_20120810.CreateTable"),
        body.as_bytes(),
        &[("authorization", auth)],
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(
        created["TableDescription"]["TableArn"],
        "arn:aws:dynamodb:eu-west-1:000000000000:table/Regional"
    );
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_cluster_members_may_use_the_internal_routes() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    music(&tc, leader).await;
    tc.call(
        leader,
        "PutItem",
        json!({"TableName": "Music", "Item": {"Artist": {"S": "a"}, "SongTitle": {"S": "b"}}}),
    )
    .await;
    let applied = tc.converged().await;
    let follower = tc.other_than(leader);
    // A forged snapshot (empty data, far-ahead index) and a raft batch, without the cluster's
    // key: both refused before anything is staged or stepped.
    for (path, body) in [
        (
            format!("/internal/snapshot?index={}&term=99", applied + 100),
            vec![0u8],
        ),
        ("/internal/raft".to_string(), vec![0, 0, 0, 0]),
    ] {
        let resp = tc
            .http
            .post(format!("http://{}{path}", tc.addr(follower)))
            .header("x-kvsim-from", leader.to_string())
            .header("x-kvsim-cluster-key", "guess")
            .body(body)
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), 403, "{path}");
    }
    let snapshots = tc
        .cluster
        .node(follower)
        .map(|h| h.snapshot_dir().clone())
        .expect("follower running");
    let staged = std::fs::read_dir(&snapshots)
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(staged, 0, "nothing staged in {}", snapshots.display());
    let (_, scan) = tc
        .call(follower, "Scan", json!({"TableName": "Music"}))
        .await;
    assert_eq!(scan["Count"], 1, "the follower's data is untouched: {scan}");
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_the_documented_fields() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    music(&tc, leader).await;
    tc.converged().await;
    for id in tc.running() {
        let status = tc.status_json(id).await;
        // Every field the README calls stable, with its type.
        for field in [
            "node_id",
            "term",
            "leader_id",
            "commit_index",
            "applied_index",
            "last_log_index",
            "first_log_index",
            "tables",
            "pending_proposals",
            "pending_reads",
        ] {
            assert!(status[field].is_u64(), "node {id}: {field} in {status}");
        }
        for field in ["addr", "role", "leader_addr"] {
            assert!(status[field].is_string(), "node {id}: {field} in {status}");
        }
        for field in [
            "fsyncs",
            "entries_applied",
            "snapshots_installed",
            "compactions",
        ] {
            assert!(
                status["stats"][field].is_u64(),
                "node {id}: stats.{field} in {status}"
            );
        }
        for field in ["faults", "node_faults"] {
            assert!(status[field].is_array(), "node {id}: {field} in {status}");
        }
        assert_eq!(status["health"]["state"], "running", "{status}");
        assert_eq!(status["storage"], "fsync", "{status}");
        let sup = &status["supervision"];
        assert_eq!(sup["auto_restart"], true, "{status}");
        assert!(
            sup["max_restarts"].is_u64() && sup["period_secs"].is_u64(),
            "{status}"
        );
        let records = sup["nodes"].as_array().expect("supervision.nodes");
        assert_eq!(records.len(), 3, "{status}");
        for r in records {
            assert!(r["node_id"].is_u64() && r["restarts"] == 0, "{status}");
            assert!(
                r["last_failure"].is_null() && r["gave_up"].is_null(),
                "{status}"
            );
        }
        assert_eq!(status["addr"], tc.addr(id).as_str());
        let nodes = status["nodes"].as_array().expect("nodes");
        assert_eq!(nodes.len(), 3, "{status}");
        for n in nodes {
            let nid = n["node_id"].as_u64().expect("node_id");
            assert_eq!(n["addr"], tc.addr(nid).as_str(), "{status}");
        }
        let applied = status["applied_index"].as_u64().unwrap_or(0);
        assert!(
            status["first_log_index"].as_u64().unwrap_or(u64::MAX) <= applied + 1
                && applied <= status["commit_index"].as_u64().unwrap_or(0)
                && status["commit_index"].as_u64() <= status["last_log_index"].as_u64(),
            "first <= applied + 1 <= commit + 1 <= last + 1: {status}"
        );
        assert!(
            status["stats"]["entries_applied"].as_u64() > Some(0),
            "the table's creation was applied: {status}"
        );
        assert_eq!(status["node_id"], id);
        assert_eq!(status["leader_id"], leader);
        assert_eq!(status["leader_addr"], tc.addr(leader).as_str());
        assert_eq!(status["tables"], 1);
        assert_eq!(
            status["role"],
            if id == leader { "leader" } else { "follower" }
        );
        if id == leader {
            let peers = status["peers"].as_array().expect("leader lists peers");
            assert_eq!(peers.len(), 2);
            for p in peers {
                assert!(
                    p["node_id"].is_u64()
                        && p["match_index"].is_u64()
                        && p["next_index"].is_u64()
                        && p["state"].is_string(),
                    "{p}"
                );
            }
        } else {
            assert!(status.get("peers").is_none());
        }
        let health = tc
            .http
            .get(format!("http://{}/", tc.addr(id)))
            .send()
            .await
            .expect("health");
        assert_eq!(health.status().as_u16(), 200);
    }
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_apply_after_limit_and_projections_keep_nesting() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    tc.create_table(leader, "Proj", ("p", "S"), Some(("n", "N")))
        .await;
    for n in 1..=10 {
        let item = json!({"TableName": "Proj", "Item": {"p": {"S": "x"}, "n": {"N": n.to_string()},
            "even": {"BOOL": n % 2 == 0}, "doc": {"M": {"a": {"N": n.to_string()}, "b": {"L": [{"S": "l0"}, {"S": "l1"}]}}}}});
        let (s, b) = tc.call(leader, "PutItem", item).await;
        assert_eq!(s, 200, "{b}");
    }
    tc.converged().await;
    let follower = tc.other_than(leader);
    // Limit counts items read; the filter then keeps the even ones.
    let (s, page) = tc
        .call(
            follower,
            "Query",
            json!({"TableName": "Proj", "KeyConditionExpression": "p = :p", "Limit": 5,
                   "FilterExpression": "#e = :t", "ProjectionExpression": "n, doc.b[1]",
                   "ExpressionAttributeNames": {"#e": "even"},
                   "ExpressionAttributeValues": {":p": {"S": "x"}, ":t": {"BOOL": true}}}),
        )
        .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(
        (page["Count"].as_u64(), page["ScannedCount"].as_u64()),
        (Some(2), Some(5))
    );
    assert_eq!(
        page["LastEvaluatedKey"],
        json!({"p": {"S": "x"}, "n": {"N": "5"}})
    );
    assert_eq!(
        page["Items"],
        json!([{"n": {"N": "2"}, "doc": {"M": {"b": {"L": [{"S": "l1"}]}}}},
               {"n": {"N": "4"}, "doc": {"M": {"b": {"L": [{"S": "l1"}]}}}}])
    );
    // Scan with a filter on a nested number and size(), counting only.
    let (_, page) = tc
        .call(
            follower,
            "Scan",
            json!({"TableName": "Proj", "Select": "COUNT", "FilterExpression": "doc.a > :three AND size(doc.b) = :two",
                   "ExpressionAttributeValues": {":three": {"N": "3"}, ":two": {"N": "2"}}}),
        )
        .await;
    assert_eq!(
        (page["Count"].as_u64(), page["ScannedCount"].as_u64()),
        (Some(7), Some(10))
    );
    assert!(page.get("Items").is_none(), "{page}");
    // GetItem with a projection and a name placeholder.
    let (_, got) = tc
        .call(
            follower,
            "GetItem",
            json!({"TableName": "Proj", "Key": {"p": {"S": "x"}, "n": {"N": "3"}},
                   "ProjectionExpression": "#d.a, even", "ExpressionAttributeNames": {"#d": "doc"}}),
        )
        .await;
    assert_eq!(
        got["Item"],
        json!({"doc": {"M": {"a": {"N": "3"}}}, "even": {"BOOL": false}})
    );
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_crc32_and_cors_as_dynamodb_answers() {
    use std::io::Write;
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    music(&tc, leader).await;
    let url = format!("http://{}/", tc.addr(leader));
    let put = json!({"TableName": "Music", "Item": {"Artist": {"S": "Z"}, "SongTitle": {"S": "gz"}, "pad": {"S": "x".repeat(500)}}});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(put.to_string().as_bytes()).expect("gzip");
    let body = gz.finish().expect("gzip");
    // A gzip request body is accepted.
    let resp = tc
        .http
        .post(&url)
        .header("X-Amz-Target", "DynamoDB_20120810.PutItem")
        .header("Content-Type", "application/x-amz-json-1.0")
        .header("Content-Encoding", "gzip")
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 200);
    // Every answer carries the CRC32 of its bytes; a client that asks gets gzip.
    for gzip in [false, true] {
        let mut req = tc
            .http
            .post(&url)
            .header("X-Amz-Target", "DynamoDB_20120810.GetItem")
            .header("Content-Type", "application/x-amz-json-1.0")
            .body(json!({"TableName": "Music", "Key": {"Artist": {"S": "Z"}, "SongTitle": {"S": "gz"}}, "ConsistentRead": true}).to_string());
        if gzip {
            req = req.header("Accept-Encoding", "gzip");
        }
        let resp = req.send().await.expect("send");
        let crc: u32 = resp
            .headers()
            .get("x-amz-crc32")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("x-amz-crc32");
        let encoding = resp
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap_or("").to_string());
        let bytes = resp.bytes().await.expect("body");
        assert_eq!(crc, crc32fast::hash(&bytes), "the CRC of the bytes as sent");
        let text = if gzip {
            assert_eq!(encoding.as_deref(), Some("gzip"));
            let mut out = String::new();
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out)
                .expect("gunzip");
            out
        } else {
            assert_eq!(encoding, None);
            String::from_utf8(bytes.to_vec()).expect("utf-8")
        };
        let got: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(got["Item"]["SongTitle"]["S"], "gz");
    }
    // A request that needs no CORS or gzip skips those layers (`api::lean`), yet its answer
    // carries the headers they would have added, as the answer of one that took them does.
    let cors_of = |extra: Option<(&'static str, &'static str)>| {
        let mut req = tc
            .http
            .post(&url)
            .header("X-Amz-Target", "DynamoDB_20120810.ListTables")
            .header("Content-Type", "application/x-amz-json-1.0")
            .body("{}");
        if let Some((k, v)) = extra {
            req = req.header(k, v);
        }
        async move {
            let resp = req.send().await.expect("send");
            [
                "vary",
                "access-control-allow-origin",
                "access-control-expose-headers",
            ]
            .map(|h| {
                resp.headers()
                    .get(h)
                    .map(|v| v.to_str().unwrap_or("").to_string())
            })
        }
    };
    let plain = cors_of(None).await;
    assert_eq!(plain[1].as_deref(), Some("*"), "{plain:?}");
    assert_eq!(plain, cors_of(Some(("Accept-Encoding", "gzip"))).await);
    assert_eq!(
        plain,
        cors_of(Some(("Origin", "http://localhost:8001"))).await
    );
    // CORS: the DynamoDB endpoint answers a browser's preflight; the admin routes do not.
    let preflight = |path: &str| {
        tc.http
            .request(
                reqwest::Method::OPTIONS,
                format!("http://{}{path}", tc.addr(leader)),
            )
            .header("Origin", "http://localhost:8001")
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "x-amz-target,content-type,authorization",
            )
            .send()
    };
    let resp = preflight("/").await.expect("preflight");
    assert_eq!(
        resp.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("*")
    );
    let resp = preflight("/admin/faults/heal").await.expect("preflight");
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_scan_segments_cover_the_table_once() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    tc.create_table(leader, "Par", ("p", "S"), Some(("n", "N")))
        .await;
    for i in 0..40 {
        let item = json!({"TableName": "Par", "Item": {"p": {"S": format!("part{}", i % 10)}, "n": {"N": i.to_string()}}});
        let (s, b) = tc.call(leader, "PutItem", item).await;
        assert_eq!(s, 200, "{b}");
    }
    tc.converged().await;
    let mut seen: std::collections::BTreeMap<String, u32> = Default::default();
    let mut segment_of_partition: std::collections::BTreeMap<String, u32> = Default::default();
    for segment in 0..4u32 {
        let mut start: Option<Value> = None;
        loop {
            let mut req =
                json!({"TableName": "Par", "Segment": segment, "TotalSegments": 4, "Limit": 3});
            if let Some(k) = &start {
                req["ExclusiveStartKey"] = k.clone();
            }
            let (s, page) = tc.call(tc.other_than(leader), "Scan", req).await;
            assert_eq!(s, 200, "{page}");
            for item in page["Items"].as_array().expect("items") {
                let p = item["p"]["S"].as_str().expect("p").to_string();
                let n = item["n"]["N"].as_str().expect("n").to_string();
                *seen.entry(format!("{p}/{n}")).or_default() += 1;
                let first = *segment_of_partition.entry(p.clone()).or_insert(segment);
                assert_eq!(first, segment, "partition {p} is in one segment");
            }
            match page.get("LastEvaluatedKey") {
                Some(k) => start = Some(k.clone()),
                None => break,
            }
        }
    }
    assert_eq!(seen.len(), 40, "every item, {seen:?}");
    assert!(seen.values().all(|c| *c == 1), "each once: {seen:?}");
    for (body, message) in [
        (
            json!({"TableName": "Par", "Segment": 0}),
            "The TotalSegments parameter is required but was not present in the request when Segment parameter is present",
        ),
        (
            json!({"TableName": "Par", "Segment": 4, "TotalSegments": 4}),
            "The Segment parameter is zero-based and must be less than parameter TotalSegments: Segment: 4 is not less than TotalSegments: 4",
        ),
        (
            json!({"TableName": "Par", "Segment": 0, "TotalSegments": 0}),
            "1 validation error detected: Value '0' at 'totalSegments' failed to satisfy constraint: Member must have value greater than or equal to 1",
        ),
    ] {
        let (s, b) = tc.call(leader, "Scan", body.clone()).await;
        assert_eq!((s, b["message"].as_str()), (400, Some(message)), "{body}");
    }
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_settings_tags_backups_endpoints_and_limits() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    music(&tc, leader).await;
    let follower = tc.other_than(leader);
    let arn = "arn:aws:dynamodb:us-east-1:000000000000:table/Music";
    // UpdateTable: on-demand to provisioned and back, reported by DescribeTable everywhere.
    let (s, b) = tc
        .call(
            follower,
            "UpdateTable",
            json!({"TableName": "Music", "BillingMode": "PROVISIONED",
                   "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 7}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["TableDescription"]["BillingModeSummary"]["BillingMode"],
        "PROVISIONED"
    );
    assert_eq!(
        b["TableDescription"]["ProvisionedThroughput"]["WriteCapacityUnits"],
        7
    );
    tc.converged().await;
    let (_, d) = tc
        .call(follower, "DescribeTable", json!({"TableName": "Music"}))
        .await;
    assert_eq!(
        d["Table"]["ProvisionedThroughput"]["ReadCapacityUnits"], 5,
        "{d}"
    );
    let (s, b) = tc
        .call(leader, "UpdateTable", json!({"TableName": "Music"}))
        .await;
    assert_eq!(s, 400, "{b}");
    // Tags.
    let (s, b) = tc
        .call(
            follower,
            "TagResource",
            json!({"ResourceArn": arn, "Tags": [{"Key": "team", "Value": "db"}, {"Key": "env", "Value": "dev"}]}),
        )
        .await;
    assert_eq!((s, &b), (200, &json!({})));
    let (s, b) = tc
        .call(
            leader,
            "UntagResource",
            json!({"ResourceArn": arn, "TagKeys": ["env"]}),
        )
        .await;
    assert_eq!((s, &b), (200, &json!({})));
    tc.converged().await;
    let (_, b) = tc
        .call(follower, "ListTagsOfResource", json!({"ResourceArn": arn}))
        .await;
    assert_eq!(b, json!({"Tags": [{"Key": "team", "Value": "db"}]}));
    let (s, b) = tc
        .call(
            leader,
            "ListTagsOfResource",
            json!({"ResourceArn": "arn:aws:dynamodb:us-east-1:000000000000:table/Nope"}),
        )
        .await;
    assert_eq!(
        (s, b["__type"].as_str()),
        (
            400,
            Some("com.amazonaws.dynamodb.v20120810#ResourceNotFoundException")
        ),
        "{b}"
    );
    let (s, b) = tc
        .call(
            leader,
            "ListTagsOfResource",
            json!({"ResourceArn": "not-an-arn"}),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    // Point-in-time recovery, reported.
    let (_, b) = tc
        .call(
            leader,
            "DescribeContinuousBackups",
            json!({"TableName": "Music"}),
        )
        .await;
    assert_eq!(
        b["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"],
        "DISABLED"
    );
    let (_, b) = tc
        .call(
            follower,
            "UpdateContinuousBackups",
            json!({"TableName": "Music", "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": true}}),
        )
        .await;
    assert_eq!(
        b["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"],
        "ENABLED"
    );
    // Account questions.
    let (_, b) = tc.call(follower, "DescribeEndpoints", json!({})).await;
    assert_eq!(b["Endpoints"][0]["Address"], tc.addr(follower).as_str());
    let (_, b) = tc.call(follower, "DescribeLimits", json!({})).await;
    assert_eq!(b["TableMaxWriteCapacityUnits"], 40000);
    // A deleted table takes its settings with it; a new one starts bare.
    let (s, _) = tc
        .call(leader, "DeleteTable", json!({"TableName": "Music"}))
        .await;
    assert_eq!(s, 200);
    music(&tc, leader).await;
    let (_, b) = tc
        .call(leader, "ListTagsOfResource", json!({"ResourceArn": arn}))
        .await;
    assert_eq!(b, json!({"Tags": []}));
    tc.converged().await;
    tc.assert_identical();
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_parameters_mean_their_expressions() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    tc.create_table(leader, "Old", ("p", "S"), Some(("n", "N")))
        .await;
    for n in 1..=6 {
        let (s, b) = tc
            .call(
                leader,
                "PutItem",
                json!({"TableName": "Old", "Item": {"p": {"S": "x"}, "n": {"N": n.to_string()},
                       "tag": {"S": if n % 2 == 0 { "even" } else { "odd" }}, "v": {"N": "1"}}}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    // KeyConditions with BETWEEN, QueryFilter, AttributesToGet.
    let (s, page) = tc
        .call(
            leader,
            "Query",
            json!({"TableName": "Old",
                   "KeyConditions": {"p": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "x"}]},
                                     "n": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [{"N": "2"}, {"N": "5"}]}},
                   "QueryFilter": {"tag": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "even"}]}},
                   "AttributesToGet": ["n"]}),
        )
        .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["Items"], json!([{"n": {"N": "2"}}, {"n": {"N": "4"}}]));
    assert_eq!(page["ScannedCount"], json!(4));
    // ScanFilter with OR and IN / BEGINS_WITH.
    let (s, page) = tc
        .call(
            leader,
            "Scan",
            json!({"TableName": "Old", "ConditionalOperator": "OR", "Select": "COUNT",
                   "ScanFilter": {"n": {"ComparisonOperator": "IN", "AttributeValueList": [{"N": "1"}, {"N": "6"}]},
                                  "tag": {"ComparisonOperator": "BEGINS_WITH", "AttributeValueList": [{"S": "ev"}]}}}),
        )
        .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["Count"], json!(4), "{page}");
    // Expected: a version check that holds, then one that fails and writes nothing.
    let key = json!({"p": {"S": "x"}, "n": {"N": "1"}});
    let (s, b) = tc
        .call(
            leader,
            "UpdateItem",
            json!({"TableName": "Old", "Key": key,
                   "Expected": {"v": {"Value": {"N": "1"}}, "gone": {"Exists": false}},
                   "AttributeUpdates": {"v": {"Action": "ADD", "Value": {"N": "1"}},
                                        "tag": {"Action": "DELETE"},
                                        "note": {"Value": {"S": "hi"}}},
                   "ReturnValues": "ALL_NEW"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["Attributes"],
        json!({"p": {"S": "x"}, "n": {"N": "1"}, "v": {"N": "2"}, "note": {"S": "hi"}})
    );
    let (s, b) = tc
        .call(
            leader,
            "PutItem",
            json!({"TableName": "Old", "Item": {"p": {"S": "x"}, "n": {"N": "1"}},
                   "Expected": {"v": {"ComparisonOperator": "LT", "AttributeValueList": [{"N": "2"}]}}}),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["__type"]
            .as_str()
            .is_some_and(|t| t.ends_with("#ConditionalCheckFailedException")),
        "{b}"
    );
    let (s, b) = tc
        .call(
            leader,
            "DeleteItem",
            json!({"TableName": "Old", "Key": key, "ConditionalOperator": "OR",
                   "Expected": {"v": {"Value": {"N": "7"}}, "note": {"Exists": true, "Value": {"S": "hi"}}},
                   "ReturnValues": "ALL_OLD"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["Attributes"]["v"], json!({"N": "2"}));
    // GetItem with AttributesToGet.
    let (s, b) = tc
        .call(
            leader,
            "GetItem",
            json!({"TableName": "Old", "Key": {"p": {"S": "x"}, "n": {"N": "2"}}, "AttributesToGet": ["tag", "missing"]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["Item"], json!({"tag": {"S": "even"}}));
    let (s, b) = tc
        .call(
            leader,
            "BatchGetItem",
            json!({"RequestItems": {"Old": {"Keys": [{"p": {"S": "x"}, "n": {"N": "3"}}], "AttributesToGet": ["n", "tag"]}}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["Responses"]["Old"],
        json!([{"n": {"N": "3"}, "tag": {"S": "odd"}}])
    );
    // Mixing the forms, or legacy members with placeholder maps, is refused.
    let refused: Vec<(&str, Value, &str)> = vec![
        (
            "Query",
            json!({"TableName": "Old", "KeyConditionExpression": "p = :p", "ExpressionAttributeValues": {":p": {"S": "x"}},
                         "QueryFilter": {"tag": {"ComparisonOperator": "NOT_NULL"}}}),
            "Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {QueryFilter} Expression parameters: {KeyConditionExpression}",
        ),
        (
            "GetItem",
            json!({"TableName": "Old", "Key": key, "AttributesToGet": ["a"], "ProjectionExpression": "a"}),
            "Non-expression parameters: {AttributesToGet} Expression parameters: {ProjectionExpression}",
        ),
        (
            "PutItem",
            json!({"TableName": "Old", "Item": key, "Expected": {"a": {"Exists": false}},
                           "ExpressionAttributeNames": {"#a": "a"}}),
            "ExpressionAttributeNames can only be specified when using expressions",
        ),
        (
            "PutItem",
            json!({"TableName": "Old", "Item": key, "Expected": {"a": {"Exists": false, "Value": {"S": "v"}}}}),
            "Value cannot be used when Exists is false for Attribute: a",
        ),
        (
            "Scan",
            json!({"TableName": "Old", "ScanFilter": {"a": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [{"N": "1"}]}}}),
            "Invalid number of argument(s) for the BETWEEN ComparisonOperator",
        ),
        (
            "Scan",
            json!({"TableName": "Old", "ScanFilter": {"a": {"ComparisonOperator": "LIKE", "AttributeValueList": [{"N": "1"}]}}}),
            "Value 'LIKE' at 'comparisonOperator' failed to satisfy constraint",
        ),
    ];
    for (op, body, fragment) in refused {
        let (s, b) = tc.call(leader, op, body).await;
        assert_eq!((s, b["__type"].as_str()), (400, Some(V)), "{op}: {b}");
        let message = b["message"].as_str().unwrap_or_default();
        assert!(message.contains(fragment), "{op}: {message}");
    }
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumed_capacity_follows_dynamodbs_rules() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    tc.create_table(leader, "Cap", ("p", "S"), Some(("n", "N")))
        .await;
    tc.create_table(leader, "Cap2", ("p", "S"), None).await;
    let cc = |b: &Value| b["ConsumedCapacity"].clone();
    // A 2.5 KB item: three write units, one read unit (half when eventual).
    let big = "x".repeat(2500);
    let item = json!({"p": {"S": "a"}, "n": {"N": "1"}, "pl": {"S": big}});
    let (s, b) = tc
        .call(
            leader,
            "PutItem",
            json!({"TableName": "Cap", "Item": item, "ReturnConsumedCapacity": "TOTAL"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(cc(&b), json!({"TableName": "Cap", "CapacityUnits": 3.0}));
    // Overwriting it with a small item still costs the larger of the two.
    let (_, b) = tc
        .call(
            leader,
            "PutItem",
            json!({"TableName": "Cap", "Item": {"p": {"S": "a"}, "n": {"N": "1"}}, "ReturnConsumedCapacity": "INDEXES"}),
        )
        .await;
    assert_eq!(
        cc(&b),
        json!({"TableName": "Cap", "CapacityUnits": 3.0, "Table": {"CapacityUnits": 3.0}})
    );
    let (_, b) = tc
        .call(
            leader,
            "UpdateItem",
            json!({"TableName": "Cap", "Key": {"p": {"S": "a"}, "n": {"N": "1"}}, "UpdateExpression": "SET pl = :b",
                   "ExpressionAttributeValues": {":b": {"S": "x".repeat(5000)}}, "ReturnConsumedCapacity": "TOTAL"}),
        )
        .await;
    assert_eq!(cc(&b)["CapacityUnits"], json!(5.0), "{b}");
    // Reads: 5 KB is two 4 KB blocks, halved when eventual; a missing item still costs.
    for (consistent, units) in [(false, 1.0), (true, 2.0)] {
        let (_, b) = tc
            .call(
                leader,
                "GetItem",
                json!({"TableName": "Cap", "Key": {"p": {"S": "a"}, "n": {"N": "1"}},
                       "ConsistentRead": consistent, "ReturnConsumedCapacity": "TOTAL",
                       "ProjectionExpression": "p"}),
            )
            .await;
        assert_eq!(cc(&b)["CapacityUnits"], json!(units), "{b}");
    }
    let (_, b) = tc
        .call(
            leader,
            "GetItem",
            json!({"TableName": "Cap", "Key": {"p": {"S": "zz"}, "n": {"N": "1"}}, "ReturnConsumedCapacity": "TOTAL"}),
        )
        .await;
    assert_eq!(cc(&b)["CapacityUnits"], json!(0.5), "{b}");
    // Query rounds the page's total (before the filter): 5 KB + three small items.
    for n in 2..=4 {
        tc.call(
            leader,
            "PutItem",
            json!({"TableName": "Cap", "Item": {"p": {"S": "a"}, "n": {"N": n.to_string()}}}),
        )
        .await;
    }
    let (_, b) = tc
        .call(
            leader,
            "Query",
            json!({"TableName": "Cap", "KeyConditionExpression": "p = :p", "FilterExpression": "attribute_exists(nothing)",
                   "ExpressionAttributeValues": {":p": {"S": "a"}}, "ConsistentRead": true, "ReturnConsumedCapacity": "TOTAL"}),
        )
        .await;
    assert_eq!(
        (b["Count"].as_u64(), b["ScannedCount"].as_u64()),
        (Some(0), Some(4))
    );
    assert_eq!(cc(&b)["CapacityUnits"], json!(2.0), "{b}");
    let (_, b) = tc
        .call(
            leader,
            "Scan",
            json!({"TableName": "Cap2", "ReturnConsumedCapacity": "TOTAL"}),
        )
        .await;
    assert_eq!(cc(&b), json!({"TableName": "Cap2", "CapacityUnits": 0.5}));
    // Batches: each item on its own, summed per table, tables in name order.
    let (_, b) = tc
        .call(
            leader,
            "BatchWriteItem",
            json!({"ReturnConsumedCapacity": "TOTAL", "RequestItems": {
                "Cap2": [{"PutRequest": {"Item": {"p": {"S": "q"}, "pl": {"S": "y".repeat(1500)}}}},
                         {"PutRequest": {"Item": {"p": {"S": "r"}}}}],
                "Cap": [{"DeleteRequest": {"Key": {"p": {"S": "a"}, "n": {"N": "2"}}}}]}}),
        )
        .await;
    assert_eq!(
        cc(&b),
        json!([{"TableName": "Cap", "CapacityUnits": 1.0}, {"TableName": "Cap2", "CapacityUnits": 3.0}])
    );
    let (_, b) = tc
        .call(
            leader,
            "BatchGetItem",
            json!({"ReturnConsumedCapacity": "TOTAL", "RequestItems": {
                "Cap2": {"Keys": [{"p": {"S": "q"}}, {"p": {"S": "r"}}, {"p": {"S": "none"}}]},
                "Cap": {"Keys": [{"p": {"S": "a"}, "n": {"N": "1"}}], "ConsistentRead": true}}}),
        )
        .await;
    assert_eq!(
        cc(&b),
        json!([{"TableName": "Cap", "CapacityUnits": 2.0}, {"TableName": "Cap2", "CapacityUnits": 1.5}])
    );
    // Transactions cost double; a replay under its token costs the reads.
    let tx = json!({"ReturnConsumedCapacity": "TOTAL", "ClientRequestToken": "cap-1", "TransactItems": [
        {"Put": {"TableName": "Cap2", "Item": {"p": {"S": "t"}}}},
        {"ConditionCheck": {"TableName": "Cap", "Key": {"p": {"S": "a"}, "n": {"N": "1"}}, "ConditionExpression": "attribute_exists(p)"}}]});
    let (s, b) = tc.call(leader, "TransactWriteItems", tx.clone()).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        cc(&b),
        json!([{"TableName": "Cap", "CapacityUnits": 10.0}, {"TableName": "Cap2", "CapacityUnits": 2.0}])
    );
    let (_, b) = tc.call(leader, "TransactWriteItems", tx).await;
    assert_eq!(
        cc(&b),
        json!([{"TableName": "Cap", "CapacityUnits": 2.0}, {"TableName": "Cap2", "CapacityUnits": 1.0}])
    );
    let (_, b) = tc
        .call(
            leader,
            "TransactGetItems",
            json!({"ReturnConsumedCapacity": "TOTAL", "TransactItems": [{"Get": {"TableName": "Cap2", "Key": {"p": {"S": "t"}}}}]}),
        )
        .await;
    assert_eq!(cc(&b), json!([{"TableName": "Cap2", "CapacityUnits": 2.0}]));
    // Not asked for: not reported; an unknown value is refused.
    let (_, b) = tc
        .call(
            leader,
            "GetItem",
            json!({"TableName": "Cap2", "Key": {"p": {"S": "t"}}}),
        )
        .await;
    assert!(b.get("ConsumedCapacity").is_none(), "{b}");
    let (s, b) = tc
        .call(
            leader,
            "PutItem",
            json!({"TableName": "Cap2", "Item": {"p": {"S": "t"}}, "ReturnConsumedCapacity": "ALL"}),
        )
        .await;
    assert_eq!((s, b["__type"].as_str()), (400, Some(V)), "{b}");
    tc.cluster.shutdown().await;
}
