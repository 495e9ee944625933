#!/usr/bin/env python3
"""End-to-end tests of kvsim through boto3, exactly as a DynamoDB application talks to it.

The script starts a real three-node kvsim cluster (`$KVSIM_BIN server --tick-ms 50`) on three
free consecutive loopback ports and a temporary data directory, waits until the nodes agree on a
Raft leader (polling `GET /status`), and drives every node through its own boto3 client. Each test
uses its own tables, so the tests are independent of each other and of their order. It checks:

* CreateTable through a follower; DescribeTable on every node once it has applied the log
  (status, key schema, attribute definitions, ARN, UUID table id, billing mode); CreateTable on an
  existing table -> ResourceInUseException.
* PutItem / GetItem / Query / Scan / DeleteItem rotated over all three nodes, with every attribute
  type (S, N, B, BOOL, NULL, L, M, SS, NS, BS), canonical numbers ("1.50" -> "1.5", "1e3" ->
  "1000", 38 significant digits kept exactly) and ReturnValues ALL_OLD on overwrite and delete.
* Query key conditions (=, <, <=, >, >=, BETWEEN, begins_with), ScanIndexForward=False,
  Select=COUNT, numeric and binary sort-key ordering, numerically equal keys being one key.
* Pagination: Query (Limit=7) and Scan (Limit=4) following LastEvaluatedKey across nodes, boto3's
  paginators for Query, Scan and ListTables, ListTables with Limit=2 / ExclusiveStartTableName.
* ConsistentRead GetItem through a follower right after a PutItem through it sees the new value.
* Errors with DynamoDB's codes and messages: missing table, missing or mistyped key attributes,
  items over 400 KB, Query without a partition-key condition, CreateTable without a billing mode.
* DeleteTable answers DELETING, then every node reports ResourceNotFoundException, and the name
  can be reused for a new, empty table.
* The AWS CLI (create-table, put-item, get-item, update-item --return-values ALL_NEW,
  batch-write-item, transact-write-items, query, and its errors) against a follower.
* Secondary indexes: an overloaded, sparse GSI kept up to date by puts, updates and deletes;
  KEYS_ONLY and INCLUDE projections; an LSI read with ConsistentRead; pagination and parallel
  scans over many equal index keys; mistyped index keys refused; CreateTable's index checks;
  a GSI lag set through /admin hides new writes from the global index (not from the table or
  a local index) on every node until it has passed; a GSI added by UpdateTable to a table of
  700 items is CREATING, fills while writes go on, and then answers what a scan says it should;
  a multi-attribute GSI key (two HASH, two RANGE attributes) queried left to right.
* UpdateItem (SET, REMOVE, ADD, ReturnValues) and conditional writes through every node,
  ConditionalCheckFailedException with the item, and version-number locking through boto3's
  document API (what ORMs do on save()); batch_writer and batch_get_item.

Run from the repository root (needs boto3, see tests/wire/requirements.txt):

    KVSIM_BIN=target/debug/kvsim python tests/wire/test_boto3.py          # or: make wire-test
    KVSIM_BIN=target/debug/kvsim python tests/wire/test_boto3.py -k query  # a subset

The exit code is 0 iff every test passed; the last line reads "boto3: N passed, N failed,
N skipped". If a test fails or the server does not start, the tail of the server's log (run with
RUST_LOG=info unless RUST_LOG is set) is printed.
"""

from __future__ import annotations

import atexit
import http.client
import itertools
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from prometheus_client.openmetrics.parser import text_string_to_metric_families

HOST = "127.0.0.1"
# KVSIM_MODE=dynamo runs the suite against `kvsim server --mode dynamo` (three nodes, every
# item on all three: N=3, R=2, W=2); tests of what that mode does not offer are skipped there
# (those that need a serialization point check the documented rejection instead).
MODE = os.environ.get("KVSIM_MODE", "raft")
TICK_MS = 50
STARTUP_TIMEOUT_S = 20.0  # until the three nodes agree on a leader
SYNC_TIMEOUT_S = 10.0  # until every node has applied what the leader committed
STOP_TIMEOUT_S = 15.0  # after SIGTERM, before SIGKILL
LOG_TAIL_LINES = 80
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MAX_ITEM_BYTES = 400 * 1024


# ---------------------------------------------------------------------------------------------
# Helpers: the binary, ports, polling, /status
# ---------------------------------------------------------------------------------------------


def find_binary() -> str:
    """The kvsim binary named by $KVSIM_BIN, as an absolute path; RuntimeError if unusable."""
    value = os.environ.get("KVSIM_BIN")
    if not value:
        raise RuntimeError(
            "KVSIM_BIN is not set: point it at a kvsim binary, "
            "e.g. KVSIM_BIN=target/debug/kvsim python tests/wire/test_boto3.py"
        )
    path = os.path.abspath(value)
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise RuntimeError(f"KVSIM_BIN={value!r}: no executable file at {path}")
    return path


def ports_free(base: int) -> bool:
    """Whether base, base+1 and base+2 can all be bound on HOST right now."""
    sockets = []
    try:
        for port in range(base, base + 3):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        for s in sockets:
            s.close()


def pick_base_port() -> int:
    """A base port P with P, P+1, P+2 free, chosen below Linux's ephemeral range (32768+)."""
    rng = random.SystemRandom()
    for _ in range(200):
        base = rng.randrange(20000, 32000)
        if ports_free(base):
            return base
    raise RuntimeError("found no three consecutive free ports in 20000-32000")


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll predicate() until it returns something truthy (returned) or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def get_status(port: int) -> dict | None:
    """GET /status of the node on port, or None if it does not answer (yet)."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/status", timeout=2) as resp:
            return json.load(resp)
    except (OSError, ValueError, http.client.HTTPException):
        return None


def make_client(port: int):
    """A boto3 DynamoDB client for the node on port (dummy credentials, bounded retries)."""
    session = boto3.session.Session()
    return session.client(
        "dynamodb",
        endpoint_url=f"http://{HOST}:{port}",
        region_name="us-east-1",
        aws_access_key_id="kvsim-test",
        aws_secret_access_key="kvsim-test",
        config=Config(
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=5,
            read_timeout=20,
        ),
    )


def canon(value: dict) -> dict:
    """An attribute value with its sets sorted, so that items compare with ==."""
    ((kind, inner),) = value.items()
    if kind in ("SS", "NS", "BS"):
        return {kind: sorted(inner)}
    if kind == "L":
        return {"L": [canon(v) for v in inner]}
    if kind == "M":
        return {"M": {k: canon(v) for k, v in inner.items()}}
    return {kind: inner}


def canon_item(item: dict) -> dict:
    return {name: canon(value) for name, value in item.items()}


# ---------------------------------------------------------------------------------------------
# The cluster under test
# ---------------------------------------------------------------------------------------------


class ServerExited(RuntimeError):
    pass


class Cluster:
    """One `kvsim server` process (three nodes) in a temporary directory."""

    def __init__(self, binary: str, mode: str | None = None):
        self.binary = binary
        self.mode = mode or MODE  # `raft` or `dynamo`
        self.workdir = tempfile.mkdtemp(prefix="kvsim-boto3-")
        self.log_path = os.path.join(self.workdir, "server.log")
        self.proc: subprocess.Popen | None = None
        self.ports: list[int] = []
        self.clients: list = []
        self.failed = False
        self._files: list = []

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, attempts: int = 3) -> None:
        """Start the server and wait for a leader; retries on a new port if the process dies."""
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("NO_COLOR", "1")  # plain text in the log file
        for attempt in range(1, attempts + 1):
            base = pick_base_port()
            self.ports = [base, base + 1, base + 2]
            data_dir = os.path.join(self.workdir, f"data{attempt}")
            out = open(os.path.join(self.workdir, "server.out"), "ab")
            err = open(self.log_path, "ab")
            err.write(f"=== test_boto3: attempt {attempt}, base port {base} ===\n".encode())
            err.flush()
            self._files += [out, err]
            args = [self.binary, "server", "--data-dir-root", data_dir,
                    "--base-port", str(base), "--tick-ms", str(TICK_MS),
                    "--ttl-interval-ms", "200"]
            if self.mode == "dynamo":
                args += ["--mode", "dynamo", "--nodes", "3", "--replicas", "3"]
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
            )
            try:
                wait_until(self._leader_agreed, STARTUP_TIMEOUT_S,
                           f"a leader all nodes agree on (ports {self.ports})", interval=0.1)
                break
            except ServerExited:
                if attempt == attempts:
                    raise
                # Most likely a port was taken between the check and the bind: try another.
        self.clients = [make_client(p) for p in self.ports]

    def stop(self) -> None:
        """SIGTERM the server, SIGKILL it if it has not exited after STOP_TIMEOUT_S."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print(f"test_boto3: server ignored SIGTERM for {STOP_TIMEOUT_S:g} s, killing it",
                      file=sys.stderr)
                proc.kill()
                proc.wait()
        for f in self._files:
            f.close()
        self._files = []

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def print_log_tail(self, why: str) -> None:
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            lines = []
        tail = lines[-LOG_TAIL_LINES:]
        sys.stderr.flush()
        print(f"---- {why}: last {len(tail)} lines of the server's stderr ----", file=sys.stderr)
        for line in tail:
            print(line, file=sys.stderr)
        print("---- end of server log ----", file=sys.stderr, flush=True)

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise ServerExited(f"the kvsim server is not running (exit code {code})")

    # -- Raft status ----------------------------------------------------------------------------

    def statuses(self) -> list[dict | None]:
        return [get_status(p) for p in self.ports]

    def _leader_agreed(self) -> list[dict] | None:
        """All three statuses if the nodes are up and agree on one leader in one term (in
        --mode dynamo, which has no leader: once every node runs)."""
        self.check_alive()
        statuses = self.statuses()
        if any(s is None for s in statuses):
            return None
        ids = [s["node_id"] for s in statuses]
        if ids != [1, 2, 3]:
            raise AssertionError(f"ports {self.ports} answer as nodes {ids}: not our server?")
        if self.mode == "dynamo":
            return statuses if all(s["running"] for s in statuses) else None
        leaders = [s for s in statuses if s["role"] == "leader"]
        if len(leaders) != 1:
            return None
        leader = leaders[0]
        if any(s["leader_id"] != leader["node_id"] or s["term"] != leader["term"]
               for s in statuses):
            return None
        return statuses

    def agreed_statuses(self) -> list[dict]:
        return wait_until(self._leader_agreed, STARTUP_TIMEOUT_S, "an agreed leader")

    def leader_port(self) -> int:
        if self.mode == "dynamo":
            return self.ports[0]  # no leader: any node coordinates
        statuses = self.agreed_statuses()
        return next(self.ports[i] for i, s in enumerate(statuses) if s["role"] == "leader")

    def follower_ports(self) -> list[int]:
        if self.mode == "dynamo":
            return self.ports[1:]
        statuses = self.agreed_statuses()
        return [self.ports[i] for i, s in enumerate(statuses) if s["role"] != "leader"]

    def sync(self) -> None:
        """Wait until every node has applied everything the leader had committed when called.
        (In --mode dynamo there is nothing to wait for: with R + W > N a read sees every
        acknowledged write.)"""
        if self.mode == "dynamo":
            return
        target = max(s["commit_index"] for s in self.agreed_statuses())

        def all_applied():
            self.check_alive()
            statuses = self.statuses()
            return all(s is not None and s["applied_index"] >= target for s in statuses)

        wait_until(all_applied, SYNC_TIMEOUT_S, f"every node to apply up to index {target}")

    def client(self, port: int):
        return self.clients[self.ports.index(port)]


CLUSTER: Cluster | None = None


def setUpModule():  # noqa: N802 (unittest's name)
    global CLUSTER
    cluster = Cluster(find_binary())
    atexit.register(cluster.cleanup)  # also on Ctrl+C or an unexpected exit
    try:
        cluster.start()
    except BaseException:
        cluster.print_log_tail("the server did not start")
        cluster.cleanup()
        raise
    CLUSTER = cluster


def tearDownModule():  # noqa: N802
    global CLUSTER
    cluster, CLUSTER = CLUSTER, None
    if cluster is None:
        return
    try:
        if cluster.failed:
            cluster.print_log_tail("a test failed")
    finally:
        cluster.cleanup()


# ---------------------------------------------------------------------------------------------
# Test base class
# ---------------------------------------------------------------------------------------------


def key_schema(pk: str, sk: str | None) -> list[dict]:
    schema = [{"AttributeName": pk, "KeyType": "HASH"}]
    if sk:
        schema.append({"AttributeName": sk, "KeyType": "RANGE"})
    return schema


class KvsimTestCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.assertIsNotNone(CLUSTER, "no cluster: setUpModule failed")
        self.cluster = CLUSTER
        self.ports = list(self.cluster.ports)
        # A unique table name per test: "t_" + the test method's name.
        self.table = "t_" + self.id().rsplit(".", 1)[-1]
        self._turn = itertools.count()

    def tearDown(self):
        self.cluster.check_alive()  # a crashed server fails the test that crashed it

    # -- clients --------------------------------------------------------------------------------

    def next_client(self):
        """The next node's client, round robin, so consecutive operations hit different nodes."""
        return self.cluster.clients[next(self._turn) % len(self.cluster.clients)]

    def all_clients(self):
        return list(zip(self.ports, self.cluster.clients))

    # -- tables ---------------------------------------------------------------------------------

    def create_table(self, name: str, pk=("pk", "S"), sk=("sk", "S"), client=None) -> dict:
        attrs = [{"AttributeName": pk[0], "AttributeType": pk[1]}]
        if sk:
            attrs.append({"AttributeName": sk[0], "AttributeType": sk[1]})
        resp = (client or self.next_client()).create_table(
            TableName=name,
            KeySchema=key_schema(pk[0], sk[0] if sk else None),
            AttributeDefinitions=attrs,
            BillingMode="PAY_PER_REQUEST",
        )
        self.assertEqual(resp["TableDescription"]["TableStatus"], "ACTIVE")
        return resp["TableDescription"]

    def events(self, kind: str) -> list[str]:
        """The details of every event of `kind` any node has recorded (`GET /events`)."""
        found = []
        for port in self.ports:
            with urllib.request.urlopen(f"http://{HOST}:{port}/events", timeout=5) as resp:
                found += [e["detail"] for e in json.load(resp)["events"] if e["kind"] == kind]
        return found

    # -- assertions -----------------------------------------------------------------------------

    def assertClientError(self, code: str, call, /, **kwargs) -> dict:  # noqa: N802
        """call(**kwargs) must raise ClientError with this code; returns the error dict."""
        with self.assertRaises(ClientError, msg=f"expected {code}") as ctx:
            call(**kwargs)
        error = ctx.exception.response["Error"]
        self.assertEqual(error["Code"], code, f"{error} from {call.__name__}({kwargs})")
        return error

    def assertCountSettles(self, client, extract, expected, msg=""):  # noqa: N802
        """extract(DescribeTable's Table) must be `expected`: at once in Raft mode (counted at
        apply); in --mode dynamo once the node's background count has caught up (it counts at
        most every 5 s, so its counts lag as DynamoDB's do)."""
        def now():
            return extract(client.describe_table(TableName=self.table)["Table"])
        if MODE != "dynamo":
            self.assertEqual(now(), expected, msg)
            return
        wait_until(lambda: now() == expected, 20.0, f"{msg}: a count of {expected}")

    def assertItemEqual(self, actual: dict, expected: dict, msg=None):  # noqa: N802
        self.assertEqual(canon_item(actual), canon_item(expected), msg)


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def full_item(pk: str, sk: str, tag: str) -> tuple[dict, dict]:
    """An item with every attribute type, and the item kvsim must return for it."""
    sent = {
        "pk": {"S": pk},
        "sk": {"S": sk},
        "str": {"S": f"h\u00e9llo {tag} \u2713"},
        "num_trailing_zeros": {"N": "1.50"},
        "num_exponent": {"N": "1e3"},
        "num_38_digits": {"N": "12345678901234567890123456789012345678"},
        "num_38_nines_negative": {"N": "-99999999999999999999999999999999999999"},
        "num_38_digit_fraction": {"N": "0.12345678901234567890123456789012345678"},
        "num_small_negative": {"N": "-0.000123400"},
        "bin": {"B": b"\x00\x01\xfe\xffbinary"},
        "yes": {"BOOL": True},
        "no": {"BOOL": False},
        "nothing": {"NULL": True},
        "list": {"L": [{"S": "a"}, {"N": "2.0"}, {"BOOL": False}, {"L": [{"NULL": True}]},
                       {"M": {"k": {"S": "v"}}}, {"B": b"\x07"}]},
        "map": {"M": {"name": {"S": tag}, "n": {"N": "3.140"},
                      "nested": {"M": {"deep": {"SS": ["y", "x"]}}}}},
        "ss": {"SS": ["b", "a", "c"]},
        "ns": {"NS": ["1.50", "10", "-3", "1e2"]},
        "bs": {"BS": [b"\xff\x01", b"\x00", b"abc"]},
    }
    expected = dict(sent)
    expected.update({
        "num_trailing_zeros": {"N": "1.5"},
        "num_exponent": {"N": "1000"},
        "num_small_negative": {"N": "-0.0001234"},
        "list": {"L": [{"S": "a"}, {"N": "2"}, {"BOOL": False}, {"L": [{"NULL": True}]},
                       {"M": {"k": {"S": "v"}}}, {"B": b"\x07"}]},
        "map": {"M": {"name": {"S": tag}, "n": {"N": "3.14"},
                      "nested": {"M": {"deep": {"SS": ["x", "y"]}}}}},
        "ns": {"NS": ["1.5", "10", "-3", "100"]},
    })
    return sent, expected


class TableLifecycleTest(KvsimTestCase):
    def check_description(self, desc: dict, where: str):
        name = self.table
        self.assertEqual(desc["TableName"], name, where)
        self.assertEqual(desc["TableStatus"], "ACTIVE", where)
        self.assertEqual(desc["KeySchema"], key_schema("pk", "sk"), where)
        self.assertEqual(
            sorted(desc["AttributeDefinitions"], key=lambda a: a["AttributeName"]),
            [{"AttributeName": "pk", "AttributeType": "S"},
             {"AttributeName": "sk", "AttributeType": "N"}],
            where,
        )
        self.assertIn(name, desc["TableArn"], where)
        self.assertTrue(desc["TableArn"].endswith(f":table/{name}"), desc["TableArn"])
        self.assertRegex(desc["TableId"], UUID_RE, where)
        self.assertEqual(desc["BillingModeSummary"]["BillingMode"], "PAY_PER_REQUEST", where)
        self.assertEqual(desc["ItemCount"], 0, where)

    def test_create_table_through_follower_and_describe_everywhere(self):
        follower = self.cluster.follower_ports()[0]
        request = dict(
            TableName=self.table,
            KeySchema=key_schema("pk", "sk"),
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "N"}],
            BillingMode="PAY_PER_REQUEST",
        )
        created = self.cluster.client(follower).create_table(**request)["TableDescription"]
        self.check_description(created, f"CreateTable via follower {follower}")

        self.cluster.sync()
        for port, client in self.all_clients():
            desc = client.describe_table(TableName=self.table)["Table"]
            self.check_description(desc, f"DescribeTable on {port}")
            self.assertEqual(desc["TableId"], created["TableId"], f"TableId on {port}")
            self.assertEqual(desc["TableArn"], created["TableArn"], f"TableArn on {port}")
            self.assertIn(self.table, client.list_tables()["TableNames"], f"ListTables on {port}")

        for port, client in self.all_clients():
            self.assertClientError("ResourceInUseException", client.create_table, **request)

    def test_delete_table(self):
        self.create_table(self.table)
        self.next_client().put_item(TableName=self.table,
                                    Item={"pk": {"S": "a"}, "sk": {"S": "b"}})
        self.cluster.sync()
        leader = self.cluster.leader_port()
        follower = self.cluster.follower_ports()[0]

        desc = self.cluster.client(follower).delete_table(TableName=self.table)
        desc = desc["TableDescription"]
        self.assertEqual(desc["TableStatus"], "DELETING")
        self.assertEqual(desc["TableName"], self.table)
        self.assertEqual(desc["KeySchema"], key_schema("pk", "sk"))

        if MODE == "dynamo":
            # The table stays DELETING for a while (as DynamoDB's do): the nodes cache table
            # descriptions, and its name cannot be reused until none can still hold it.
            still = self.cluster.client(leader).describe_table(TableName=self.table)
            self.assertEqual(still["Table"]["TableStatus"], "DELETING")
            self.assertClientError("ResourceInUseException", self.create_table, name=self.table)
            self.assertClientError("ResourceNotFoundException",
                                   self.cluster.client(follower).put_item, TableName=self.table,
                                   Item={"pk": {"S": "a"}, "sk": {"S": "c"}})
        else:
            # The leader applied the deletion before answering; the others follow shortly.
            self.assertClientError("ResourceNotFoundException",
                                   self.cluster.client(leader).describe_table,
                                   TableName=self.table)
        for port, client in self.all_clients():
            def gone(client=client):
                try:
                    client.describe_table(TableName=self.table)
                    return False
                except ClientError as e:
                    self.assertEqual(e.response["Error"]["Code"], "ResourceNotFoundException")
                    return True
            wait_until(gone, SYNC_TIMEOUT_S, f"node on port {port} to drop {self.table}")
            self.assertNotIn(self.table, client.list_tables()["TableNames"], f"port {port}")
            self.assertClientError("ResourceNotFoundException", client.get_item,
                                   TableName=self.table,
                                   Key={"pk": {"S": "a"}, "sk": {"S": "b"}})
        self.assertClientError("ResourceNotFoundException", self.next_client().delete_table,
                               TableName=self.table)

        # The name can be reused, for a new table with none of the old items.
        recreated = self.create_table(self.table)
        self.assertNotEqual(recreated["TableId"], desc["TableId"])
        self.cluster.sync()
        for port, client in self.all_clients():
            resp = client.scan(TableName=self.table)
            self.assertEqual((resp["Items"], resp["Count"]), ([], 0), f"Scan on {port}")


class ItemTest(KvsimTestCase):
    def test_item_types_round_trip_through_every_node(self):
        self.create_table(self.table)
        for i in range(len(self.ports)):
            # Start the rotation one node further each round, so that every operation below
            # is sent to every node once over the three rounds.
            self._turn = itertools.count(i)
            pk = f"part-{i}"
            key = {"pk": {"S": pk}, "sk": {"S": "item"}}
            first, first_expected = full_item(pk, "item", f"first-{i}")
            second = {**key, "only": {"S": f"second-{i}"}, "n": {"N": "-0"}}
            second_expected = {**key, "only": {"S": f"second-{i}"}, "n": {"N": "0"}}

            resp = self.next_client().put_item(TableName=self.table, Item=first,
                                               ReturnValues="ALL_OLD")
            self.assertNotIn("Attributes", resp, "ALL_OLD of a new item")
            self.cluster.sync()

            c = self.next_client()
            got = c.get_item(TableName=self.table, Key=key)
            self.assertItemEqual(got["Item"], first_expected, f"GetItem via {c.meta.endpoint_url}")
            c = self.next_client()
            got = c.get_item(TableName=self.table, Key=key, ConsistentRead=True)
            self.assertItemEqual(got["Item"], first_expected,
                                 f"ConsistentRead GetItem via {c.meta.endpoint_url}")

            c = self.next_client()
            resp = c.put_item(TableName=self.table, Item=second, ReturnValues="ALL_OLD")
            self.assertItemEqual(resp["Attributes"], first_expected,
                                 f"ALL_OLD of overwrite via {c.meta.endpoint_url}")
            resp = self.next_client().put_item(TableName=self.table, Item=second)
            self.assertNotIn("Attributes", resp, "ReturnValues NONE")
            self.cluster.sync()

            c = self.next_client()
            resp = c.query(TableName=self.table, KeyConditionExpression="pk = :p",
                           ExpressionAttributeValues={":p": {"S": pk}})
            self.assertEqual(resp["Items"], [second_expected], f"Query via {c.meta.endpoint_url}")
            self.assertEqual((resp["Count"], resp["ScannedCount"]), (1, 1))
            self.assertNotIn("LastEvaluatedKey", resp)

            c = self.next_client()
            resp = c.scan(TableName=self.table)  # earlier rounds deleted their items
            self.assertEqual(resp["Items"], [second_expected], f"Scan via {c.meta.endpoint_url}")
            self.assertEqual(resp["Count"], 1)

            c = self.next_client()
            resp = c.delete_item(TableName=self.table, Key=key, ReturnValues="ALL_OLD")
            self.assertEqual(resp["Attributes"], second_expected,
                             f"ALL_OLD of delete via {c.meta.endpoint_url}")
            self.cluster.sync()

            c = self.next_client()
            self.assertNotIn("Item", c.get_item(TableName=self.table, Key=key),
                             f"deleted item via {c.meta.endpoint_url}")
            resp = self.next_client().delete_item(TableName=self.table, Key=key,
                                                  ReturnValues="ALL_OLD")
            self.assertNotIn("Attributes", resp, "deleting a missing item")

    def test_consistent_read_through_follower(self):
        self.create_table(self.table, sk=None)  # a hash-only table
        key = {"pk": {"S": "counter"}}
        followers = self.cluster.follower_ports()
        self.assertEqual(len(followers), 2)
        for round_ in range(6):
            follower = followers[round_ % 2]
            client = self.cluster.client(follower)
            value = f"v{round_}-{uuid.uuid4()}"
            client.put_item(TableName=self.table, Item={**key, "v": {"S": value}})
            got = client.get_item(TableName=self.table, Key=key, ConsistentRead=True)
            self.assertEqual(got.get("Item"), {**key, "v": {"S": value}},
                             f"round {round_}, follower on port {follower}")


class QueryTest(KvsimTestCase):
    def query_sks(self, condition: str, values: dict, kind="S", **kwargs) -> list[str]:
        client = self.next_client()
        resp = client.query(TableName=self.table, KeyConditionExpression=condition,
                            ExpressionAttributeValues=values, **kwargs)
        self.assertEqual(resp["Count"], len(resp["Items"]))
        self.assertNotIn("LastEvaluatedKey", resp)
        return [item["sk"][kind] for item in resp["Items"]]

    def test_query_key_conditions(self):
        self.create_table(self.table)
        sks = ["a#1", "a#2", "a#3", "b#1", "b#2", "c"]
        for n, sk in enumerate(reversed(sks)):  # inserted out of order
            self.next_client().put_item(TableName=self.table, Item={
                "pk": {"S": "p1"}, "sk": {"S": sk}, "n": {"N": str(n)}})
        for sk in ["a#0", "a#9", "d"]:  # another partition, never returned below
            self.next_client().put_item(TableName=self.table, Item={
                "pk": {"S": "p2"}, "sk": {"S": sk}})
        self.cluster.sync()

        p = {":p": {"S": "p1"}}
        names = {"#p": "pk", "#s": "sk"}
        self.assertEqual(self.query_sks("pk = :p", p), sks)
        self.assertEqual(
            self.query_sks("#p = :p AND begins_with(#s, :v)", {**p, ":v": {"S": "a#"}},
                           ExpressionAttributeNames=names),
            ["a#1", "a#2", "a#3"])
        self.assertEqual(
            self.query_sks("#p = :p AND #s BETWEEN :lo AND :hi",
                           {**p, ":lo": {"S": "a#2"}, ":hi": {"S": "b#1"}},
                           ExpressionAttributeNames=names),
            ["a#2", "a#3", "b#1"])
        self.assertEqual(self.query_sks("pk = :p AND sk < :v", {**p, ":v": {"S": "b"}}),
                         ["a#1", "a#2", "a#3"])
        self.assertEqual(self.query_sks("pk = :p AND sk <= :v", {**p, ":v": {"S": "a#2"}}),
                         ["a#1", "a#2"])
        self.assertEqual(self.query_sks("pk = :p AND sk > :v", {**p, ":v": {"S": "b#1"}}),
                         ["b#2", "c"])
        self.assertEqual(self.query_sks("pk = :p AND sk >= :v", {**p, ":v": {"S": "b#2"}}),
                         ["b#2", "c"])
        self.assertEqual(self.query_sks("pk = :p AND sk = :v", {**p, ":v": {"S": "c"}}), ["c"])
        self.assertEqual(self.query_sks("pk = :p AND sk = :v", {**p, ":v": {"S": "zz"}}), [])
        # The sort-key condition may come first.
        self.assertEqual(self.query_sks("sk >= :v AND pk = :p", {**p, ":v": {"S": "b#2"}}),
                         ["b#2", "c"])

        # Descending order.
        self.assertEqual(self.query_sks("pk = :p", p, ScanIndexForward=False), sks[::-1])
        self.assertEqual(
            self.query_sks("pk = :p AND begins_with(sk, :v)", {**p, ":v": {"S": "b"}},
                           ScanIndexForward=False),
            ["b#2", "b#1"])

        # Whole items come back.
        resp = self.next_client().query(
            TableName=self.table, KeyConditionExpression="pk = :p AND sk = :v",
            ExpressionAttributeValues={**p, ":v": {"S": "a#2"}})
        self.assertEqual(resp["Items"], [{"pk": {"S": "p1"}, "sk": {"S": "a#2"}, "n": {"N": "4"}}])

        # Select COUNT: only the counts.
        for port, client in self.all_clients():
            resp = client.query(TableName=self.table, Select="COUNT",
                                KeyConditionExpression="pk = :p AND begins_with(sk, :v)",
                                ExpressionAttributeValues={**p, ":v": {"S": "a#"}})
            self.assertEqual((resp["Count"], resp["ScannedCount"]), (3, 3), f"port {port}")
            self.assertNotIn("Items", resp, f"port {port}")

    def test_query_numeric_sort_key_order(self):
        self.create_table(self.table, sk=("sk", "N"))
        for sk in ["2", "10", "1.5"]:
            self.next_client().put_item(TableName=self.table,
                                        Item={"pk": {"S": "three"}, "sk": {"N": sk}})
        for sk in ["100", "-3", "0.25", "2", "1e1", "1.50", "-0.5"]:
            self.next_client().put_item(TableName=self.table,
                                        Item={"pk": {"S": "more"}, "sk": {"N": sk}})
        # 10 and 1E1 are the same number, so the same key: the second put replaces the first.
        old = self.next_client().put_item(
            TableName=self.table, ReturnValues="ALL_OLD",
            Item={"pk": {"S": "more"}, "sk": {"N": "10.0"}, "v": {"S": "replaced"}})
        self.assertEqual(old["Attributes"], {"pk": {"S": "more"}, "sk": {"N": "10"}})
        self.cluster.sync()

        three = {":p": {"S": "three"}}
        more = {":p": {"S": "more"}}
        self.assertEqual(self.query_sks("pk = :p", three, kind="N"), ["1.5", "2", "10"])
        self.assertEqual(self.query_sks("pk = :p", three, kind="N", ScanIndexForward=False),
                         ["10", "2", "1.5"])
        all_more = ["-3", "-0.5", "0.25", "1.5", "2", "10", "100"]
        self.assertEqual(self.query_sks("pk = :p", more, kind="N"), all_more)
        self.assertEqual(self.query_sks("pk = :p AND sk > :v", {**more, ":v": {"N": "1.9"}},
                                        kind="N"), ["2", "10", "100"])
        self.assertEqual(self.query_sks("pk = :p AND sk < :v", {**more, ":v": {"N": "0"}},
                                        kind="N"), ["-3", "-0.5"])
        self.assertEqual(
            self.query_sks("pk = :p AND sk BETWEEN :lo AND :hi",
                           {**more, ":lo": {"N": "1.5"}, ":hi": {"N": "1e1"}}, kind="N"),
            ["1.5", "2", "10"])
        resp = self.next_client().get_item(TableName=self.table,
                                           Key={"pk": {"S": "more"}, "sk": {"N": "1E1"}})
        self.assertEqual(resp["Item"],
                         {"pk": {"S": "more"}, "sk": {"N": "10"}, "v": {"S": "replaced"}})

    def test_query_binary_sort_key_order(self):
        self.create_table(self.table, sk=("sk", "B"))
        values = [b"\xff", b"\x01", b"\x00\x01", b"\x01\x00", b"a"]
        for v in values:
            self.next_client().put_item(TableName=self.table,
                                        Item={"pk": {"S": "b"}, "sk": {"B": v}})
        self.cluster.sync()
        # Binary compares as unsigned bytes.
        self.assertEqual(self.query_sks("pk = :p", {":p": {"S": "b"}}, kind="B"),
                         [b"\x00\x01", b"\x01", b"\x01\x00", b"a", b"\xff"])
        self.assertEqual(
            self.query_sks("pk = :p AND begins_with(sk, :v)",
                           {":p": {"S": "b"}, ":v": {"B": b"\x01"}}, kind="B"),
            [b"\x01", b"\x01\x00"])


class PaginationTest(KvsimTestCase):
    def test_query_and_scan_pagination(self):
        self.create_table(self.table, sk=("sk", "N"))
        one = list(range(25))
        random.Random(7).shuffle(one)
        for n in one:  # 25 items in one partition, written in random order
            self.next_client().put_item(TableName=self.table, Item={
                "pk": {"S": "one"}, "sk": {"N": str(n)}, "payload": {"S": f"one-{n}"}})
        for n in range(25):  # 25 items in 25 partitions
            self.next_client().put_item(TableName=self.table, Item={
                "pk": {"S": f"p{n:02}"}, "sk": {"N": "0"}})
        self.cluster.sync()
        everything = {("one", str(n)) for n in range(25)} | {(f"p{n:02}", "0") for n in range(25)}

        # Query, Limit=7, each page from the next node.
        for forward in (True, False):
            sks, sizes, start = [], [], None
            for _ in range(10):
                kwargs = {"ExclusiveStartKey": start} if start else {}
                resp = self.next_client().query(
                    TableName=self.table, KeyConditionExpression="pk = :p",
                    ExpressionAttributeValues={":p": {"S": "one"}}, Limit=7,
                    ScanIndexForward=forward, **kwargs)
                sizes.append(resp["Count"])
                sks += [int(item["sk"]["N"]) for item in resp["Items"]]
                start = resp.get("LastEvaluatedKey")
                if start is None:
                    break
                self.assertEqual(start, {"pk": {"S": "one"}, "sk": resp["Items"][-1]["sk"]})
            expected = list(range(25)) if forward else list(range(24, -1, -1))
            self.assertEqual(sks, expected, f"ScanIndexForward={forward}")
            self.assertEqual(sizes, [7, 7, 7, 4], f"page sizes, ScanIndexForward={forward}")

        # Scan, Limit=4, each page from the next node.
        seen, sizes, start = [], [], None
        for _ in range(30):
            kwargs = {"ExclusiveStartKey": start} if start else {}
            resp = self.next_client().scan(TableName=self.table, Limit=4, **kwargs)
            sizes.append(resp["Count"])
            seen += [(item["pk"]["S"], item["sk"]["N"]) for item in resp["Items"]]
            start = resp.get("LastEvaluatedKey")
            if start is None:
                break
            last = resp["Items"][-1]
            self.assertEqual(start, {"pk": last["pk"], "sk": last["sk"]})
        self.assertEqual(len(seen), len(set(seen)), f"duplicates in {seen}")
        self.assertEqual(set(seen), everything)
        self.assertEqual(sizes, [4] * 12 + [2])

        # boto3's paginators.
        pages = list(self.next_client().get_paginator("scan").paginate(
            TableName=self.table, PaginationConfig={"PageSize": 6}))
        seen = [(i["pk"]["S"], i["sk"]["N"]) for page in pages for i in page["Items"]]
        self.assertEqual(len(seen), 50)
        self.assertEqual(set(seen), everything)
        self.assertEqual([p["Count"] for p in pages], [6] * 8 + [2])

        pages = list(self.next_client().get_paginator("query").paginate(
            TableName=self.table, KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "one"}}, PaginationConfig={"PageSize": 10}))
        self.assertEqual([int(i["sk"]["N"]) for p in pages for i in p["Items"]], list(range(25)))
        self.assertEqual([p["Count"] for p in pages], [10, 10, 5])

    def test_list_tables_pagination(self):
        names = [f"{self.table}-{i}" for i in range(5)]
        for name in reversed(names):
            self.create_table(name)
        self.cluster.sync()

        full = None
        for port, client in self.all_clients():
            listed = client.list_tables()["TableNames"]
            self.assertEqual(listed, sorted(listed), f"ListTables order on {port}")
            self.assertEqual(len(listed), len(set(listed)))
            if full is None:
                full = listed
            self.assertEqual(listed, full, f"ListTables on {port}")
        self.assertEqual([n for n in full if n.startswith(self.table + "-")], names)

        # By hand, Limit=2, each page from the next node.
        collected, start = [], None
        for _ in range(len(full) + 2):
            kwargs = {"ExclusiveStartTableName": start} if start else {}
            resp = self.next_client().list_tables(Limit=2, **kwargs)
            self.assertLessEqual(len(resp["TableNames"]), 2)
            collected += resp["TableNames"]
            start = resp.get("LastEvaluatedTableName")
            if start is None:
                break
            self.assertEqual(start, resp["TableNames"][-1])
        self.assertEqual(collected, full)

        resp = self.next_client().list_tables(Limit=2, ExclusiveStartTableName=names[1])
        self.assertEqual(resp["TableNames"], names[2:4])
        self.assertEqual(resp["LastEvaluatedTableName"], names[3])

        pages = list(self.next_client().get_paginator("list_tables").paginate(
            PaginationConfig={"PageSize": 2}))
        self.assertTrue(all(len(p["TableNames"]) <= 2 for p in pages))
        self.assertEqual([n for p in pages for n in p["TableNames"]], full)


def make_table_resource(port: int, name: str):
    """boto3's document API (Python values, not DynamoDB JSON) for one table on one node."""
    session = boto3.session.Session()
    resource = session.resource(
        "dynamodb",
        endpoint_url=f"http://{HOST}:{port}",
        region_name="us-east-1",
        aws_access_key_id="kvsim-test",
        aws_secret_access_key="kvsim-test",
    )
    return resource.Table(name)


class WriteTest(KvsimTestCase):
    """UpdateItem and conditional writes, as application code and ORMs use them."""

    def test_update_item_and_conditions_through_every_node(self):
        self.create_table(self.table, sk=None)
        key = {"pk": {"S": "doc"}}
        # UpdateItem creates a missing item; ALL_NEW shows it.
        resp = self.next_client().update_item(
            TableName=self.table, Key=key,
            UpdateExpression="SET #c = :zero, tags = :tags",
            ExpressionAttributeNames={"#c": "count"},
            ExpressionAttributeValues={":zero": {"N": "0"}, ":tags": {"SS": ["a"]}},
            ReturnValues="ALL_NEW")
        self.assertItemEqual(resp["Attributes"],
                             {**key, "count": {"N": "0"}, "tags": {"SS": ["a"]}})
        # Increments through every node add up.
        for _ in range(6):
            self.next_client().update_item(
                TableName=self.table, Key=key, UpdateExpression="ADD #c :one, tags :t",
                ExpressionAttributeNames={"#c": "count"},
                ExpressionAttributeValues={":one": {"N": "1"}, ":t": {"SS": ["b"]}})
        got = self.next_client().get_item(TableName=self.table, Key=key, ConsistentRead=True)
        self.assertItemEqual(got["Item"], {**key, "count": {"N": "6"}, "tags": {"SS": ["a", "b"]}})
        # A failed condition: ConditionalCheckFailedException, with the item when asked.
        for c in self.cluster.clients:
            with self.assertRaises(ClientError) as ctx:
                c.put_item(TableName=self.table, Item={**key, "x": {"S": "no"}},
                           ConditionExpression="attribute_not_exists(pk)",
                           ReturnValuesOnConditionCheckFailure="ALL_OLD")
            error = ctx.exception.response["Error"]
            self.assertEqual(error["Code"], "ConditionalCheckFailedException")
            self.assertEqual(error["Message"], "The conditional request failed")
            self.assertItemEqual(ctx.exception.response["Item"],
                                 {**key, "count": {"N": "6"}, "tags": {"SS": ["a", "b"]}})
        # UPDATED_OLD, then a key attribute refused with DynamoDB's message.
        resp = self.next_client().update_item(
            TableName=self.table, Key=key, UpdateExpression="REMOVE tags SET #c = #c - :one",
            ExpressionAttributeNames={"#c": "count"}, ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_OLD")
        self.assertItemEqual(resp["Attributes"], {"count": {"N": "6"}, "tags": {"SS": ["a", "b"]}})
        error = self.assertClientError(
            "ValidationException", self.next_client().update_item, TableName=self.table, Key=key,
            UpdateExpression="SET pk = :v", ExpressionAttributeValues={":v": {"S": "x"}})
        self.assertEqual(error["Message"], "One or more parameter values were invalid: Cannot "
                         "update attribute pk. This attribute is part of the key")

    def test_version_attribute_locking_with_the_document_api(self):
        """What ORMs such as pynamodb do on save(): a conditional write on a version number."""
        self.create_table(self.table, sk=None)
        tables = [make_table_resource(p, self.table) for p in self.ports]

        def save(table, version: int, body: str):
            if version == 0:
                condition, values = "attribute_not_exists(version)", {}
            else:
                condition, values = "version = :expected", {":expected": version}
            table.update_item(
                Key={"pk": "user-1"},
                UpdateExpression="SET body = :body, version = :next",
                ConditionExpression=condition,
                ExpressionAttributeValues={":body": body, ":next": version + 1, **values})

        save(tables[0], 0, "first")
        save(tables[1], 1, "second")
        # A writer holding a stale version loses, on any node.
        for table in tables:
            with self.assertRaises(ClientError) as ctx:
                save(table, 1, "stale")
            self.assertEqual(ctx.exception.response["Error"]["Code"],
                             "ConditionalCheckFailedException")
        item = tables[2].get_item(Key={"pk": "user-1"}, ConsistentRead=True)["Item"]
        self.assertEqual(item, {"pk": "user-1", "body": "second", "version": 2})
        # The document API's list_append and if_not_exists.
        tables[1].update_item(
            Key={"pk": "user-1"},
            UpdateExpression="SET history = list_append(if_not_exists(history, :empty), :h)",
            ExpressionAttributeValues={":empty": [], ":h": ["second"]})
        item = tables[0].get_item(Key={"pk": "user-1"}, ConsistentRead=True)["Item"]
        self.assertEqual(item["history"], ["second"])


class BatchTest(KvsimTestCase):
    def test_batch_writer_and_batch_get(self):
        """What test fixtures do: load data with batch_writer, read it back with batch_get_item."""
        self.create_table(self.table, sk=None)
        table = make_table_resource(self.ports[1], self.table)
        with table.batch_writer() as writer:  # flushes every 25 items
            for i in range(60):
                writer.put_item(Item={"pk": f"item-{i}", "n": i, "tags": {"a", "b"}})
            writer.delete_item(Key={"pk": "item-0"})  # in an earlier flush than its put
        keys = [{"pk": {"S": f"item-{i}"}} for i in range(0, 60, 3)]
        resp = self.next_client().batch_get_item(RequestItems={
            self.table: {"Keys": keys, "ConsistentRead": True, "ProjectionExpression": "n"}})
        self.assertEqual(resp["UnprocessedKeys"], {})
        got = sorted(int(item["n"]["N"]) for item in resp["Responses"][self.table])
        self.assertEqual(got, [i for i in range(3, 60, 3)])
        count = self.next_client().scan(TableName=self.table, Select="COUNT",
                                        ConsistentRead=True)["Count"]
        self.assertEqual(count, 59)
        error = self.assertClientError(
            "ValidationException", self.next_client().batch_write_item,
            RequestItems={self.table: [{"PutRequest": {"Item": {"pk": {"S": "same"}}}}] * 2})
        self.assertEqual(error["Message"], "Provided list of item keys contains duplicates")


class ErrorTest(KvsimTestCase):
    def test_errors(self):
        self.create_table(self.table, pk=("user_id", "S"), sk=("order_no", "N"))
        self.cluster.sync()
        missing = f"{self.table}-missing"
        key = {"user_id": {"S": "u1"}, "order_no": {"N": "1"}}

        for port, client in self.all_clients():
            self.assertClientError("ResourceNotFoundException", client.get_item,
                                   TableName=missing, Key=key)
        self.assertClientError("ResourceNotFoundException", self.next_client().put_item,
                               TableName=missing, Item=key)
        self.assertClientError("ResourceNotFoundException", self.next_client().describe_table,
                               TableName=missing)
        self.assertClientError("ResourceNotFoundException", self.next_client().query,
                               TableName=missing, KeyConditionExpression="user_id = :u",
                               ExpressionAttributeValues={":u": {"S": "u1"}})
        self.assertClientError("ResourceNotFoundException", self.next_client().scan,
                               TableName=missing)
        self.assertClientError("ResourceNotFoundException", self.next_client().delete_item,
                               TableName=missing, Key=key)

        # Missing key attributes: the message names the missing one.
        err = self.assertClientError("ValidationException", self.next_client().put_item,
                                     TableName=self.table, Item={"user_id": {"S": "u1"}})
        self.assertIn("order_no", err["Message"])
        err = self.assertClientError("ValidationException", self.next_client().put_item,
                                     TableName=self.table, Item={"order_no": {"N": "1"}})
        self.assertIn("user_id", err["Message"])
        self.assertClientError("ValidationException", self.next_client().get_item,
                               TableName=self.table, Key={"user_id": {"S": "u1"}})

        # Key attributes of the wrong type.
        err = self.assertClientError("ValidationException", self.next_client().put_item,
                                     TableName=self.table,
                                     Item={"user_id": {"S": "u1"}, "order_no": {"S": "1"}})
        self.assertIn("order_no", err["Message"])
        self.assertClientError("ValidationException", self.next_client().get_item,
                               TableName=self.table,
                               Key={"user_id": {"N": "1"}, "order_no": {"N": "1"}})

        # Items over 400 KB are refused and not stored; one well under the limit is fine.
        big = {**key, "blob": {"S": "x" * (MAX_ITEM_BYTES + 1)}}
        err = self.assertClientError("ValidationException", self.next_client().put_item,
                                     TableName=self.table, Item=big)
        self.assertEqual(err["Message"], "Item size has exceeded the maximum allowed size")
        got = self.next_client().get_item(TableName=self.table, Key=key, ConsistentRead=True)
        self.assertNotIn("Item", got)
        fits = {**key, "blob": {"S": "y" * 300_000}}
        self.next_client().put_item(TableName=self.table, Item=fits)
        got = self.next_client().get_item(TableName=self.table, Key=key, ConsistentRead=True)
        self.assertEqual(got["Item"], fits)

        # Query needs an equality condition on the partition key.
        err = self.assertClientError("ValidationException", self.next_client().query,
                                     TableName=self.table, KeyConditionExpression="order_no = :o",
                                     ExpressionAttributeValues={":o": {"N": "1"}})
        self.assertEqual(err["Message"], "Query condition missed key schema element: user_id")
        self.assertClientError("ValidationException", self.next_client().query,
                               TableName=self.table,
                               KeyConditionExpression="user_id > :u",
                               ExpressionAttributeValues={":u": {"S": "u1"}})

        # CreateTable needs a billing mode or provisioned throughput.
        self.assertClientError(
            "ValidationException", self.next_client().create_table,
            TableName=f"{self.table}-nobilling",
            KeySchema=key_schema("pk", None),
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        self.assertClientError("ResourceNotFoundException", self.next_client().describe_table,
                               TableName=f"{self.table}-nobilling")


def aws_cli() -> str:
    """The AWS CLI installed next to this interpreter (the venv's `aws`)."""
    path = os.path.join(os.path.dirname(sys.executable), "aws")
    if not os.path.exists(path):
        raise RuntimeError(f"the AWS CLI is not installed at {path} (tests/wire/requirements.txt)")
    return path


class AwsCliTest(KvsimTestCase):
    """The AWS CLI (awscli from PyPI) against a follower, asserting on its JSON output."""

    def aws(self, port: int, *args: str, expect_error: str | None = None,
            service: str = "dynamodb") -> dict:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "AWS_ACCESS_KEY_ID": "kvsim-test",
            "AWS_SECRET_ACCESS_KEY": "kvsim-test",
            "AWS_DEFAULT_REGION": "us-east-1",
            # Ignore whatever configuration the machine has.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_MAX_ATTEMPTS": "5",
        }
        cmd = [aws_cli(), service, *args, "--endpoint-url", f"http://{HOST}:{port}",
               "--output", "json"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        if expect_error is not None:
            self.assertNotEqual(proc.returncode, 0, f"{args}: {proc.stdout}")
            self.assertIn(expect_error, proc.stderr, f"{args}")
            return {}
        self.assertEqual(proc.returncode, 0, f"aws {' '.join(args)}: {proc.stderr}")
        return json.loads(proc.stdout) if proc.stdout.strip() else {}

    def test_the_aws_cli_round_trip(self):
        port = self.cluster.follower_ports()[0]
        t = self.table
        created = self.aws(
            port, "create-table", "--table-name", t,
            "--attribute-definitions", "AttributeName=pk,AttributeType=S",
            "AttributeName=sk,AttributeType=N",
            "--key-schema", "AttributeName=pk,KeyType=HASH", "AttributeName=sk,KeyType=RANGE",
            "--billing-mode", "PAY_PER_REQUEST")
        self.assertEqual(created["TableDescription"]["TableStatus"], "ACTIVE")
        self.aws(port, "put-item", "--table-name", t, "--item",
                 json.dumps({"pk": {"S": "u1"}, "sk": {"N": "1"}, "n": {"N": "10"}}))
        got = self.aws(port, "get-item", "--table-name", t, "--consistent-read", "--key",
                       json.dumps({"pk": {"S": "u1"}, "sk": {"N": "1"}}))
        self.assertEqual(got["Item"]["n"], {"N": "10"})
        updated = self.aws(
            port, "update-item", "--table-name", t,
            "--key", json.dumps({"pk": {"S": "u1"}, "sk": {"N": "1"}}),
            "--update-expression", "SET n = n + :d, tags = :t",
            "--expression-attribute-values", json.dumps({":d": {"N": "5"}, ":t": {"SS": ["x"]}}),
            "--return-values", "ALL_NEW")
        self.assertEqual(updated["Attributes"],
                         {"pk": {"S": "u1"}, "sk": {"N": "1"}, "n": {"N": "15"},
                          "tags": {"SS": ["x"]}})
        written = self.aws(port, "batch-write-item", "--request-items", json.dumps({t: [
            {"PutRequest": {"Item": {"pk": {"S": "u1"}, "sk": {"N": str(i)}}}}
            for i in range(2, 6)]}), "--return-consumed-capacity", "TOTAL")
        self.assertEqual(written["UnprocessedItems"], {})
        self.assertEqual(written["ConsumedCapacity"], [{"TableName": t, "CapacityUnits": 4.0}])
        update = {"TableName": t, "Key": {"pk": {"S": "u1"}, "sk": {"N": "1"}},
                  "UpdateExpression": "SET n = n - :one",
                  "ConditionExpression": "n > :zero",
                  "ExpressionAttributeValues": {":one": {"N": "1"}, ":zero": {"N": "0"}}}
        delete = {"TableName": t, "Key": {"pk": {"S": "u1"}, "sk": {"N": "5"}}}
        transact = json.dumps([{"Update": update}, {"Delete": delete}])
        if MODE == "dynamo":
            # No serialization point: transactions are refused, naming the mode that has one.
            self.aws(port, "transact-write-items", "--transact-items", transact,
                     expect_error="--mode raft")
            self.aws(port, "update-item", "--table-name", t, "--key", json.dumps(update["Key"]),
                     "--update-expression", update["UpdateExpression"],
                     "--condition-expression", update["ConditionExpression"],
                     "--expression-attribute-values",
                     json.dumps(update["ExpressionAttributeValues"]))
            self.aws(port, "delete-item", "--table-name", t, "--key", json.dumps(delete["Key"]))
        else:
            self.aws(port, "transact-write-items", "--transact-items", transact)
        page = self.aws(port, "query", "--table-name", t, "--consistent-read",
                        "--key-condition-expression", "pk = :p AND sk BETWEEN :a AND :b",
                        "--expression-attribute-values",
                        json.dumps({":p": {"S": "u1"}, ":a": {"N": "1"}, ":b": {"N": "9"}}),
                        "--projection-expression", "sk, n")
        self.assertEqual(page["Count"], 4)
        self.assertEqual([i["sk"]["N"] for i in page["Items"]], ["1", "2", "3", "4"])
        self.assertEqual(page["Items"][0]["n"], {"N": "14"})
        # A failed condition is the CLI's error, naming DynamoDB's exception.
        self.aws(port, "put-item", "--table-name", t,
                 "--item", json.dumps({"pk": {"S": "u1"}, "sk": {"N": "1"}}),
                 "--condition-expression", "attribute_not_exists(pk)",
                 expect_error="ConditionalCheckFailedException")
        self.aws(port, "describe-table", "--table-name", f"{t}-missing",
                 expect_error="ResourceNotFoundException")
        # Time to live, through a follower (forwarded to the leader; in --mode dynamo, any node).
        spec = self.aws(port, "update-time-to-live", "--table-name", t,
                        "--time-to-live-specification", "Enabled=true,AttributeName=exp")
        self.assertEqual(spec["TimeToLiveSpecification"],
                         {"Enabled": True, "AttributeName": "exp"})
        self.cluster.sync()  # the follower answers describe-time-to-live from its own state
        described = self.aws(port, "describe-time-to-live", "--table-name", t)
        self.assertEqual(described["TimeToLiveDescription"],
                         {"TimeToLiveStatus": "ENABLED", "AttributeName": "exp"})
        self.aws(port, "update-time-to-live", "--table-name", t,
                 "--time-to-live-specification", "Enabled=true,AttributeName=exp",
                 expect_error="TimeToLive is already enabled")

    def test_the_aws_cli_reads_a_stream(self):
        port = self.cluster.follower_ports()[0]
        t = self.table
        created = self.aws(
            port, "create-table", "--table-name", t,
            "--attribute-definitions", "AttributeName=pk,AttributeType=S",
            "--key-schema", "AttributeName=pk,KeyType=HASH", "--billing-mode", "PAY_PER_REQUEST",
            "--stream-specification", "StreamEnabled=true,StreamViewType=NEW_IMAGE")
        arn = created["TableDescription"]["LatestStreamArn"]
        for v in ["1", "2"]:
            self.aws(port, "put-item", "--table-name", t,
                     "--item", json.dumps({"pk": {"S": "a"}, "v": {"N": v}}))
        self.cluster.sync()  # the follower answers the stream reads from its own state
        listed = self.aws(port, "list-streams", "--table-name", t, service="dynamodbstreams")
        self.assertEqual([s["StreamArn"] for s in listed["Streams"]], [arn])
        shards = self.aws(port, "describe-stream", "--stream-arn", arn,
                          service="dynamodbstreams")["StreamDescription"]["Shards"]
        # One shard in Raft mode; one per node in --mode dynamo, where the key's primary
        # records the change once the write reaches it (W of N acknowledged it before).

        def read():
            records = []
            for shard in shards:
                it = self.aws(port, "get-shard-iterator", "--stream-arn", arn,
                              "--shard-id", shard["ShardId"], "--shard-iterator-type",
                              "TRIM_HORIZON", service="dynamodbstreams")["ShardIterator"]
                records += self.aws(port, "get-records", "--shard-iterator", it,
                                    service="dynamodbstreams")["Records"]
            return records if len(records) >= 2 else None

        records = wait_until(read, SYNC_TIMEOUT_S, "both records")
        self.assertEqual([(r["eventName"], r["dynamodb"]["NewImage"]["v"]["N"]) for r in records],
                         [("INSERT", "1"), ("MODIFY", "2")])


class TableSettingsTest(KvsimTestCase):
    """Tags and point-in-time recovery: table settings kept by the cluster (the log in Raft
    mode, the table's catalog entry in --mode dynamo), set through one node, read at every
    node, gone with the table."""

    def test_tags_and_point_in_time_recovery(self):
        desc = self.create_table(self.table, sk=None)
        arn = desc["TableArn"]
        self.next_client().tag_resource(ResourceArn=arn, Tags=[
            {"Key": "team", "Value": "a"}, {"Key": "env", "Value": "test"}])
        self.next_client().untag_resource(ResourceArn=arn, TagKeys=["env"])
        self.cluster.sync()
        for port, client in self.all_clients():
            tags = client.list_tags_of_resource(ResourceArn=arn)["Tags"]
            self.assertEqual(tags, [{"Key": "team", "Value": "a"}], f"node {port}")
        described = self.next_client().describe_continuous_backups(TableName=self.table)
        self.assertEqual(described["ContinuousBackupsDescription"][
            "PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"], "DISABLED")
        updated = self.next_client().update_continuous_backups(
            TableName=self.table,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
        self.assertEqual(updated["ContinuousBackupsDescription"][
            "PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"], "ENABLED")
        self.cluster.sync()
        for port, client in self.all_clients():
            described = client.describe_continuous_backups(TableName=self.table)
            self.assertEqual(described["ContinuousBackupsDescription"][
                "PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"], "ENABLED",
                f"node {port}")
        self.assertClientError("ResourceNotFoundException",
                               self.next_client().list_tags_of_resource,
                               ResourceArn=arn.replace(self.table, f"{self.table}-missing"))


@unittest.skipIf(MODE != "dynamo", "the rejections of --mode dynamo")
class LeaderlessModeTest(KvsimTestCase):
    """What --mode dynamo refuses, and how it says so."""

    def test_what_needs_a_serialization_point_is_refused_naming_raft(self):
        self.create_table(self.table)
        client = self.next_client()
        key = {"pk": {"S": "a"}, "sk": {"S": "1"}}
        calls = [
            (client.transact_write_items,
             {"TransactItems": [{"Put": {"TableName": self.table, "Item": key}}]}),
            (client.transact_get_items,
             {"TransactItems": [{"Get": {"TableName": self.table, "Key": key}}]}),
            (client.execute_transaction,
             {"TransactStatements": [{"Statement": f'SELECT * FROM "{self.table}"'}]}),
        ]
        for call, kwargs in calls:
            with self.subTest(call.__name__):
                error = self.assertClientError("ValidationException", call, **kwargs)
                self.assertIn("--mode raft", error["Message"])
        # Nothing was written.
        self.assertNotIn("Item", client.get_item(TableName=self.table, Key=key))

    def test_account_questions_are_answered_by_the_node_asked(self):
        port = self.ports[2]
        endpoints = make_client(port).describe_endpoints()["Endpoints"]
        self.assertEqual([e["Address"] for e in endpoints], [f"{HOST}:{port}"])
        limits = make_client(port).describe_limits()
        self.assertEqual(limits["TableMaxWriteCapacityUnits"], 40000)

    def test_metrics_count_the_requests_each_node_coordinated(self):
        self.create_table(self.table, sk=None)
        port = self.ports[1]
        ok_puts = ("kvsim_requests_total",
                   frozenset({("operation", "PutItem"), ("outcome", "ok")}))
        before = scrape(port)
        for i in range(5):
            make_client(port).put_item(TableName=self.table, Item={"pk": {"S": f"k{i}"}})
        after = scrape(port)
        self.assertEqual(after[ok_puts] - before.get(ok_puts, 0), 5)
        self.assertEqual(after[("kvsim_node_up", frozenset())], 1)
        self.assertEqual(after[("kvsim_dynamo_suspected_peers", frozenset())], 0)
        self.assertEqual(after[("kvsim_dynamo_hints", frozenset())], 0)


# ---------------------------------------------------------------------------------------------
# Runner
# ---------------------------------------------------------------------------------------------


class IndexTest(KvsimTestCase):
    """Secondary indexes: GSIs and LSIs created with the table, kept up to date by every write,
    read by Query and Scan with IndexName."""

    def create_indexed(self, gsis=(), lsis=(), extra_attrs=()) -> dict:
        attrs = [{"AttributeName": "pk", "AttributeType": "S"},
                 {"AttributeName": "sk", "AttributeType": "S"}]
        attrs += [{"AttributeName": n, "AttributeType": t} for n, t in extra_attrs]
        kwargs = {}
        if gsis:
            kwargs["GlobalSecondaryIndexes"] = list(gsis)
        if lsis:
            kwargs["LocalSecondaryIndexes"] = list(lsis)
        resp = self.next_client().create_table(
            TableName=self.table, KeySchema=key_schema("pk", "sk"), AttributeDefinitions=attrs,
            BillingMode="PAY_PER_REQUEST", **kwargs)
        return resp["TableDescription"]

    def create_partly_projected(self) -> dict:
        """Global indexes `keys` (KEYS_ONLY on status) and `incl` (status, at; INCLUDE title),
        and local index `byAt` (pk, at; KEYS_ONLY)."""
        return self.create_indexed(
            gsis=[self.index("keys", "status", None, {"ProjectionType": "KEYS_ONLY"}),
                  self.index("incl", "status", "at", {"ProjectionType": "INCLUDE",
                                                      "NonKeyAttributes": ["title"]})],
            lsis=[self.index("byAt", "pk", "at", {"ProjectionType": "KEYS_ONLY"})],
            extra_attrs=[("status", "S"), ("at", "N")])

    @staticmethod
    def index(name, pk, sk=None, projection=None):
        return {"IndexName": name, "KeySchema": key_schema(pk, sk),
                "Projection": projection or {"ProjectionType": "ALL"}}

    def query_index(self, index, condition, values, client=None, **kwargs) -> list[dict]:
        """Every item of the index query, following LastEvaluatedKey."""
        client = client or self.next_client()
        items, start = [], None
        for _ in range(1000):
            page = client.query(TableName=self.table, IndexName=index,
                                KeyConditionExpression=condition,
                                ExpressionAttributeValues=values,
                                **({"ExclusiveStartKey": start} if start else {}), **kwargs)
            items += page["Items"]
            start = page.get("LastEvaluatedKey")
            if not start:
                return items
        self.fail("pagination did not end")

    def test_an_overloaded_gsi_answers_single_table_access_patterns(self):
        desc = self.create_indexed(
            gsis=[self.index("gsi1", "gsi1pk", "gsi1sk")],
            extra_attrs=[("gsi1pk", "S"), ("gsi1sk", "S")])
        [gsi] = desc["GlobalSecondaryIndexes"]
        self.assertEqual(gsi["IndexName"], "gsi1")
        self.assertEqual(gsi["IndexStatus"], "ACTIVE")
        self.assertEqual(gsi["Projection"], {"ProjectionType": "ALL"})
        self.assertEqual(gsi["IndexArn"], desc["TableArn"] + "/index/gsi1")
        # Customers and orders in one table; the GSI groups orders by status, and customers by
        # email, in one overloaded index. The profile row has no GSI key: a sparse index.
        rows = [
            {"pk": "CUST#1", "sk": "PROFILE", "name": "Ada"},
            {"pk": "CUST#1", "sk": "ORDER#3", "gsi1pk": "STATUS#open", "gsi1sk": "2026-03"},
            {"pk": "CUST#2", "sk": "ORDER#1", "gsi1pk": "STATUS#open", "gsi1sk": "2026-01"},
            {"pk": "CUST#1", "sk": "ORDER#2", "gsi1pk": "STATUS#shipped", "gsi1sk": "2026-02"},
            {"pk": "CUST#2", "sk": "EMAIL", "gsi1pk": "EMAIL#b@x", "gsi1sk": "CUST#2"},
        ]
        for row in rows:
            self.next_client().put_item(
                TableName=self.table, Item={k: {"S": v} for k, v in row.items()})
        self.cluster.sync()
        for port, client in self.all_clients():
            open_orders = self.query_index("gsi1", "gsi1pk = :s", {":s": {"S": "STATUS#open"}},
                                           client=client)
            self.assertEqual([(i["pk"]["S"], i["sk"]["S"]) for i in open_orders],
                             [("CUST#2", "ORDER#1"), ("CUST#1", "ORDER#3")], f"node {port}")
        recent = self.query_index(
            "gsi1", "gsi1pk = :s AND gsi1sk > :t",
            {":s": {"S": "STATUS#open"}, ":t": {"S": "2026-02"}}, ScanIndexForward=False)
        self.assertEqual([i["sk"]["S"] for i in recent], ["ORDER#3"])
        # An update that changes the index key moves the entry; a delete removes it.
        self.next_client().update_item(
            TableName=self.table, Key={"pk": {"S": "CUST#1"}, "sk": {"S": "ORDER#3"}},
            UpdateExpression="SET gsi1pk = :s", ExpressionAttributeValues={
                ":s": {"S": "STATUS#shipped"}})
        self.next_client().delete_item(
            TableName=self.table, Key={"pk": {"S": "CUST#2"}, "sk": {"S": "EMAIL"}})
        self.cluster.sync()
        shipped = self.query_index("gsi1", "gsi1pk = :s", {":s": {"S": "STATUS#shipped"}})
        self.assertEqual([i["sk"]["S"] for i in shipped], ["ORDER#2", "ORDER#3"])
        self.assertEqual(self.query_index("gsi1", "gsi1pk = :s", {":s": {"S": "EMAIL#b@x"}}), [])
        scanned = self.next_client().scan(TableName=self.table, IndexName="gsi1")
        self.assertEqual(scanned["Count"], 3)  # the profile row was never indexed
        self.assertNotIn("PROFILE", {i["sk"]["S"] for i in scanned["Items"]})
        for port, client in self.all_clients():
            self.assertCountSettles(client, lambda t: t["GlobalSecondaryIndexes"][0]["ItemCount"],
                                    3, f"node {port}")
        if MODE == "dynamo":
            return  # no state digests in --mode dynamo (nor index rows)
        # Every node holds the same index rows (the state digest covers them).
        self.cluster.sync()
        digests = set()
        for port in self.ports:
            with urllib.request.urlopen(f"http://{HOST}:{port}/admin/digest", timeout=5) as r:
                body = json.load(r)
            digests.add((body["applied_index"], body["digest"]))
        self.assertEqual(len(digests), 1, digests)

    def test_projections_limit_what_an_index_returns(self):
        self.create_partly_projected()
        self.next_client().put_item(TableName=self.table, Item={
            "pk": {"S": "a"}, "sk": {"S": "1"}, "status": {"S": "open"}, "at": {"N": "5"},
            "title": {"S": "t"}, "body": {"S": "b"}})
        self.cluster.sync()
        [keys_only] = self.query_index("keys", "#s = :s", {":s": {"S": "open"}},
                                       ExpressionAttributeNames={"#s": "status"})
        self.assertEqual(sorted(keys_only), ["pk", "sk", "status"])
        [included] = self.query_index("incl", "#s = :s AND #a >= :a",
                                      {":s": {"S": "open"}, ":a": {"N": "5"}},
                                      ExpressionAttributeNames={"#s": "status", "#a": "at"})
        self.assertEqual(sorted(included), ["at", "pk", "sk", "status", "title"])
        [local] = self.query_index("byAt", "pk = :p", {":p": {"S": "a"}}, ConsistentRead=True)
        self.assertEqual(sorted(local), ["at", "pk", "sk"])
        used = self.next_client().query(
            TableName=self.table, IndexName="keys", KeyConditionExpression="#s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "open"}},
            ReturnConsumedCapacity="INDEXES")["ConsumedCapacity"]
        self.assertEqual(used, {"TableName": self.table, "CapacityUnits": 0.5,
                                "Table": {"CapacityUnits": 0.0},
                                "GlobalSecondaryIndexes": {"keys": {"CapacityUnits": 0.5}}})
        # A local index fetches what it does not project from the table, as DynamoDB does.
        [full] = self.query_index("byAt", "pk = :p", {":p": {"S": "a"}},
                                  Select="ALL_ATTRIBUTES")
        self.assertEqual(sorted(full), ["at", "body", "pk", "sk", "status", "title"])
        [some] = self.query_index("byAt", "pk = :p", {":p": {"S": "a"}},
                                  ProjectionExpression="title, #a",
                                  ExpressionAttributeNames={"#a": "at"})
        self.assertEqual(sorted(some), ["at", "title"])
        client = self.next_client()
        error = self.assertClientError(
            "ValidationException", client.query, TableName=self.table, IndexName="keys",
            KeyConditionExpression="#s = :s", ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "open"}}, ConsistentRead=True)
        self.assertIn("Consistent reads are not supported on global secondary indexes",
                      error["Message"])
        error = self.assertClientError(
            "ValidationException", client.query, TableName=self.table, IndexName="keys",
            KeyConditionExpression="#s = :s", ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "open"}}, Select="ALL_ATTRIBUTES")
        self.assertIn("ALL_ATTRIBUTES is not supported for global secondary index keys",
                      error["Message"])
        error = self.assertClientError(
            "ValidationException", client.query, TableName=self.table, IndexName="nope",
            KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "a"}})
        self.assertIn("The table does not have the specified index: nope", error["Message"])

    def test_writes_report_what_each_index_costs(self):
        self.create_partly_projected()
        client = self.next_client()
        key = {"pk": {"S": "a"}, "sk": {"S": "1"}}
        item = dict(key, status={"S": "open"}, at={"N": "5"}, title={"S": "t"}, body={"S": "b"})

        def shares(used):
            return (used["CapacityUnits"], used["Table"]["CapacityUnits"],
                    {k: v["CapacityUnits"] for k, v in used.get("GlobalSecondaryIndexes",
                                                                {}).items()},
                    {k: v["CapacityUnits"] for k, v in used.get("LocalSecondaryIndexes",
                                                                {}).items()})

        def update(expression, values, **extra):
            return client.update_item(
                TableName=self.table, Key=key, UpdateExpression=expression,
                ExpressionAttributeValues=values, ReturnConsumedCapacity="INDEXES",
                **extra)["ConsumedCapacity"]

        # A new item enters every index: one write each, on top of the table's.
        used = client.put_item(TableName=self.table, Item=item,
                               ReturnConsumedCapacity="INDEXES")["ConsumedCapacity"]
        self.assertEqual(shares(used), (4.0, 1.0, {"keys": 1.0, "incl": 1.0}, {"byAt": 1.0}))
        # An attribute no index projects costs the table alone.
        self.assertEqual(shares(update("SET body = :b", {":b": {"S": "c"}})),
                         (1.0, 1.0, {}, {}))
        # A projected attribute rewrites the one index that projects it, in place.
        self.assertEqual(shares(update("SET title = :t", {":t": {"S": "u"}})),
                         (2.0, 1.0, {"incl": 1.0}, {}))
        # A changed index key deletes the old entry and puts a new one: two writes.
        self.assertEqual(shares(update("SET #s = :s", {":s": {"S": "closed"}},
                                       ExpressionAttributeNames={"#s": "status"})),
                         (5.0, 1.0, {"keys": 2.0, "incl": 2.0}, {}))
        # TOTAL gives the sum alone.
        used = client.delete_item(TableName=self.table, Key=key,
                                  ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]
        self.assertEqual(used, {"TableName": self.table, "CapacityUnits": 4.0})
        if MODE == "dynamo":  # no transactions: put the item back alone
            client.put_item(TableName=self.table, Item=item)
        else:
            # A transaction pays twice, in the table and in each index.
            used = client.transact_write_items(
                TransactItems=[{"Put": {"TableName": self.table, "Item": item}}],
                ReturnConsumedCapacity="INDEXES")["ConsumedCapacity"]
            self.assertEqual([shares(u) for u in used],
                             [(8.0, 2.0, {"keys": 2.0, "incl": 2.0}, {"byAt": 2.0})])
        # A batch sums its writes per table and per index; an item outside an index (no
        # status, so in neither global index) costs that index nothing.
        used = client.batch_write_item(
            RequestItems={self.table: [
                {"DeleteRequest": {"Key": key}},
                {"PutRequest": {"Item": {"pk": {"S": "b"}, "sk": {"S": "1"},
                                         "at": {"N": "1"}}}}]},
            ReturnConsumedCapacity="INDEXES")["ConsumedCapacity"]
        self.assertEqual([shares(u) for u in used],
                         [(6.0, 2.0, {"keys": 1.0, "incl": 1.0}, {"byAt": 2.0})])

    def test_a_global_index_throughput_is_updated_on_a_provisioned_table(self):
        client = self.next_client()
        client.create_table(
            TableName=self.table, KeySchema=key_schema("pk", None),
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "g", "AttributeType": "S"}],
            ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
            GlobalSecondaryIndexes=[dict(
                self.index("byG", "g"),
                ProvisionedThroughput={"ReadCapacityUnits": 3, "WriteCapacityUnits": 4})])
        desc = client.update_table(TableName=self.table, GlobalSecondaryIndexUpdates=[
            {"Update": {"IndexName": "byG", "ProvisionedThroughput": {
                "ReadCapacityUnits": 7, "WriteCapacityUnits": 9}}}])["TableDescription"]
        [gsi] = desc["GlobalSecondaryIndexes"]
        self.assertEqual((gsi["ProvisionedThroughput"]["ReadCapacityUnits"],
                          gsi["ProvisionedThroughput"]["WriteCapacityUnits"],
                          gsi["IndexStatus"]), (7, 9, "ACTIVE"))
        self.cluster.sync()
        for port, c in self.all_clients():
            [gsi] = c.describe_table(TableName=self.table)["Table"]["GlobalSecondaryIndexes"]
            self.assertEqual(gsi["ProvisionedThroughput"]["WriteCapacityUnits"], 9,
                             f"node {port}")
        error = self.assertClientError(
            "ResourceNotFoundException", client.update_table, TableName=self.table,
            GlobalSecondaryIndexUpdates=[{"Update": {"IndexName": "nope", "ProvisionedThroughput": {
                "ReadCapacityUnits": 1, "WriteCapacityUnits": 1}}}])
        self.assertIn("Index: nope not found", error["Message"])
        # An on-demand table's indexes have no throughput to set.
        client.delete_table(TableName=self.table)
        wait_until(lambda: self.table not in client.list_tables()["TableNames"], 30.0,
                   "the table to go")
        self.create_indexed(gsis=[self.index("byG", "g")], extra_attrs=[("g", "S")])
        error = self.assertClientError(
            "ValidationException", client.update_table, TableName=self.table,
            GlobalSecondaryIndexUpdates=[{"Update": {"IndexName": "byG", "ProvisionedThroughput": {
                "ReadCapacityUnits": 1, "WriteCapacityUnits": 1}}}])
        self.assertIn("when BillingMode is PAY_PER_REQUEST", error["Message"])

    def test_pagination_over_many_equal_index_keys_returns_each_item_once(self):
        self.create_indexed(gsis=[self.index("byGroup", "grp", "rank")],
                            extra_attrs=[("grp", "S"), ("rank", "N")])
        expected = []
        with make_table_resource(self.ports[0], self.table).batch_writer() as batch:
            for n in range(40):
                # Only five distinct index keys: pagination must resume by table key too.
                item = {"pk": f"p{n:02d}", "sk": "x", "grp": "g", "rank": n % 5}
                batch.put_item(Item=item)
                expected.append((n % 5, f"p{n:02d}"))
        self.cluster.sync()
        for limit in (1, 7, 40):
            items = self.query_index("byGroup", "grp = :g", {":g": {"S": "g"}}, Limit=limit)
            got = [(int(i["rank"]["N"]), i["pk"]["S"]) for i in items]
            self.assertEqual(got, sorted(expected), f"Limit={limit}")
        page = self.next_client().query(
            TableName=self.table, IndexName="byGroup", KeyConditionExpression="grp = :g",
            ExpressionAttributeValues={":g": {"S": "g"}}, Limit=3)
        self.assertEqual(sorted(page["LastEvaluatedKey"]), ["grp", "pk", "rank", "sk"])
        # A parallel scan of the index sees every entry exactly once across its segments.
        seen = []
        for segment in range(3):
            seen += self.next_client().scan(TableName=self.table, IndexName="byGroup",
                                            Segment=segment, TotalSegments=3)["Items"]
        self.assertEqual(sorted(i["pk"]["S"] for i in seen), sorted(p for _, p in expected))

    def test_a_mistyped_index_key_is_refused_and_changes_nothing(self):
        self.create_indexed(gsis=[self.index("byStatus", "status")],
                            extra_attrs=[("status", "S")])
        client = self.next_client()
        error = self.assertClientError(
            "ValidationException", client.put_item, TableName=self.table,
            Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "status": {"N": "3"}})
        self.assertIn("Type mismatch for Index Key status Expected: S Actual: N IndexName: "
                      "byStatus", error["Message"])
        self.assertNotIn("Item", client.get_item(
            TableName=self.table, Key={"pk": {"S": "a"}, "sk": {"S": "1"}},
            ConsistentRead=True))
        if MODE == "dynamo":
            return  # no transactions in --mode dynamo
        self.assertClientError(
            "TransactionCanceledException", client.transact_write_items, TransactItems=[
                {"Put": {"TableName": self.table,
                         "Item": {"pk": {"S": "b"}, "sk": {"S": "1"}, "status": {"S": "ok"}}}},
                {"Put": {"TableName": self.table,
                         "Item": {"pk": {"S": "c"}, "sk": {"S": "1"}, "status": {"B": b"x"}}}},
            ])
        self.assertEqual(client.scan(TableName=self.table, ConsistentRead=True)["Count"], 0)

    def admin(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(
            f"http://{HOST}:{self.ports[0]}{path}", data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=5) as resp:
            return json.load(resp)

    @unittest.skipIf(MODE == "dynamo", "GSI lag is a Raft-mode fault (indexes are computed from the items in --mode dynamo)")
    def test_gsi_lag_hides_new_writes_from_the_index_until_it_has_passed(self):
        lag_s = 3.0
        self.create_indexed(gsis=[self.index("byStatus", "status")],
                            lsis=[self.index("byAt", "pk", "at")],
                            extra_attrs=[("status", "S"), ("at", "N")])
        answer = self.admin("/admin/faults/gsi-lag", {"table": self.table, "ms": int(lag_s * 1000)})
        self.assertIn("lags 3000 ms", answer["applied"])
        self.assertEqual(answer["gsi_lag"], [{"table": self.table, "ms": 3000}])
        status = get_status(self.ports[1])
        self.assertTrue(any("lag 3000 ms" in f for f in status["faults"]), status["faults"])
        item = {"pk": {"S": "a"}, "sk": {"S": "1"}, "status": {"S": "open"}, "at": {"N": "1"}}
        started = time.monotonic()
        self.next_client().put_item(TableName=self.table, Item=item)
        self.cluster.sync()
        by_status = {"KeyConditionExpression": "#s = :s", "ExpressionAttributeNames": {
            "#s": "status"}, "ExpressionAttributeValues": {":s": {"S": "open"}}}
        for port, client in self.all_clients():
            got = client.get_item(TableName=self.table, Key={"pk": item["pk"], "sk": item["sk"]})
            self.assertIn("Item", got, f"the table itself never lags (node {port})")
            local = client.query(TableName=self.table, IndexName="byAt",
                                 KeyConditionExpression="pk = :p",
                                 ExpressionAttributeValues={":p": {"S": "a"}})
            self.assertEqual(local["Count"], 1, f"a local index never lags (node {port})")
            lagged = client.query(TableName=self.table, IndexName="byStatus", **by_status)
            if time.monotonic() - started < lag_s:
                self.assertEqual(lagged["Count"], 0, f"the global index lags (node {port})")

        def seen_everywhere():
            return all(c.query(TableName=self.table, IndexName="byStatus", **by_status)["Count"]
                       == 1 for c in self.cluster.clients)

        wait_until(seen_everywhere, SYNC_TIMEOUT_S, "the lagged index to catch up")
        self.assertGreaterEqual(time.monotonic() - started, lag_s)
        # Healed: the index is current again at once.
        self.admin("/admin/faults/heal", {})
        self.next_client().delete_item(TableName=self.table,
                                       Key={"pk": item["pk"], "sk": item["sk"]})
        self.cluster.sync()
        for client in self.cluster.clients:
            self.assertEqual(client.query(TableName=self.table, IndexName="byStatus",
                                          **by_status)["Count"], 0)
        error = None
        try:
            self.admin("/admin/faults/gsi-lag", {"table": self.table, "index": "byAt", "ms": 5})
        except urllib.error.HTTPError as e:
            error = json.load(e)
        self.assertIsNotNone(error, "a local index cannot be made to lag")
        self.assertIn("local indexes never lag", error.get("message", error.get("Message", "")))

    def test_an_index_added_to_a_live_table_is_backfilled_while_writes_go_on(self):
        self.create_table(self.table)
        rows = 700  # several backfill batches
        with make_table_resource(self.ports[0], self.table).batch_writer() as batch:
            for n in range(rows):
                item = {"pk": f"p{n:03d}", "sk": "x", "n": n}
                if n % 3:
                    item["grp"] = f"g{n % 4}"  # every third item stays out of the index
                batch.put_item(Item=item)
        client = self.next_client()
        desc = client.update_table(
            TableName=self.table,
            AttributeDefinitions=[{"AttributeName": "grp", "AttributeType": "S"},
                                  {"AttributeName": "n", "AttributeType": "N"}],
            GlobalSecondaryIndexUpdates=[{"Create": self.index("byGroup", "grp", "n")}],
        )["TableDescription"]
        [gsi] = desc["GlobalSecondaryIndexes"]
        if MODE == "dynamo":  # computed from the items when read: nothing to fill
            self.assertEqual((gsi["IndexStatus"], gsi.get("Backfilling")), ("ACTIVE", None))
        else:
            self.assertEqual((gsi["IndexStatus"], gsi.get("Backfilling")), ("CREATING", True))
        # Writes go on while the index fills: they land in it whatever the backfill's progress.
        for n in range(0, rows, 50):
            self.next_client().update_item(
                TableName=self.table, Key={"pk": {"S": f"p{n:03d}"}, "sk": {"S": "x"}},
                UpdateExpression="SET grp = :g", ExpressionAttributeValues={":g": {"S": "new"}})
        self.next_client().delete_item(TableName=self.table,
                                       Key={"pk": {"S": "p001"}, "sk": {"S": "x"}})

        def active_everywhere():
            return all(c.describe_table(TableName=self.table)["Table"]["GlobalSecondaryIndexes"][0]
                       ["IndexStatus"] == "ACTIVE" for c in self.cluster.clients)

        wait_until(active_everywhere, 60.0, "the new index to become ACTIVE on every node")
        self.cluster.sync()
        table = {}
        for page in client.get_paginator("scan").paginate(TableName=self.table,
                                                           ConsistentRead=True):
            for item in page["Items"]:
                table[item["pk"]["S"]] = item
        expected = {}
        for pk, item in table.items():
            if "grp" in item:
                expected.setdefault(item["grp"]["S"], []).append((int(item["n"]["N"]), pk))
        for port, c in self.all_clients():
            for group, members in expected.items():
                got = self.query_index("byGroup", "grp = :g", {":g": {"S": group}}, client=c)
                self.assertEqual([(int(i["n"]["N"]), i["pk"]["S"]) for i in got], sorted(members),
                                 f"group {group} on node {port}")
            self.assertCountSettles(c, lambda t: t["GlobalSecondaryIndexes"][0]["ItemCount"],
                                    sum(len(m) for m in expected.values()), f"node {port}")
        # Removing it: DELETING (no longer readable, no second change meanwhile) while its
        # entries go in batches, then gone from every node.
        desc = client.update_table(TableName=self.table, GlobalSecondaryIndexUpdates=[
            {"Delete": {"IndexName": "byGroup"}}])["TableDescription"]
        if MODE == "dynamo":  # nothing stored to purge: gone at once
            self.assertNotIn("GlobalSecondaryIndexes", desc)
        else:
            [gsi] = desc["GlobalSecondaryIndexes"]
            self.assertEqual(gsi["IndexStatus"], "DELETING")
        error = self.assertClientError(
            "ValidationException", client.query, TableName=self.table, IndexName="byGroup",
            KeyConditionExpression="grp = :g", ExpressionAttributeValues={":g": {"S": "new"}})
        self.assertIn("does not have the specified index", error["Message"])

        def gone_everywhere():
            return all("GlobalSecondaryIndexes" not in c.describe_table(
                TableName=self.table)["Table"] for c in self.cluster.clients)

        wait_until(gone_everywhere, 60.0, "the deleted index to disappear from every node")
        for kind, detail in [] if MODE == "dynamo" else [("index_active", f"index byGroup of {self.table} backfilled: ACTIVE"),
                             ("index_removed", f"index byGroup of {self.table} removed")]:
            wait_until(lambda: detail in self.events(kind), 10.0, f"the {kind} event")
        # Its name is free again.
        client.update_table(
            TableName=self.table,
            GlobalSecondaryIndexUpdates=[{"Create": self.index("byGroup", "grp", "n")}])
        wait_until(active_everywhere, 60.0, "the index to be ACTIVE again on every node")

    def test_a_multi_attribute_gsi_key_is_queried_left_to_right(self):
        client = self.next_client()
        client.create_table(
            TableName=self.table, BillingMode="PAY_PER_REQUEST",
            KeySchema=key_schema("id", None),
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": t} for a, t in [
                ("id", "S"), ("tenant", "S"), ("area", "S"), ("yr", "N"), ("mon", "N")]],
            GlobalSecondaryIndexes=[{"IndexName": "byTenantArea", "KeySchema": [
                {"AttributeName": "tenant", "KeyType": "HASH"},
                {"AttributeName": "area", "KeyType": "HASH"},
                {"AttributeName": "yr", "KeyType": "RANGE"},
                {"AttributeName": "mon", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"}}])
        n = 0
        for t, a, y, m in itertools.product(["a", "b"], ["eu", "us"], [2024, 2025], [3, 1, 2]):
            n += 1
            client.put_item(TableName=self.table, Item={
                "id": {"S": f"i{n}"}, "tenant": {"S": t}, "area": {"S": a},
                "yr": {"N": str(y)}, "mon": {"N": str(m)}})
        client.put_item(TableName=self.table, Item={  # no area: not in the index
            "id": {"S": "sparse"}, "tenant": {"S": "a"}, "yr": {"N": "2025"}, "mon": {"N": "1"}})
        self.cluster.sync()
        keys = {":t": {"S": "a"}, ":a": {"S": "eu"}}

        def months(condition, values, **kwargs):
            return [(int(i["yr"]["N"]), int(i["mon"]["N"])) for i in self.query_index(
                "byTenantArea", condition, {**keys, **values}, **kwargs)]

        both = [(y, m) for y in (2024, 2025) for m in (1, 2, 3)]
        self.assertEqual(months("tenant = :t AND area = :a", {}), both)
        self.assertEqual(months("tenant = :t AND area = :a", {}, Limit=2), both)
        self.assertEqual(months("tenant = :t AND area = :a AND yr = :y",
                                {":y": {"N": "2025"}}), [(2025, 1), (2025, 2), (2025, 3)])
        self.assertEqual(months("tenant = :t AND area = :a AND yr = :y AND mon >= :m",
                                {":y": {"N": "2025"}, ":m": {"N": "2"}}), [(2025, 2), (2025, 3)])
        self.assertEqual(months("tenant = :t AND area = :a AND yr > :y", {":y": {"N": "2024"}},
                                ScanIndexForward=False), [(2025, 3), (2025, 2), (2025, 1)])
        for condition, values, message in [
            ("tenant = :t", {}, "Query condition missed key schema element: area"),
            ("tenant = :t AND area = :a AND mon = :m", {":m": {"N": "1"}},
             "Query key condition not supported"),
            ("tenant = :t AND area = :a AND yr > :y AND mon = :m",
             {":y": {"N": "1"}, ":m": {"N": "1"}}, "Query key condition not supported"),
        ]:
            with self.subTest(condition=condition):
                error = self.assertClientError(
                    "ValidationException", client.query, TableName=self.table,
                    IndexName="byTenantArea", KeyConditionExpression=condition,
                    ExpressionAttributeValues={
                        k: v for k, v in {**keys, **values}.items() if k in condition})
                self.assertIn(message, error["Message"])
        [gsi] = client.describe_table(TableName=self.table)["Table"]["GlobalSecondaryIndexes"]
        self.assertEqual([k["KeyType"] for k in gsi["KeySchema"]], ["HASH", "HASH", "RANGE", "RANGE"])
        self.assertCountSettles(client, lambda t: t["GlobalSecondaryIndexes"][0]["ItemCount"],
                                24)
        page = client.query(TableName=self.table, IndexName="byTenantArea", Limit=1,
                            KeyConditionExpression="tenant = :t AND area = :a",
                            ExpressionAttributeValues=keys)
        self.assertEqual(sorted(page["LastEvaluatedKey"]), ["area", "id", "mon", "tenant", "yr"])
        error = self.assertClientError(
            "ValidationException", client.create_table, TableName=self.table + "2",
            BillingMode="PAY_PER_REQUEST", KeySchema=key_schema("id", None),
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"},
                                  {"AttributeName": "x", "AttributeType": "S"}],
            GlobalSecondaryIndexes=[{"IndexName": "bad", "Projection": {"ProjectionType": "ALL"},
                                     "KeySchema": [{"AttributeName": "x", "KeyType": "HASH"},
                                                   {"AttributeName": "id", "KeyType": "RANGE"},
                                                   {"AttributeName": "id", "KeyType": "HASH"}]}])
        self.assertIn("All HASH key attributes must precede RANGE key attributes",
                      error["Message"])

    def test_create_table_validates_its_indexes(self):
        client = self.next_client()
        base = {"TableName": self.table, "KeySchema": key_schema("pk", "sk"),
                "BillingMode": "PAY_PER_REQUEST"}
        defs = [{"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"}]
        cases = [
            ({"AttributeDefinitions": defs,
              "GlobalSecondaryIndexes": [self.index("gone", "missing")]},
             "Some index key attributes are not defined in AttributeDefinitions"),
            ({"AttributeDefinitions": defs + [{"AttributeName": "x", "AttributeType": "S"}],
              "GlobalSecondaryIndexes": [self.index("gone", "sk")]},
             "Some AttributeDefinitions are not used"),
            ({"AttributeDefinitions": defs + [{"AttributeName": "x", "AttributeType": "S"}],
              "LocalSecondaryIndexes": [self.index("lone", "x", "sk")]},
             "Index KeySchema does not have the same leading hash key as table KeySchema"),
            ({"AttributeDefinitions": defs,
              "GlobalSecondaryIndexes": [self.index("dup", "sk"), self.index("dup", "sk")]},
             "Duplicate index name: dup"),
            ({"AttributeDefinitions": defs,
              "GlobalSecondaryIndexes": [self.index("gone", "sk", None, {
                  "ProjectionType": "INCLUDE"})]},
             "ProjectionType is INCLUDE, but NonKeyAttributes is not specified"),
        ]
        for extra, message in cases:
            with self.subTest(message=message):
                error = self.assertClientError("ValidationException", client.create_table,
                                               **base, **extra)
                self.assertIn(message, error["Message"])
        self.assertClientError("ResourceNotFoundException", client.describe_table,
                               TableName=self.table)



class TimeToLiveTest(KvsimTestCase):
    """UpdateTimeToLive and DescribeTimeToLive, and expired items deleted by the leader
    through the log on every node (the test cluster sweeps every 200 ms)."""

    def describe_ttl(self, client=None):
        return (client or self.next_client()).describe_time_to_live(
            TableName=self.table)["TimeToLiveDescription"]

    def test_enabling_and_disabling_follow_dynamodbs_rules(self):
        self.create_table(self.table)
        self.cluster.sync()  # describes below are answered by each node from its own state
        client = self.next_client()
        self.assertEqual(self.describe_ttl(), {"TimeToLiveStatus": "DISABLED"})
        error = self.assertClientError(
            "ValidationException", client.update_time_to_live, TableName=self.table,
            TimeToLiveSpecification={"Enabled": False, "AttributeName": "exp"})
        self.assertEqual(error["Message"], "TimeToLive is already disabled")
        answer = client.update_time_to_live(
            TableName=self.table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "exp"})
        self.assertEqual(answer["TimeToLiveSpecification"],
                         {"Enabled": True, "AttributeName": "exp"})
        self.cluster.sync()
        for port, c in self.all_clients():
            self.assertEqual(self.describe_ttl(c),
                             {"TimeToLiveStatus": "ENABLED", "AttributeName": "exp"},
                             f"node {port}")
        for attribute in ["exp", "other"]:
            error = self.assertClientError(
                "ValidationException", client.update_time_to_live, TableName=self.table,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute})
            self.assertEqual(error["Message"], "TimeToLive is already enabled")
        error = self.assertClientError(
            "ValidationException", client.update_time_to_live, TableName=self.table,
            TimeToLiveSpecification={"Enabled": False, "AttributeName": "other"})
        self.assertEqual(error["Message"], "TimeToLive is active on a different AttributeName: "
                                           "current AttributeName is exp")
        client.update_time_to_live(
            TableName=self.table, TimeToLiveSpecification={"Enabled": False, "AttributeName": "exp"})
        self.cluster.sync()
        self.assertEqual(self.describe_ttl(client), {"TimeToLiveStatus": "DISABLED"})
        self.assertClientError(
            "ResourceNotFoundException", client.describe_time_to_live, TableName="t_missing")
        self.assertClientError(
            "ResourceNotFoundException", client.update_time_to_live, TableName="t_missing",
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "exp"})

    def test_expired_items_are_deleted_everywhere_and_others_kept(self):
        client = self.next_client()
        client.create_table(
            TableName=self.table, KeySchema=key_schema("pk", None), BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "g", "AttributeType": "S"}],
            GlobalSecondaryIndexes=[{"IndexName": "byG", "KeySchema": key_schema("g", None),
                                     "Projection": {"ProjectionType": "ALL"}}])
        now = int(time.time())
        items = {
            "past": {"N": str(now - 60)},
            "past2": {"N": str(now - 3600)},
            "future": {"N": str(now + 3600)},
            "ancient": {"N": str(now - 6 * 365 * 86400)},  # beyond five years: left alone
            "millis": {"N": str((now - 60) * 1000)},  # milliseconds read as the far future
            "text": {"S": str(now - 60)},  # not a number: never expires
        }
        for pk, exp in items.items():
            client.put_item(TableName=self.table,
                            Item={"pk": {"S": pk}, "exp": exp, "g": {"S": "all"}})
        client.put_item(TableName=self.table, Item={"pk": {"S": "none"}, "g": {"S": "all"}})
        # Until TTL is enabled nothing expires.
        self.cluster.sync()
        self.assertEqual(len(client.scan(TableName=self.table, ConsistentRead=True)["Items"]), 7)
        client.update_time_to_live(
            TableName=self.table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "exp"})
        kept = sorted(["future", "ancient", "millis", "text", "none"])

        def swept_everywhere():
            return all(sorted(i["pk"]["S"] for i in c.scan(TableName=self.table)["Items"]) == kept
                       for c in self.cluster.clients)

        wait_until(swept_everywhere, 30.0, "the expired items to be deleted on every node")
        # The leader says so in the event log (`kvsim events`), once its proposal returns.
        wait_until(lambda: any(self.table in d for d in self.events("ttl_expired")), 10.0,
                   "a ttl_expired event naming the table")
        for port, c in self.all_clients():
            in_index = c.query(TableName=self.table, IndexName="byG",
                               KeyConditionExpression="g = :g",
                               ExpressionAttributeValues={":g": {"S": "all"}})["Items"]
            self.assertEqual(sorted(i["pk"]["S"] for i in in_index), kept, f"node {port}")
            self.assertCountSettles(c, lambda t: t["ItemCount"], len(kept), f"node {port}")
        # An item whose expiry passes later goes once it has; one still in the future stays.
        client.put_item(TableName=self.table,
                        Item={"pk": {"S": "soon"}, "exp": {"N": str(int(time.time()) + 2)}})
        wait_until(lambda: "Item" not in client.get_item(
            TableName=self.table, Key={"pk": {"S": "soon"}}, ConsistentRead=True), 30.0,
            "an item to expire once its time passed")
        self.assertIn("Item", client.get_item(TableName=self.table,
                                              Key={"pk": {"S": "future"}}, ConsistentRead=True))


def make_streams_client(port: int):
    """A boto3 DynamoDB Streams client for the node on port."""
    session = boto3.session.Session()
    return session.client(
        "dynamodbstreams",
        endpoint_url=f"http://{HOST}:{port}",
        region_name="us-east-1",
        aws_access_key_id="kvsim-test",
        aws_secret_access_key="kvsim-test",
        config=Config(retries={"max_attempts": 5, "mode": "standard"},
                      connect_timeout=5, read_timeout=20),
    )


@unittest.skipIf(MODE == "dynamo", "one shard per range of the log (LeaderlessStreamsTest covers --mode dynamo)")
class StreamsTest(KvsimTestCase):
    """DynamoDB Streams through boto3's `dynamodbstreams` client: records made at apply, the
    same on every node, read with every iterator type."""

    def setUp(self):
        super().setUp()
        self.streams = [make_streams_client(p) for p in self.ports]

    def create_streamed(self, view: str, name: str | None = None) -> dict:
        return self.next_client().create_table(
            TableName=name or self.table, KeySchema=key_schema("pk", None),
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": view},
        )["TableDescription"]

    def shard_of(self, arn: str, streams=None) -> str:
        shards = (streams or self.streams[0]).describe_stream(
            StreamArn=arn)["StreamDescription"]["Shards"]
        self.assertEqual(len(shards), 1, shards)
        return shards[0]["ShardId"]

    def read_all(self, arn: str, streams=None, kind="TRIM_HORIZON", limit=None, **extra) -> list:
        """Every record from an iterator of `kind` until a page comes back empty."""
        streams = streams or self.streams[0]
        it = streams.get_shard_iterator(StreamArn=arn, ShardId=self.shard_of(arn, streams),
                                        ShardIteratorType=kind, **extra)["ShardIterator"]
        records = []
        while it:
            page = streams.get_records(ShardIterator=it, **({"Limit": limit} if limit else {}))
            records += page["Records"]
            if not page["Records"]:
                break
            it = page.get("NextShardIterator")
        return records

    def test_streams_are_enabled_disabled_and_described_as_dynamodb_does(self):
        desc = self.create_streamed("NEW_AND_OLD_IMAGES")
        self.assertEqual(desc["StreamSpecification"],
                         {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        first = desc["LatestStreamArn"]
        self.assertEqual(first, f"{desc['TableArn']}/stream/{desc['LatestStreamLabel']}")
        self.assertRegex(desc["LatestStreamLabel"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$")
        self.cluster.sync()
        for port, c in self.all_clients():
            self.assertEqual(c.describe_table(TableName=self.table)["Table"]["LatestStreamArn"],
                             first, f"node {port}")
        client = self.next_client()
        error = self.assertClientError(
            "ValidationException", client.update_table, TableName=self.table,
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
        self.assertEqual(error["Message"],
                         f"Table already has an enabled stream: TableName: {self.table}")
        for bad in [{"StreamEnabled": True}, {"StreamEnabled": True, "StreamViewType": "ALL"}]:
            self.assertClientError("ValidationException", client.update_table,
                                   TableName=self.table, StreamSpecification=bad)
        off = client.update_table(TableName=self.table,
                                  StreamSpecification={"StreamEnabled": False})
        self.assertEqual(off["TableDescription"]["StreamSpecification"], {"StreamEnabled": False})
        self.assertEqual(off["TableDescription"]["LatestStreamArn"], first)
        self.assertClientError("ValidationException", client.update_table, TableName=self.table,
                               StreamSpecification={"StreamEnabled": False})
        on = client.update_table(
            TableName=self.table,
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
        second = on["TableDescription"]["LatestStreamArn"]
        self.assertNotEqual(second, first, "re-enabling makes a new stream")
        self.cluster.sync()
        for streams in self.streams:
            listed = streams.list_streams(TableName=self.table)["Streams"]
            self.assertEqual([s["StreamArn"] for s in listed], [first, second])
            page = streams.list_streams(TableName=self.table, Limit=1)
            self.assertEqual([s["StreamArn"] for s in page["Streams"]], [first])
            self.assertEqual(page["LastEvaluatedStreamArn"], first)
            rest = streams.list_streams(TableName=self.table, Limit=1,
                                        ExclusiveStartStreamArn=first)
            self.assertEqual([s["StreamArn"] for s in rest["Streams"]], [second])
            self.assertNotIn("LastEvaluatedStreamArn", rest)
            old = streams.describe_stream(StreamArn=first)["StreamDescription"]
            self.assertEqual((old["StreamStatus"], old["StreamViewType"], old["TableName"]),
                             ("DISABLED", "NEW_AND_OLD_IMAGES", self.table))
            self.assertIn("EndingSequenceNumber", old["Shards"][0]["SequenceNumberRange"])
            new = streams.describe_stream(StreamArn=second)["StreamDescription"]
            self.assertEqual((new["StreamStatus"], new["StreamViewType"]), ("ENABLED", "KEYS_ONLY"))
            self.assertEqual(new["KeySchema"], [{"AttributeName": "pk", "KeyType": "HASH"}])
            self.assertNotIn("EndingSequenceNumber", new["Shards"][0]["SequenceNumberRange"])
        self.assertClientError("ResourceNotFoundException", self.streams[0].describe_stream,
                               StreamArn=first + "x")

    def test_every_view_type_records_each_effective_write_once(self):
        for view in ["KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES"]:
            name = f"{self.table}_{view}"
            arn = self.create_streamed(view, name)["LatestStreamArn"]
            client = self.next_client()
            started = time.time()
            key = {"pk": {"S": "a"}}
            client.put_item(TableName=name, Item={**key, "v": {"N": "1"}})          # INSERT
            client.put_item(TableName=name, Item={**key, "v": {"N": "1"}})          # no change
            client.update_item(TableName=name, Key=key, UpdateExpression="SET v = :v",
                               ExpressionAttributeValues={":v": {"N": "2"}})        # MODIFY
            client.update_item(TableName=name, Key=key, UpdateExpression="SET v = :v",
                               ExpressionAttributeValues={":v": {"N": "2"}})        # no change
            client.batch_write_item(RequestItems={name: [
                {"PutRequest": {"Item": {"pk": {"S": "b"}}}},
                {"DeleteRequest": {"Key": key}},                                     # REMOVE
                {"DeleteRequest": {"Key": {"pk": {"S": "never"}}}},                  # no change
            ]})
            self.cluster.sync()
            for port, streams in zip(self.ports, self.streams):
                records = self.read_all(arn, streams)
                names = [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for r in records]
                self.assertEqual(names, [("INSERT", "a"), ("MODIFY", "a"), ("INSERT", "b"),
                                         ("REMOVE", "a")], f"{view} at node {port}")
                seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
                self.assertEqual(seqs, sorted(set(seqs)), "sequence numbers rise")
                for r in records:
                    body = r["dynamodb"]
                    self.assertEqual(body["StreamViewType"], view)
                    self.assertEqual((r["eventSource"], r["eventVersion"], r["awsRegion"]),
                                     ("aws:dynamodb", "1.1", "us-east-1"))
                    self.assertGreater(body["SizeBytes"], 0)
                    self.assertNotIn("userIdentity", r)
                    when = body["ApproximateCreationDateTime"].timestamp()
                    self.assertLessEqual(abs(when - started), 60, body)
                    has_new = r["eventName"] != "REMOVE" and view in ("NEW_IMAGE",
                                                                      "NEW_AND_OLD_IMAGES")
                    has_old = r["eventName"] != "INSERT" and view in ("OLD_IMAGE",
                                                                      "NEW_AND_OLD_IMAGES")
                    self.assertEqual("NewImage" in body, has_new, f"{view}: {r}")
                    self.assertEqual("OldImage" in body, has_old, f"{view}: {r}")
                modify = records[1]["dynamodb"]
                if "NewImage" in modify:
                    self.assertEqual(modify["NewImage"]["v"], {"N": "2"})
                if "OldImage" in modify:
                    self.assertEqual(modify["OldImage"]["v"], {"N": "1"})
                self.assertEqual(len({r["eventID"] for r in records}), len(records))

    def test_every_iterator_type_reads_from_where_it_says(self):
        arn = self.create_streamed("NEW_IMAGE")["LatestStreamArn"]
        client = self.next_client()
        for i in range(5):
            client.put_item(TableName=self.table, Item={"pk": {"S": f"k{i}"}})
        streams = self.streams[0]
        self.cluster.sync()
        records = self.read_all(arn, limit=2)
        self.assertEqual([r["dynamodb"]["Keys"]["pk"]["S"] for r in records],
                         [f"k{i}" for i in range(5)], "TRIM_HORIZON, two records a page")
        seqs = [r["dynamodb"]["SequenceNumber"] for r in records]
        at = self.read_all(arn, kind="AT_SEQUENCE_NUMBER", SequenceNumber=seqs[2])
        self.assertEqual([r["dynamodb"]["SequenceNumber"] for r in at], seqs[2:])
        after = self.read_all(arn, kind="AFTER_SEQUENCE_NUMBER", SequenceNumber=seqs[2])
        self.assertEqual([r["dynamodb"]["SequenceNumber"] for r in after], seqs[3:])
        latest = streams.get_shard_iterator(StreamArn=arn, ShardId=self.shard_of(arn),
                                            ShardIteratorType="LATEST")["ShardIterator"]
        self.assertEqual(streams.get_records(ShardIterator=latest)["Records"], [])
        client.put_item(TableName=self.table, Item={"pk": {"S": "later"}})
        self.cluster.sync()
        page = streams.get_records(ShardIterator=latest)
        self.assertEqual([r["dynamodb"]["Keys"]["pk"]["S"] for r in page["Records"]], ["later"])
        self.assertIn("NextShardIterator", page, "an enabled stream's shard stays open")
        for bad in [{"ShardIteratorType": "AT_SEQUENCE_NUMBER"},
                    {"ShardIteratorType": "AT_SEQUENCE_NUMBER", "SequenceNumber": "1" + "x" * 20},
                    {"ShardIteratorType": "SOMEWHERE"}]:
            self.assertClientError("ValidationException", streams.get_shard_iterator,
                                   StreamArn=arn, ShardId=self.shard_of(arn), **bad)
        self.assertClientError("ResourceNotFoundException", streams.get_shard_iterator,
                               StreamArn=arn, ShardId="shardId-" + "0" * 29, ShardIteratorType="LATEST")
        self.assertClientError("ValidationException", streams.get_records,
                               ShardIterator=latest, Limit=1001)
        # An iterator older than 15 minutes has expired (its text carries when it was issued).
        stale = latest.rsplit("|", 1)[0] + f"|{int((time.time() - 16 * 60) * 1000)}"
        self.assertClientError("ExpiredIteratorException", streams.get_records,
                               ShardIterator=stale)
        # Disabling closes the shard: read to its end, it has no next iterator.
        client.update_table(TableName=self.table, StreamSpecification={"StreamEnabled": False})
        client.put_item(TableName=self.table, Item={"pk": {"S": "unrecorded"}})
        self.cluster.sync()
        it = streams.get_shard_iterator(StreamArn=arn, ShardId=self.shard_of(arn),
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        keys = []
        while it:
            page = streams.get_records(ShardIterator=it)
            keys += [r["dynamodb"]["Keys"]["pk"]["S"] for r in page["Records"]]
            it = page.get("NextShardIterator")
        self.assertEqual(keys, [f"k{i}" for i in range(5)] + ["later"])

    def test_records_are_identical_on_every_node_across_a_leader_crash(self):
        arn = self.create_streamed("NEW_AND_OLD_IMAGES")["LatestStreamArn"]
        client = self.next_client()
        for i in range(10):
            client.put_item(TableName=self.table, Item={"pk": {"S": f"k{i % 4}"}, "n": {"N": str(i)}})
        client.transact_write_items(TransactItems=[
            {"Put": {"TableName": self.table, "Item": {"pk": {"S": "t1"}}}},
            {"Delete": {"TableName": self.table, "Key": {"pk": {"S": "k0"}}}},
        ])
        leader = self.cluster.leader_port()
        via = next(p for p in self.ports if p != leader)
        leader_id = self.ports.index(leader) + 1
        request = urllib.request.Request(f"http://{HOST}:{via}/admin/nodes/{leader_id}/crash",
                                         data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=5).close()

        def new_leader():
            status = get_status(via)
            return status if status and status["leader_id"] not in (None, leader_id) else None

        wait_until(new_leader, STARTUP_TIMEOUT_S, "a new leader among the survivors")
        survivor = make_client(via)
        for i in range(10, 15):
            survivor.put_item(TableName=self.table, Item={"pk": {"S": f"k{i % 4}"}, "n": {"N": str(i)}})
        restart = urllib.request.Request(f"http://{HOST}:{via}/admin/nodes/{leader_id}/restart",
                                         data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(restart, timeout=5).close()
        self.cluster.agreed_statuses()  # the restarted node is back and follows
        self.cluster.sync()
        seen = [self.read_all(arn, streams) for streams in self.streams]
        self.assertEqual(len(seen[0]), 10 + 2 + 5)
        for port, records in zip(self.ports, seen):
            self.assertEqual(records, seen[0], f"node {port} serves the same records")
        # A reader that moves to another node resumes exactly after what it last saw.
        half = seen[0][7]["dynamodb"]["SequenceNumber"]
        rest = self.read_all(arn, self.streams[2], kind="AFTER_SEQUENCE_NUMBER",
                             SequenceNumber=half)
        self.assertEqual(rest, seen[0][8:])

    def test_time_to_live_deletes_are_recorded_as_the_service(self):
        arn = self.create_streamed("NEW_AND_OLD_IMAGES")["LatestStreamArn"]
        client = self.next_client()
        client.update_time_to_live(
            TableName=self.table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "exp"})
        client.put_item(TableName=self.table,
                        Item={"pk": {"S": "old"}, "exp": {"N": str(int(time.time()) - 60)}})
        client.delete_item(TableName=self.table, Key={"pk": {"S": "gone"}})

        def removed():
            records = self.read_all(arn)
            return records if any(r["eventName"] == "REMOVE" for r in records) else None

        records = wait_until(removed, 30.0, "the expired item's REMOVE record")
        self.assertEqual([r["eventName"] for r in records], ["INSERT", "REMOVE"])
        self.assertNotIn("userIdentity", records[0])
        self.assertEqual(records[1]["userIdentity"],
                         {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"})
        self.assertEqual(records[1]["dynamodb"]["OldImage"]["pk"], {"S": "old"})


@unittest.skipIf(MODE != "dynamo", "one shard per node (StreamsTest covers Raft mode)")
class LeaderlessStreamsTest(KvsimTestCase):
    """DynamoDB Streams in --mode dynamo through boto3: a shard per node, holding the changes
    of the keys that node is primary for, read from that node wherever the request arrives."""

    def setUp(self):
        super().setUp()
        self.streams = [make_streams_client(p) for p in self.ports]

    def create_streamed(self, view: str, sk: str | None = None) -> dict:
        attributes = [{"AttributeName": "pk", "AttributeType": "S"}]
        if sk:
            attributes.append({"AttributeName": sk, "AttributeType": "S"})
        return self.next_client().create_table(
            TableName=self.table, KeySchema=key_schema("pk", sk),
            AttributeDefinitions=attributes, BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": view},
        )["TableDescription"]

    def shard_records(self, arn: str, shard: str, streams=None, kind="TRIM_HORIZON",
                      **extra) -> list:
        """Every record of one shard from an iterator of `kind` until a page comes back
        empty."""
        streams = streams or self.streams[0]
        it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType=kind,
                                        **extra)["ShardIterator"]
        records = []
        while it:
            page = streams.get_records(ShardIterator=it, Limit=2)
            records += page["Records"]
            if not page["Records"]:
                break
            it = page.get("NextShardIterator")
        return records

    def post(self, port: int, path: str) -> None:
        request = urllib.request.Request(f"http://{HOST}:{port}{path}", data=b"{}",
                                         method="POST",
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=5).close()

    def by_shard(self, arn: str, streams=None) -> dict:
        streams = streams or self.streams[0]
        shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        return {s["ShardId"]: self.shard_records(arn, s["ShardId"], streams) for s in shards}

    def test_each_change_lands_once_in_the_shard_of_its_primary(self):
        desc = self.create_streamed("NEW_AND_OLD_IMAGES")
        arn = desc["LatestStreamArn"]
        self.assertEqual(desc["StreamSpecification"],
                         {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        described = self.streams[1].describe_stream(StreamArn=arn)["StreamDescription"]
        self.assertEqual(described["StreamStatus"], "ENABLED")
        self.assertEqual(len(described["Shards"]), len(self.ports), "a shard per node")
        for shard in described["Shards"]:
            self.assertNotIn("ParentShardId", shard)
            self.assertNotIn("EndingSequenceNumber", shard["SequenceNumberRange"])
        client = self.next_client()
        key = {"pk": {"S": "a"}}
        client.put_item(TableName=self.table, Item={**key, "v": {"N": "1"}})     # INSERT
        client.put_item(TableName=self.table, Item={**key, "v": {"N": "1"}})     # no change
        client.update_item(TableName=self.table, Key=key, UpdateExpression="SET v = :v",
                           ExpressionAttributeValues={":v": {"N": "2"}})        # MODIFY
        client.put_item(TableName=self.table, Item={"pk": {"S": "b"}})           # INSERT
        client.delete_item(TableName=self.table, Key=key)                        # REMOVE
        client.delete_item(TableName=self.table, Key={"pk": {"S": "never"}})     # no change
        expected = {"a": ["INSERT", "MODIFY", "REMOVE"], "b": ["INSERT"]}

        def complete():
            shards = self.by_shard(arn, self.streams[2])
            per_key = {}
            for records in shards.values():
                for r in records:
                    per_key.setdefault(r["dynamodb"]["Keys"]["pk"]["S"], []).append(r)
            got = {k: [r["eventName"] for r in rs] for k, rs in per_key.items()}
            return (shards, per_key) if got == expected else None

        # A write is acknowledged by W replicas; the primary may be the one still receiving it.
        shards, per_key = wait_until(complete, SYNC_TIMEOUT_S, f"records {expected}")
        for k in expected:
            holding = [s for s, records in shards.items()
                       if any(r["dynamodb"]["Keys"]["pk"]["S"] == k for r in records)]
            self.assertEqual(len(holding), 1, f"{k}'s records are in one shard: {holding}")
        a = per_key["a"]
        self.assertEqual([r["dynamodb"].get("NewImage", {}).get("v") for r in a],
                         [{"N": "1"}, {"N": "2"}, None])
        self.assertEqual([r["dynamodb"].get("OldImage", {}).get("v") for r in a],
                         [None, {"N": "1"}, {"N": "2"}])
        every = [r for records in shards.values() for r in records]
        self.assertEqual(len({r["eventID"] for r in every}), len(every))
        self.assertEqual(len({r["dynamodb"]["SequenceNumber"] for r in every}), len(every))
        for records in shards.values():
            seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
            self.assertEqual(seqs, sorted(seqs), "sequence numbers rise within a shard")
        # Every node answers for every shard with the same records.
        self.assertEqual(self.by_shard(arn, self.streams[0]), shards)

    def test_iterators_read_one_shard_from_where_they_say_and_disabling_closes_it(self):
        arn = self.create_streamed("KEYS_ONLY", sk="sk")["LatestStreamArn"]
        client = self.next_client()
        # One partition: its items share a preference list, so one primary records them all.
        for i in range(5):
            client.put_item(TableName=self.table, Item={"pk": {"S": "p"}, "sk": {"S": f"{i}"}})

        def the_shard():
            for shard, records in self.by_shard(arn).items():
                if len(records) == 5:
                    return shard, records
            return None

        shard, records = wait_until(the_shard, SYNC_TIMEOUT_S, "five records in one shard")
        self.assertEqual([r["dynamodb"]["Keys"]["sk"]["S"] for r in records],
                         [str(i) for i in range(5)])
        self.assertTrue(all("NewImage" not in r["dynamodb"] for r in records), "KEYS_ONLY")
        seqs = [r["dynamodb"]["SequenceNumber"] for r in records]
        at = self.shard_records(arn, shard, kind="AT_SEQUENCE_NUMBER", SequenceNumber=seqs[2])
        self.assertEqual([r["dynamodb"]["SequenceNumber"] for r in at], seqs[2:])
        after = self.shard_records(arn, shard, kind="AFTER_SEQUENCE_NUMBER",
                                   SequenceNumber=seqs[2])
        self.assertEqual([r["dynamodb"]["SequenceNumber"] for r in after], seqs[3:])
        # A number past any record (near the top of the range) is refused, not overflowed.
        node = int(shard.rsplit("-", 1)[1])
        top = (2**64 - 1) // 16 * 16 + node  # the shard's highest number
        self.assertClientError("ValidationException", self.streams[0].get_shard_iterator,
                               StreamArn=arn, ShardId=shard,
                               ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                               SequenceNumber=f"{top:021}")
        other = next(s for s in self.by_shard(arn) if s != shard)
        self.assertClientError("ValidationException", self.streams[0].get_shard_iterator,
                               StreamArn=arn, ShardId=other,
                               ShardIteratorType="AT_SEQUENCE_NUMBER", SequenceNumber=seqs[0])
        streams = self.streams[1]
        latest = streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                            ShardIteratorType="LATEST")["ShardIterator"]
        self.assertEqual(streams.get_records(ShardIterator=latest)["Records"], [])
        client.put_item(TableName=self.table, Item={"pk": {"S": "p"}, "sk": {"S": "later"}})

        def later():
            page = streams.get_records(ShardIterator=latest)
            return page if page["Records"] else None

        page = wait_until(later, SYNC_TIMEOUT_S, "the record after LATEST")
        self.assertEqual([r["dynamodb"]["Keys"]["sk"]["S"] for r in page["Records"]], ["later"])
        self.assertIn("NextShardIterator", page, "an enabled stream's shard stays open")
        # Disabling closes the shards: read to its end, a shard has no next iterator, and a
        # write made after it is not in the stream.
        off = client.update_table(TableName=self.table,
                                  StreamSpecification={"StreamEnabled": False})
        self.assertEqual(off["TableDescription"]["StreamSpecification"], {"StreamEnabled": False})
        self.assertEqual(off["TableDescription"]["LatestStreamArn"], arn)
        self.assertClientError("ValidationException", client.update_table, TableName=self.table,
                               StreamSpecification={"StreamEnabled": False})
        client.put_item(TableName=self.table, Item={"pk": {"S": "p"}, "sk": {"S": "unrecorded"}})
        it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        keys = []
        while it:
            page = streams.get_records(ShardIterator=it)
            keys += [r["dynamodb"]["Keys"]["sk"]["S"] for r in page["Records"]]
            it = page.get("NextShardIterator")
        self.assertEqual(keys, [str(i) for i in range(5)] + ["later"])
        self.assertEqual(streams.describe_stream(StreamArn=arn)["StreamDescription"]
                         ["StreamStatus"], "DISABLED")
        on = client.update_table(TableName=self.table,
                                 StreamSpecification={"StreamEnabled": True,
                                                      "StreamViewType": "NEW_IMAGE"})
        second = on["TableDescription"]["LatestStreamArn"]
        self.assertNotEqual(second, arn, "re-enabling makes a new stream")
        self.assertEqual([s["StreamArn"] for s in
                          streams.list_streams(TableName=self.table)["Streams"]], [arn, second])

    def test_a_write_made_while_its_primary_is_down_is_recorded_when_handed_back(self):
        arn = self.create_streamed("NEW_IMAGE", sk="sk")["LatestStreamArn"]
        client = self.next_client()
        client.put_item(TableName=self.table, Item={"pk": {"S": "p"}, "sk": {"S": "1"}})

        def primary():
            for shard, records in self.by_shard(arn).items():
                if records:
                    return shard
            return None

        shard = wait_until(primary, SYNC_TIMEOUT_S, "the partition's first record")
        node = int(shard.rsplit("-", 1)[1])
        via = next(p for i, p in enumerate(self.ports) if i + 1 != node)
        self.post(via, f"/admin/nodes/{node}/crash")
        survivor = make_client(via)
        survivor.put_item(TableName=self.table, Item={"pk": {"S": "p"}, "sk": {"S": "2"}})
        once = boto3.session.Session().client(
            "dynamodbstreams", endpoint_url=f"http://{HOST}:{via}", region_name="us-east-1",
            aws_access_key_id="kvsim-test", aws_secret_access_key="kvsim-test",
            config=Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=20))
        it = once.get_shard_iterator(StreamArn=arn, ShardId=shard,
                                     ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        self.assertClientError("ServiceUnavailable", once.get_records, ShardIterator=it)
        self.post(via, f"/admin/nodes/{node}/restart")

        def handed_back():
            try:
                records = self.shard_records(arn, shard, make_streams_client(via))
            except ClientError:
                return None  # the node is still starting
            keys = [r["dynamodb"]["Keys"]["sk"]["S"] for r in records]
            return keys if keys == ["1", "2"] else None

        wait_until(handed_back, STARTUP_TIMEOUT_S, "the handed-back write's record")


@unittest.skipIf(MODE == "dynamo", "item versions are vector clocks in --mode dynamo, not log indexes")
class VersionTest(KvsimTestCase):
    """Item versions through boto3: every item read and write answers `x-kvsim-version` (the
    log index of the item's last write), and `x-kvsim-expected-version` on a write makes it
    conditional on that version at apply, through a follower too."""

    def versioned_client(self, port: int, expected: list):
        """A client for `port` whose writes send expected[0] (when set) as the expected
        version."""
        client = make_client(port)

        def add_header(request, **_):
            if expected and expected[0] is not None:
                request.headers["x-kvsim-expected-version"] = str(expected[0])

        for op in ["PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"]:
            client.meta.events.register(f"before-send.dynamodb.{op}", add_header)
        return client

    @staticmethod
    def version(answer: dict) -> int:
        return int(answer["ResponseMetadata"]["HTTPHeaders"]["x-kvsim-version"])

    def test_writes_can_require_the_version_they_read(self):
        self.create_table(self.table, sk=None)
        expected = [None]
        client = self.versioned_client(self.cluster.follower_ports()[0], expected)
        key = {"pk": {"S": "doc"}}
        first = self.version(client.put_item(TableName=self.table, Item={**key, "n": {"N": "1"}}))
        read = client.get_item(TableName=self.table, Key=key, ConsistentRead=True)
        self.assertEqual(self.version(read), first)
        # A write that expects the version it read goes through and makes a new one.
        expected[0] = first
        second = self.version(client.update_item(
            TableName=self.table, Key=key, UpdateExpression="SET n = :n",
            ExpressionAttributeValues={":n": {"N": "2"}}))
        self.assertGreater(second, first)
        # Expecting the old version again is a conflict, and nothing changes.
        error = self.assertClientError(
            "ConditionalCheckFailedException", client.put_item, TableName=self.table,
            Item={**key, "n": {"N": "99"}})
        self.assertIn(f"version is {second}, not {first}", error["Message"])
        self.assertClientError("ConditionalCheckFailedException", client.delete_item,
                               TableName=self.table, Key=key)
        got = client.get_item(TableName=self.table, Key=key, ConsistentRead=True)
        self.assertEqual((got["Item"]["n"], self.version(got)), ({"N": "2"}, second))
        # Version 0 means "only if it does not exist".
        expected[0] = 0
        self.assertClientError("ConditionalCheckFailedException", client.put_item,
                               TableName=self.table, Item=key)
        client.put_item(TableName=self.table, Item={"pk": {"S": "fresh"}})
        # Only single-item writes take it: a batch would ignore it, so it is refused.
        self.assertClientError("ValidationException", client.batch_write_item, RequestItems={
            self.table: [{"PutRequest": {"Item": {"pk": {"S": "batched"}}}}]})
        expected[0] = "seven"
        self.assertClientError("ValidationException", client.put_item,
                               TableName=self.table, Item=key)


def scrape(port: int) -> dict:
    """`GET /metrics` of the node on `port`, parsed by prometheus-client's OpenMetrics parser:
    {(sample name, frozenset of label pairs): value}."""
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5) as resp:
        content_type = resp.headers["Content-Type"]
        text = resp.read().decode()
    assert content_type.startswith("application/openmetrics-text"), content_type
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


class PartiQLTest(KvsimTestCase):
    """ExecuteStatement: each statement form through boto3 (writes through followers too),
    parameters, paging, the Query-versus-Scan choice seen in consumed capacity, and the errors
    with DynamoDB's messages; and the AWS CLI's execute-statement."""

    def setUp(self):
        super().setUp()
        self.create_table(self.table, pk=("year", "N"), sk=("title", "S"))

    def run_statement(self, statement: str, client=None, **kwargs) -> dict:
        return (client or self.next_client()).execute_statement(Statement=statement, **kwargs)

    def test_insert_select_update_delete(self):
        t = self.table
        for title, rating in [("Alien", 8), ("Aliens", 7), ("Brazil", 9)]:
            out = self.run_statement(
                f"INSERT INTO \"{t}\" VALUE {{'year': 1985, 'title': ?, 'rating': ?, "
                f"'info': {{'genres': ['scifi'], 'tags': <<'a', 'b'>>}}}}",
                Parameters=[{"S": title}, {"N": str(rating)}])
            self.assertEqual(out["Items"], [])
        # INSERT of an existing key fails, and changes nothing.
        error = self.assertClientError(
            "DuplicateItemException", self.next_client().execute_statement,
            Statement=f"INSERT INTO \"{t}\" VALUE {{'year': 1985, 'title': 'Alien', 'rating': 1}}")
        self.assertEqual(error["Message"], "Duplicate primary key exists in table")

        got = self.run_statement(
            f"SELECT title, rating, info.genres[0] FROM \"{t}\" WHERE \"year\" = 1985 "
            "AND begins_with(title, 'Ali') ORDER BY title DESC", ConsistentRead=True)
        self.assertEqual(got["Items"], [
            {"title": {"S": "Aliens"}, "rating": {"N": "7"},
             "info": {"M": {"genres": {"L": [{"S": "scifi"}]}}}},
            {"title": {"S": "Alien"}, "rating": {"N": "8"},
             "info": {"M": {"genres": {"L": [{"S": "scifi"}]}}}},
        ])
        got = self.run_statement(
            f"SELECT title FROM \"{t}\" WHERE rating BETWEEN 8 AND 9 AND NOT title IN ['Brazil'] "
            "AND info.tags IS NOT MISSING AND attribute_type(rating, 'N') AND contains(info.tags, 'a')",
            ConsistentRead=True)
        self.assertEqual(got["Items"], [{"title": {"S": "Alien"}}])

        out = self.run_statement(
            f"UPDATE \"{t}\" SET rating = rating + 1 SET info.tags = set_add(info.tags, <<'c'>>) "
            "REMOVE info.genres WHERE \"year\" = 1985 AND title = 'Alien' RETURNING MODIFIED NEW *")
        self.assertItemEqual(out["Items"][0], {
            "rating": {"N": "9"}, "info": {"M": {"tags": {"SS": ["a", "b", "c"]}}}})
        # The rest of the WHERE is a condition on the write.
        self.assertClientError(
            "ConditionalCheckFailedException", self.next_client().execute_statement,
            Statement=f"UPDATE \"{t}\" SET rating = 0 WHERE \"year\" = 1985 AND title = 'Alien' "
                      "AND rating = 1")
        # ... and with ReturnValuesOnConditionCheckFailure the error carries the item seen.
        with self.assertRaises(ClientError) as ctx:
            self.next_client().execute_statement(
                Statement=f"DELETE FROM \"{t}\" WHERE \"year\" = 1985 AND title = 'Alien' "
                          "AND rating > 100",
                ReturnValuesOnConditionCheckFailure="ALL_OLD")
        self.assertEqual(ctx.exception.response["Error"]["Code"],
                         "ConditionalCheckFailedException")
        self.assertEqual(ctx.exception.response["Item"]["rating"], {"N": "9"})
        # UPDATE and DELETE need an existing item...
        self.assertClientError(
            "ConditionalCheckFailedException", self.next_client().execute_statement,
            Statement=f"UPDATE \"{t}\" SET rating = 0 WHERE \"year\" = 1985 AND title = 'Nope'")
        # ... named by its full key.
        error = self.assertClientError(
            "ValidationException", self.next_client().execute_statement,
            Statement=f"DELETE FROM \"{t}\" WHERE \"year\" = 1985")
        self.assertEqual(error["Message"],
                         "Where clause does not contain a mandatory equality on all key attributes")
        out = self.run_statement(
            f"DELETE FROM \"{t}\" WHERE \"year\" = 1985 AND title = 'Brazil' RETURNING ALL OLD *")
        self.assertEqual(out["Items"][0]["rating"], {"N": "9"})
        left = self.run_statement(f"SELECT title FROM \"{t}\" WHERE \"year\" = 1985",
                                  ConsistentRead=True)["Items"]
        self.assertEqual(left, [{"title": {"S": "Alien"}}, {"title": {"S": "Aliens"}}])
        # Every node answers the same once it has applied the writes.
        self.cluster.sync()
        for _, client in self.all_clients():
            self.assertEqual(self.run_statement(
                f"SELECT title FROM \"{t}\" WHERE \"year\" = 1985", client=client)["Items"], left)

    def test_paging_and_the_query_versus_scan_choice(self):
        t = self.table
        client = make_client(self.cluster.leader_port())
        for year in range(2000, 2010):
            for i in range(5):
                client.put_item(TableName=t, Item={
                    "year": {"N": str(year)}, "title": {"S": f"m{i}"}, "pad": {"S": "x" * 3000}})
        # An equality on the partition key runs a Query: it reads that partition only.
        query = client.execute_statement(
            Statement=f"SELECT * FROM \"{t}\" WHERE \"year\" = 2003",
            ReturnConsumedCapacity="TOTAL", ConsistentRead=True)
        self.assertEqual(len(query["Items"]), 5)
        # Anything else runs a Scan: it reads the whole table, whatever it returns.
        scan = client.execute_statement(
            Statement=f"SELECT * FROM \"{t}\" WHERE \"year\" > 2002 AND \"year\" < 2004",
            ReturnConsumedCapacity="TOTAL", ConsistentRead=True)
        self.assertEqual(len(scan["Items"]), 5)
        self.assertGreater(scan["ConsumedCapacity"]["CapacityUnits"],
                           5 * query["ConsumedCapacity"]["CapacityUnits"])
        # Paging with Limit and NextToken visits every item once.
        seen, token, pages = [], None, 0
        while True:
            kwargs = {"NextToken": token} if token else {}
            page = client.execute_statement(Statement=f"SELECT \"year\", title FROM \"{t}\"",
                                            Limit=7, **kwargs)
            pages += 1
            seen += [(i["year"]["N"], i["title"]["S"]) for i in page["Items"]]
            token = page.get("NextToken")
            if not token:
                break
        self.assertEqual(len(seen), 50)
        self.assertEqual(len(set(seen)), 50)
        self.assertGreaterEqual(pages, 8)
        # A token continues only the statement (and parameters) it came from.
        token = client.execute_statement(Statement=f"SELECT * FROM \"{t}\"", Limit=3)["NextToken"]
        self.assertClientError("ValidationException", client.execute_statement,
                               Statement=f"SELECT title FROM \"{t}\"", NextToken=token)

    def test_conditions_on_the_sort_key_beyond_the_key_condition(self):
        t = self.table
        client = make_client(self.cluster.leader_port())
        for i in range(10):
            client.put_item(TableName=t, Item={"year": {"N": "7"}, "title": {"S": f"m{i}"},
                                               "n": {"N": str(i)}})

        def titles(where: str) -> list[str]:
            got = client.execute_statement(
                Statement=f"SELECT title FROM \"{t}\" WHERE \"year\" = 7 AND {where}",
                ConsistentRead=True)["Items"]
            return [i["title"]["S"] for i in got]

        # More than one condition on the sort key, and ones a key condition cannot take.
        self.assertEqual(titles("title > 'm2' AND title < 'm6'"), ["m3", "m4", "m5"])
        self.assertEqual(titles("title <> 'm0' AND n < 3"), ["m1", "m2"])
        self.assertEqual(titles("title IN ['m1', 'm8', 'zz']"), ["m1", "m8"])
        self.assertEqual(titles("(title = 'm1' OR title = 'm9')"), ["m1", "m9"])
        # A sort-key value of another type matches nothing (a number is never a string).
        self.assertEqual(titles("title > 5"), [])
        # A long chain of conditions is not mistaken for deep nesting.
        chain = " AND ".join(["n >= 0"] * 150)
        self.assertEqual(len(titles(chain)), 10)
        # A batch reads items by key, not indexes.
        out = client.batch_execute_statement(Statements=[
            {"Statement": f"SELECT * FROM \"{t}\".\"nope\" WHERE \"year\" = 7 AND title = 'm1'"}
        ])["Responses"]
        self.assertEqual(out[0]["Error"]["Code"], "ValidationError")

    def test_select_from_an_index(self):
        t = f"{self.table}_orders"
        self.next_client().create_table(
            TableName=t, BillingMode="PAY_PER_REQUEST",
            KeySchema=key_schema("id", None),
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"},
                                  {"AttributeName": "status", "AttributeType": "S"},
                                  {"AttributeName": "placed", "AttributeType": "N"}],
            GlobalSecondaryIndexes=[{
                "IndexName": "byStatus", "Projection": {"ProjectionType": "ALL"},
                "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"},
                              {"AttributeName": "placed", "KeyType": "RANGE"}]}])
        client = make_client(self.cluster.leader_port())
        for i in range(6):
            client.execute_statement(
                Statement=f"INSERT INTO \"{t}\" VALUE {{'id': ?, 'status': ?, 'placed': ?}}",
                Parameters=[{"S": f"o{i}"}, {"S": "open" if i % 2 else "done"}, {"N": str(i)}])
        # Global indexes take no consistent reads (as in DynamoDB): wait until every node has
        # applied the inserts, then read.
        self.cluster.sync()
        self.assertClientError(
            "ValidationException", client.execute_statement,
            Statement=f"SELECT id FROM \"{t}\".\"byStatus\" WHERE status = 'open'",
            ConsistentRead=True)
        # A Query of the index: its partition key fixed, its sort key ordered and bounded.
        got = client.execute_statement(
            Statement=f"SELECT id, placed FROM \"{t}\".\"byStatus\" WHERE status = 'open' "
                      "AND placed > 1 ORDER BY placed DESC")["Items"]
        self.assertEqual([(i["id"]["S"], i["placed"]["N"]) for i in got],
                         [("o5", "5"), ("o3", "3")])
        # Without the index's partition key: a Scan of the index.
        got = client.execute_statement(
            Statement=f"SELECT id FROM \"{t}\".\"byStatus\" WHERE placed >= 4")["Items"]
        self.assertEqual(sorted(i["id"]["S"] for i in got), ["o4", "o5"])
        error = self.assertClientError(
            "ValidationException", client.execute_statement,
            Statement=f"SELECT * FROM \"{t}\".\"nope\" WHERE status = 'open'")
        self.assertEqual(error["Message"], "The table does not have the specified index: nope")

    def test_errors_say_what_was_wrong(self):
        t = self.table
        cases = [
            ("SELEC * FROM x", [],
             "Statement wasn't well formed, can't be processed: Expected data manipulation"),
            (f"SELECT * FROM \"{t}\" WHERE title = = 'a'", [],
             "Statement wasn't well formed, can't be processed: Unexpected token: = at position"),
            (f"SELECT * FROM \"{t}\" WHERE title = ?", [],
             "Number of parameters in request and statement don't match."),
            (f"SELECT * FROM \"{t}\" WHERE title = 'open", [],
             "Statement wasn't well formed, can't be processed: Unterminated quote"),
        ]
        for statement, params, message in cases:
            kwargs = {"Parameters": params} if params else {}
            error = self.assertClientError("ValidationException",
                                           self.next_client().execute_statement,
                                           Statement=statement, **kwargs)
            self.assertTrue(error["Message"].startswith(message), (statement, error["Message"]))
        self.assertClientError("ResourceNotFoundException", self.next_client().execute_statement,
                               Statement='SELECT * FROM "no_such_table"')

    @unittest.skipIf(MODE == "dynamo", "transactions need --mode raft (LeaderlessModeTest checks the rejection)")
    def test_transactions_all_or_nothing(self):
        t = self.table
        client = self.next_client()
        ins = f"INSERT INTO \"{t}\" VALUE {{'year': 1, 'title': ?, 'bal': ?}}"
        client.execute_transaction(TransactStatements=[
            {"Statement": ins, "Parameters": [{"S": "a"}, {"N": "10"}]},
            {"Statement": ins, "Parameters": [{"S": "b"}, {"N": "0"}]}])
        move = [
            {"Statement": f"UPDATE \"{t}\" SET bal = bal - 4 WHERE \"year\" = 1 AND title = 'a' "
                          "AND bal >= 4"},
            {"Statement": f"UPDATE \"{t}\" SET bal = bal + 4 WHERE \"year\" = 1 AND title = 'b'"},
        ]
        # A retry with the same ClientRequestToken applies once.
        for _ in range(2):
            self.next_client().execute_transaction(TransactStatements=move,
                                                   ClientRequestToken="move-once")
        reads = self.next_client().execute_transaction(TransactStatements=[
            {"Statement": f"SELECT bal FROM \"{t}\" WHERE \"year\" = 1 AND title = 'a'"},
            {"Statement": f"SELECT bal FROM \"{t}\" WHERE \"year\" = 1 AND title = 'b'"},
            {"Statement": f"SELECT bal FROM \"{t}\" WHERE \"year\" = 1 AND title = 'none'"}])
        self.assertEqual(reads["Responses"], [{"Item": {"bal": {"N": "6"}}},
                                              {"Item": {"bal": {"N": "4"}}}, {}])
        # A failed condition and a duplicate INSERT cancel everything, with a reason each.
        with self.assertRaises(ClientError) as ctx:
            self.next_client().execute_transaction(TransactStatements=[
                {"Statement": f"UPDATE \"{t}\" SET bal = 0 WHERE \"year\" = 1 AND title = 'a' "
                              "AND bal > 100"},
                {"Statement": ins, "Parameters": [{"S": "b"}, {"N": "1"}]},
                {"Statement": ins, "Parameters": [{"S": "c"}, {"N": "1"}]},
                {"Statement": f"EXISTS(SELECT * FROM \"{t}\" WHERE \"year\" = 1 "
                              "AND title = 'none')"}])
        error = ctx.exception.response
        self.assertEqual(error["Error"]["Code"], "TransactionCanceledException")
        self.assertEqual([r["Code"] for r in error["CancellationReasons"]],
                         ["ConditionalCheckFailed", "DuplicateItem", "None",
                          "ConditionalCheckFailed"])
        self.assertEqual(error["Error"]["Message"],
                         "Transaction cancelled, please refer cancellation reasons for specific "
                         "reasons [ConditionalCheckFailed, DuplicateItem, None, "
                         "ConditionalCheckFailed]")
        got = self.next_client().execute_statement(
            Statement=f"SELECT title, bal FROM \"{t}\" WHERE \"year\" = 1",
            ConsistentRead=True)["Items"]
        self.assertEqual(got, [{"title": {"S": "a"}, "bal": {"N": "6"}},
                               {"title": {"S": "b"}, "bal": {"N": "4"}}])
        self.assertClientError("ValidationException", self.next_client().execute_transaction,
                               TransactStatements=[move[0], {"Statement": f"SELECT * FROM \"{t}\""}])

    def test_batches_answer_each_statement(self):
        t = self.table
        ins = f"INSERT INTO \"{t}\" VALUE {{'year': 2, 'title': ?}}"
        out = self.next_client().batch_execute_statement(Statements=[
            {"Statement": ins, "Parameters": [{"S": "x"}]},
            {"Statement": ins, "Parameters": [{"S": "y"}]},
            {"Statement": ins, "Parameters": [{"S": "x"}]},
            {"Statement": f"UPDATE \"{t}\" SET n = 1 WHERE \"year\" = 2 AND title = 'none'"},
            {"Statement": "SELEC oops"},
        ])["Responses"]
        self.assertEqual([r.get("Error", {}).get("Code") for r in out],
                         [None, None, "DuplicateItem", "ConditionalCheckFailed", "ValidationError"])
        self.assertEqual(out[0]["TableName"], t)
        out = self.next_client().batch_execute_statement(Statements=[
            {"Statement": f"SELECT title FROM \"{t}\" WHERE \"year\" = 2 AND title = ?",
             "Parameters": [{"S": name}], "ConsistentRead": True} for name in ("x", "y", "z")
        ])["Responses"]
        self.assertEqual([r.get("Item") for r in out],
                         [{"title": {"S": "x"}}, {"title": {"S": "y"}}, None])
        # The capacity of the batch is its statements' together, the table's share too.
        out = self.next_client().batch_execute_statement(Statements=[
            {"Statement": f"SELECT title FROM \"{t}\" WHERE \"year\" = 2 AND title = ?",
             "Parameters": [{"S": name}]} for name in ("x", "y")
        ], ReturnConsumedCapacity="INDEXES")["ConsumedCapacity"]
        self.assertEqual(len(out), 1)
        self.assertEqual(out[0]["CapacityUnits"], 1.0)
        self.assertEqual(out[0]["Table"]["CapacityUnits"], 1.0)
        # A read names one item; reads and writes do not mix.
        out = self.next_client().batch_execute_statement(Statements=[
            {"Statement": f"SELECT * FROM \"{t}\" WHERE \"year\" = 2"}])["Responses"]
        self.assertEqual(out[0]["Error"]["Code"], "ValidationError")
        self.assertClientError("ValidationException", self.next_client().batch_execute_statement,
                               Statements=[{"Statement": ins, "Parameters": [{"S": "w"}]},
                                           {"Statement": f"SELECT * FROM \"{t}\""}])

    def test_the_aws_cli_execute_statement(self):
        t = self.table
        port = self.cluster.follower_ports()[0]
        self.run_statement(f"INSERT INTO \"{t}\" VALUE {{'year': 2001, 'title': 'Odyssey'}}")
        got = AwsCliTest.aws(self, port, "execute-statement", "--statement",
                             f"SELECT title FROM \"{t}\" WHERE \"year\" = ?",
                             "--parameters", '[{"N": "2001"}]', "--consistent-read")
        self.assertEqual(got["Items"], [{"title": {"S": "Odyssey"}}])


@unittest.skipIf(MODE == "dynamo", "Raft's metrics (LeaderlessModeTest checks --mode dynamo's)")
class MetricsTest(KvsimTestCase):
    """`GET /metrics` on every node, read by a real Prometheus parser: the counters move with
    the work done, and the Raft gauges agree with the status."""

    def test_counters_move_with_the_work_done(self):
        self.create_table(self.table, sk=None)
        leader = self.cluster.leader_port()
        follower = self.cluster.follower_ports()[0]
        ok_puts = ("kvsim_requests_total",
                   frozenset({("operation", "PutItem"), ("outcome", "ok")}))
        forwarded = ("kvsim_forwarded_requests_total", frozenset({("operation", "PutItem")}))
        before = {port: scrape(port) for port in self.ports}
        n = 7
        for i in range(n):
            make_client(leader).put_item(TableName=self.table, Item={"pk": {"S": f"k{i}"}})
        # Through a follower: it counts one forwarded PutItem, the leader one more answered.
        self.cluster.clients[self.ports.index(follower)].put_item(
            TableName=self.table, Item={"pk": {"S": "via-follower"}})
        self.assertClientError("ResourceNotFoundException", make_client(leader).put_item,
                               TableName=self.table + "_missing", Item={"pk": {"S": "x"}})
        after = {port: scrape(port) for port in self.ports}

        self.assertEqual(after[leader][ok_puts] - before[leader].get(ok_puts, 0), n + 1)
        self.assertEqual(after[follower][forwarded] - before[follower].get(forwarded, 0), 1)
        missing = ("kvsim_requests_total", frozenset(
            {("operation", "PutItem"), ("outcome", "ResourceNotFoundException")}))
        self.assertEqual(after[leader][missing] - before[leader].get(missing, 0), 1)
        count = ("kvsim_request_duration_seconds_count", frozenset({("operation", "PutItem")}))
        self.assertGreaterEqual(after[leader][count] - before[leader].get(count, 0), n + 2)
        # Entries applied and fsyncs move on every node: each applies and persists the writes.
        for port in self.ports:
            for name in ["kvsim_raft_entries_applied_total", "kvsim_fsyncs_total"]:
                key = (name, frozenset())
                self.assertGreater(after[port][key], before[port][key], f"{name} on {port}")

        # The leader sent appends to both followers, and every node timed its fsyncs.
        for follower_id in [get_status(p)["node_id"] for p in self.ports if p != leader]:
            appends = ("kvsim_raft_messages_sent_total",
                       frozenset({("peer", str(follower_id)), ("msg_type", "MsgAppend")}))
            self.assertGreater(after[leader][appends], before[leader].get(appends, 0))
        for port in self.ports:
            fsyncs = ("kvsim_fsync_duration_seconds_count", frozenset())
            self.assertGreater(after[port][fsyncs], before[port][fsyncs], f"fsyncs on {port}")

        # Exactly one node reports itself leader, and every node's gauges match its status.
        leaders = [p for p in self.ports
                   if after[p][("kvsim_raft_role", frozenset({("role", "leader")}))] == 1]
        self.assertEqual(leaders, [leader])
        items = ("kvsim_table_items", frozenset({("table", self.table)}))
        for port in self.ports:
            wait_until(lambda: scrape(port).get(items) == n + 1, 10,
                       f"node on {port} to count {n + 1} items in {self.table}")
            status = get_status(port)
            self.assertEqual(scrape(port)[("kvsim_raft_term", frozenset())], status["term"])


class _Result(unittest.TextTestResult):
    """Marks the cluster as failed so that tearDownModule prints the server's log."""

    def _mark(self):
        if CLUSTER is not None:
            CLUSTER.failed = True

    def addError(self, test, err):  # noqa: N802
        self._mark()
        super().addError(test, err)

    def addFailure(self, test, err):  # noqa: N802
        self._mark()
        super().addFailure(test, err)

    def addSubTest(self, test, subtest, err):  # noqa: N802
        if err is not None:
            self._mark()
        super().addSubTest(test, subtest, err)


def main() -> int:
    try:
        find_binary()
    except RuntimeError as e:
        print(f"test_boto3: {e}", file=sys.stderr)
        print("boto3: 0 passed, 1 failed")
        return 2
    runner = unittest.TextTestRunner(resultclass=_Result, verbosity=2)
    result = unittest.main(module=__name__, testRunner=runner, exit=False).result

    def test_id(test):
        return test.test_case.id() if hasattr(test, "test_case") else test.id()

    # Failed tests, counted once however many subtests failed, plus failed module fixtures.
    bad = [t for t, _ in result.failures + result.errors] + list(result.unexpectedSuccesses)
    bad_tests = {test_id(t) for t in bad if isinstance(t, unittest.TestCase)}
    bad_fixtures = {t.id() for t in bad if not isinstance(t, unittest.TestCase)}
    skipped = len(result.skipped)
    passed = result.testsRun - len(bad_tests) - skipped
    failed = len(bad_tests) + len(bad_fixtures)
    sys.stderr.flush()
    print(f"boto3: {passed} passed, {failed} failed, {skipped} skipped", flush=True)
    return 0 if result.wasSuccessful() and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
