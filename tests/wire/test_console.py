"""The web console in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`) driven by selenium against a real three-node kvsim server.

It opens the console at `GET /`, sees three nodes and one leader, crashes the leader with its
button and sees another node elected within seconds (the page moves to a live node when the
one that served it is the one crashed), restarts the crashed node, then browses a table,
edits an item in the browser and checks the edit through boto3. The same page against a
`--mode dynamo` cluster draws three replicas and no leader, shows the survivors suspecting a
crashed node and clearing it after its restart, and saves an item. Screenshots go to
`target/console-screenshots/` (or `$KVSIM_SCREENSHOTS`).

Run: KVSIM_BIN=target/debug/kvsim .venv/bin/python tests/wire/test_console.py
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
import unittest

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_boto3 import Cluster, find_binary, wait_until  # noqa: E402

CHROMIUM = os.environ.get("KVSIM_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("KVSIM_CHROMEDRIVER", "/usr/bin/chromedriver")
SCREENSHOTS = os.environ.get("KVSIM_SCREENSHOTS", "target/console-screenshots")
# Long enough for an election on a loaded two-core machine, short enough to fail usefully.
ELECTION_TIMEOUT_S = 20


def browser(profile: str) -> webdriver.Chrome:
    """Headless Chromium with nothing reaching outside this machine."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--window-size=1400,1300", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def roles(driver) -> dict[int, str]:
    """Each node card's role as the page shows it."""
    try:
        return {int(c.get_attribute("data-node")): c.get_attribute("data-role")
                for c in driver.find_elements(By.CSS_SELECTOR, "#nodes .card")}
    except StaleElementReferenceException:
        return {}


def card_field(driver, node: int, field: str) -> str | None:
    """What node `node`'s card shows for `field`."""
    try:
        return driver.find_element(
            By.CSS_SELECTOR, f'.card[data-node="{node}"] dd[data-field="{field}"]').text
    except (StaleElementReferenceException, WebDriverException):
        return None


class BrowserCase(unittest.TestCase):
    """A server of `MODE` and a browser, for the whole class."""
    MODE = "raft"
    cluster: Cluster
    driver: webdriver.Chrome

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(find_binary(), cls.MODE)
        atexit.register(cls.cluster.cleanup)
        cls.cluster.start()
        cls.profile = tempfile.mkdtemp(prefix="kvsim-chromium-")
        try:
            cls.driver = browser(cls.profile)
        except WebDriverException:
            cls.cluster.cleanup()
            raise
        os.makedirs(SCREENSHOTS, exist_ok=True)

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()
        shutil.rmtree(cls.profile, ignore_errors=True)
        cls.cluster.cleanup()

    def run(self, result=None):
        outcome = super().run(result)
        if result is not None and not result.wasSuccessful():
            self.cluster.print_log_tail("a console test failed")
            self.shot("failure")
        return outcome

    def shot(self, name: str) -> None:
        path = os.path.join(SCREENSHOTS, f"{name}.png")
        try:
            self.driver.save_screenshot(path)
            print(f"test_console: screenshot {path}", file=sys.stderr)
        except WebDriverException as e:
            print(f"test_console: no screenshot {path}: {e}", file=sys.stderr)

    def wait(self, predicate, what: str, timeout: float = 10):
        return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(
            lambda d: predicate(d), message=f"waiting for {what}")


class ConsoleTest(BrowserCase):

    def test_crash_the_leader_restart_it_and_edit_an_item(self):
        c = self.cluster
        client = c.client(c.ports[0])
        client.create_table(
            TableName="Orders",
            KeySchema=[{"AttributeName": "customer", "KeyType": "HASH"},
                       {"AttributeName": "order", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "customer", "AttributeType": "S"},
                                  {"AttributeName": "order", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST")
        for i in range(3):
            client.put_item(TableName="Orders", Item={
                "customer": {"S": "alice"}, "order": {"S": f"o{i}"}, "total": {"N": str(10 + i)}})
        leader = c.leader_port()
        leader_id = c.ports.index(leader) + 1

        # The page is served by the leader's own port, so crashing the leader also takes
        # down the node the page talks to: it must carry on through another node.
        d = self.driver
        d.get(f"http://127.0.0.1:{leader}/")
        self.assertEqual(d.title, "kvsim console")
        self.wait(lambda d: len(roles(d)) == 3 and list(roles(d).values()).count("leader") == 1
                  and roles(d)[leader_id] == "leader", "three nodes, the leader drawn")
        self.assertEqual(len(d.find_elements(By.CSS_SELECTOR, "#cluster g.node")), 3)
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, '#timeline li[data-kind="leader_elected"]'),
                  "the election in the timeline")
        self.shot("cluster")

        d.find_element(By.CSS_SELECTOR,
                       f'.card[data-node="{leader_id}"] button[data-action="crash"]').click()
        new_leader = self.wait(
            lambda d: next((n for n, r in roles(d).items() if r == "leader" and n != leader_id), None),
            "another node to become leader", timeout=ELECTION_TIMEOUT_S)
        self.wait(lambda d: roles(d).get(leader_id) == "down", "the crashed node drawn down")
        # The page's view is the cluster's: the survivors agree on the new leader.
        def survivors_agree():
            agreeing = [s for s in c.statuses() if s is not None and s["leader_id"] == new_leader]
            return agreeing if len(agreeing) == 2 else None
        wait_until(survivors_agree, ELECTION_TIMEOUT_S, "both survivors to follow the new leader")
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, '#timeline li[data-kind="node_crashed"]'),
                  "the crash in the timeline")
        self.shot("after-crash")

        d.find_element(By.CSS_SELECTOR,
                       f'.card[data-node="{leader_id}"] button[data-action="restart"]').click()
        self.wait(lambda d: roles(d).get(leader_id) in ("follower", "leader"),
                  "the restarted node back in the cluster", timeout=ELECTION_TIMEOUT_S)
        wait_until(lambda: all(s is not None for s in c.statuses()), ELECTION_TIMEOUT_S,
                   "every node to answer again")

        # The data browser: pick the table, read it, edit one item.
        d.find_element(By.ID, "refresh-tables").click()
        self.wait(lambda d: "Orders" in [o.text for o in Select(d.find_element(By.ID, "tables")).options],
                  "the table in the list")
        Select(d.find_element(By.ID, "tables")).select_by_value("Orders")
        row = self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, '#items tr[data-key="alice/o1"]'),
                        "the items")[0]
        self.assertEqual(len(d.find_elements(By.CSS_SELECTOR, "#items tbody tr")), 3)
        row.click()
        editor = d.find_element(By.ID, "item-json")
        item = json.loads(editor.get_attribute("value"))
        self.assertEqual(item["total"], {"N": "11"})
        item["total"] = {"N": "99"}
        item["note"] = {"S": "edited in the browser"}
        editor.clear()
        editor.send_keys(json.dumps(item))
        d.find_element(By.ID, "save-item").click()
        self.wait(lambda d: d.find_element(By.ID, "data-note").text == "saved", "the save")
        got = wait_until(lambda: c.client(c.ports[0]).get_item(
            TableName="Orders", Key={"customer": {"S": "alice"}, "order": {"S": "o1"}},
            ConsistentRead=True).get("Item"), 10, "the edited item")
        self.assertEqual(got["total"], {"N": "99"})
        self.assertEqual(got["note"], {"S": "edited in the browser"})

        # A follower's consistent read from the browser sees the edit too.
        follower = next(p for p in c.follower_ports())
        Select(d.find_element(By.ID, "read-node")).select_by_value(str(c.ports.index(follower) + 1))
        d.find_element(By.ID, "consistent").click()
        d.find_element(By.ID, "run-read").click()
        self.wait(lambda d: "consistent read" in d.find_element(By.ID, "data-note").text
                  and "eventually" not in d.find_element(By.ID, "data-note").text,
                  "a consistent read from the follower")
        cells = [td.text for td in d.find_elements(By.CSS_SELECTOR, '#items tr[data-key="alice/o1"] td')]
        self.assertIn("99", cells)
        self.shot("data")

        # Readable in a dark system theme: the page follows it.
        background = lambda: d.execute_script(  # noqa: E731
            "return getComputedStyle(document.body).backgroundColor")
        light = background()
        d.execute_cdp_cmd("Emulation.setEmulatedMedia", {
            "features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        self.wait(lambda d: background() != light, "the dark theme")
        d.execute_script("window.scrollTo(0, 0)")
        self.shot("dark")


class LeaderlessConsoleTest(BrowserCase):
    MODE = "dynamo"

    def test_replicas_suspect_a_crashed_node_and_clear_it_after_restart(self):
        c = self.cluster
        client = c.client(c.ports[0])
        client.create_table(
            TableName="Notes",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST")
        d = self.driver
        d.get(f"http://127.0.0.1:{c.ports[0]}/")
        self.assertEqual(d.title, "kvsim console")
        self.wait(lambda d: roles(d) == {1: "replica", 2: "replica", 3: "replica"},
                  "three replicas and no leader")
        self.wait(lambda d: "leaderless · N=3 R=2 W=2" in d.find_element(By.ID, "summary").text,
                  "the quorum settings in place of a leader")
        legend = d.find_element(By.ID, "legend").text
        self.assertIn("gossip", legend)
        self.assertNotIn("vote", legend)
        transfer = d.find_element(By.CSS_SELECTOR, '.card[data-node="1"] button[data-action="transfer"]')
        self.assertFalse(transfer.is_displayed(), "no leader to make in --mode dynamo")
        self.wait(lambda d: card_field(d, 1, "suspects") == "none", "node 1 suspecting no one")
        self.shot("dynamo-cluster")

        d.find_element(By.CSS_SELECTOR, '.card[data-node="3"] button[data-action="crash"]').click()
        self.wait(lambda d: roles(d).get(3) == "down", "the crashed node drawn down")
        self.wait(lambda d: card_field(d, 1, "suspects") == "3" and card_field(d, 2, "suspects") == "3",
                  "the survivors suspecting node 3")
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, '#timeline li[data-kind="peer_suspected"]'),
                  "the suspicion in the timeline")
        self.shot("dynamo-after-crash")

        d.find_element(By.CSS_SELECTOR, '.card[data-node="3"] button[data-action="restart"]').click()
        self.wait(lambda d: roles(d).get(3) == "replica", "the restarted node back", timeout=20)
        self.wait(lambda d: all(card_field(d, n, "suspects") == "none" for n in (1, 2, 3)),
                  "every node seeing every other again", timeout=20)

        # The data browser works the same: save an item from the page, read it with boto3.
        d.find_element(By.ID, "refresh-tables").click()
        self.wait(lambda d: "Notes" in [o.text for o in Select(d.find_element(By.ID, "tables")).options],
                  "the table in the list")
        Select(d.find_element(By.ID, "tables")).select_by_value("Notes")
        self.wait(lambda d: "Scan: 0 item(s)" in d.find_element(By.ID, "data-note").text, "an empty table")
        d.find_element(By.ID, "new-item").click()
        editor = d.find_element(By.ID, "item-json")
        editor.clear()
        editor.send_keys(json.dumps({"id": {"S": "n1"}, "text": {"S": "saved from the console"}}))
        d.find_element(By.ID, "save-item").click()
        self.wait(lambda d: d.find_element(By.ID, "data-note").text == "saved", "the save")
        got = c.client(c.ports[2]).get_item(TableName="Notes", Key={"id": {"S": "n1"}},
                                            ConsistentRead=True)
        self.assertEqual(got["Item"]["text"], {"S": "saved from the console"})
        self.shot("dynamo-data")


if __name__ == "__main__":
    unittest.main()
