"""Drives the web console in headless Chromium against a real node.

Started by scripts/console-test.sh:

    console_test.py SHALE_BIN OUT_DIR [--auth]

Starts `shale serve` on a free port (a temporary data dir, small segments
and a small hot tier so some lag is only in the object store), fills it
through the API (a NORMAL topic with lag split hot/cold, a group with acks,
retries and two dead letters, a DELAY topic with pending timers), then loads
every page, checks that it shows the node's data, recalls a timer and sends
a dead letter back through the UI (checked through the API), writes a
screenshot of each page to OUT_DIR and fails on any browser console error.

With --auth the node has an auth file: the console must ask for the token
on its first 401, and every page then loads with it.

The only browser-log entries tolerated are the network-level lines Chrome
writes for answers the console expects and handles: the 401 that makes it
ask for the token (with --auth), and the 404 MESSAGE_NOT_FOUND of
`GET .../send-back` for a dead letter not sent back yet. Any script error,
any other failed request, fails the run.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

WAIT_S = 20


def log(msg):
    print(f"console-test: {msg}", flush=True)


class Node:
    """A `shale serve` process on a free port."""

    def __init__(self, shale, work, auth_file=None):
        cmd = [shale, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(work / "data"),
               "--segment-bytes", "64KiB", "--hot-bytes", "512KiB", "--flush-interval-ms", "250ms"]
        if auth_file:
            cmd += ["--auth-file", str(auth_file)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHALE_")}
        self.err = open(work / "node.err", "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.err, env=env)
        line = self.proc.stdout.readline().decode()
        m = re.match(r"shale listening on (\S+)", line)
        if not m:
            self.stop()
            raise SystemExit(f"the node did not start: {line!r}")
        self.url = m.group(1)
        self.token = None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()

    def call(self, method, path, body=None, ok=(200, 201, 204)):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if body is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        for attempt in range(50):
            try:
                with urllib.request.urlopen(req, timeout=40) as resp:
                    text = resp.read()
                    if resp.status not in ok:
                        raise AssertionError(f"{method} {path}: {resp.status} {text[:300]!r}")
                    return json.loads(text) if text else None
            except urllib.error.HTTPError as e:
                text = e.read()
                # The hot tier over its budget until the next upload: retry.
                if e.code == 503 and attempt < 49:
                    time.sleep(0.2)
                    continue
                if e.code in ok:
                    return json.loads(text) if text else None
                raise AssertionError(f"{method} {path}: {e.code} {text[:300]!r}") from None
        raise AssertionError(f"{method} {path}: still 503")


def q(name):
    return urllib.request.quote(name, safe="")


def fill(node):
    """Topics, a group with hot and cold lag, dead letters, pending timers."""
    node.call("POST", "/v1/topics", {"name": "orders", "queues": 4})
    node.call("POST", "/v1/topics", {"name": "reminders", "queues": 2, "message_type": "DELAY"})
    body = "x" * 600
    for batch in range(30):
        msgs = [{"body": f"order {batch * 50 + i} <b>not bold</b> {body}", "tag": "created",
                 "keys": [f"order-{batch * 50 + i}"], "properties": {"region": "eu"}}
                for i in range(50)]
        node.call("POST", "/v1/topics/orders/messages", {"messages": msgs})
    node.call("PUT", "/v1/groups/billing", {"consume_from": "EARLIEST", "max_delivery_attempts": 1,
                                            "retry_backoff_ms": [500]})
    got = node.call("POST", "/v1/groups/billing/receive",
                    {"topic": "orders", "max_messages": 20, "invisible_ms": 60000})["messages"]
    assert len(got) == 20, len(got)
    handles = [m["receipt_handle"] for m in got]
    node.call("POST", "/v1/groups/billing/ack", {"topic": "orders", "receipt_handles": handles[:17]})
    for h in handles[17:]:
        node.call("POST", "/v1/groups/billing/change-invisibility",
                  {"topic": "orders", "receipt_handle": h, "invisible_ms": 0})
    time.sleep(0.8)
    # The nacked messages had their one attempt: this receive dead-letters them.
    more = node.call("POST", "/v1/groups/billing/receive",
                     {"topic": "orders", "max_messages": 5, "invisible_ms": 60000})["messages"]
    node.call("POST", "/v1/groups/billing/ack",
              {"topic": "orders", "receipt_handles": [m["receipt_handle"] for m in more]})
    deadline = time.time() + WAIT_S
    while True:
        dlq = node.call("GET", "/v1/topics/" + q("%DLQ%billing"), ok=(200, 404)) or {}
        if sum(x["max_offset"] for x in dlq.get("queues", [])) >= 3:
            break
        assert time.time() < deadline, "no dead letters"
        node.call("POST", "/v1/groups/billing/receive",
                  {"topic": "orders", "max_messages": 1, "invisible_ms": 60000})
        time.sleep(0.3)
    later = [{"body": f"reminder {i}", "delay_ms": 3_600_000 + i * 60_000, "keys": [f"r-{i}"],
              "tag": "remind"} for i in range(3)]
    node.call("POST", "/v1/topics/reminders/messages", {"messages": later})
    # Wait for uploads and eviction: some of billing's lag must be cold.
    deadline = time.time() + WAIT_S
    while True:
        total = node.call("GET", "/v1/groups/billing/offsets?topic=orders")["total"]
        if total["lag_cold"] > 0 and total["lag_hot"] > 0:
            return total
        assert time.time() < deadline, f"no cold lag: {total}"
        time.sleep(0.3)


def browser(out):
    opts = webdriver.ChromeOptions()
    for arg in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1360,1000",
                f"--user-data-dir={tempfile.mkdtemp(prefix='shale-chromium-')}"]:
        opts.add_argument(arg)
    opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    d = webdriver.Chrome(options=opts, service=service)
    d.set_page_load_timeout(WAIT_S)
    d.set_script_timeout(WAIT_S)
    return d


class Console:
    def __init__(self, driver, node, out, auth):
        self.d, self.node, self.out, self.auth = driver, node, out, auth
        self.problems = []

    def wait(self, cond, what):
        try:
            return WebDriverWait(self.d, WAIT_S).until(cond)
        except Exception:
            self.shot("failed-" + re.sub(r"\W+", "-", what))
            raise AssertionError(f"timed out waiting for {what}; page text: {self.text()[:800]!r}")

    def text(self):
        return self.d.find_element(By.TAG_NAME, "main").text

    def go(self, hash_, page):
        self.d.execute_script("document.getElementById('main').dataset.ready = '';"
                              f"location.hash = {json.dumps(hash_)};")
        self.wait(lambda d: d.find_element(By.ID, "main").get_attribute("data-ready") == page,
                  f"page {hash_}")

    def shows(self, *texts):
        for t in texts:
            self.wait(lambda d: t in self.text(), f"{t!r} on the page")

    def shot(self, name):
        path = self.out / f"{'auth-' if self.auth else ''}{name}.png"
        self.d.save_screenshot(str(path))
        log(f"screenshot {path}")

    def check_log(self, also_expected=lambda msg: False):
        """Fails on any browser-log error but the expected network lines."""
        for entry in self.d.get_log("browser"):
            msg = entry.get("message", "")
            if entry.get("level") not in ("SEVERE", "WARNING"):
                continue
            expected = "Failed to load resource" in msg and (
                (self.auth and "401" in msg and "/v1/" in msg)
                or ("/send-back" in msg and "404" in msg)
                or also_expected(msg))
            if not expected:
                self.problems.append(msg)
        assert not self.problems, "browser console errors:\n" + "\n".join(self.problems)


def fmt(n):
    return f"{n:,}"


def run(shale, out, auth):
    work = Path(tempfile.mkdtemp(prefix="shale-console-"))
    auth_file = None
    token = None
    if auth:
        auth_file = work / "auth.toml"
        with open(auth_file, "w") as f:
            subprocess.run([shale, "token", "--principal", "console", "--actions", "PUBLISH,SUBSCRIBE,ADMIN",
                            "--topics", "*", "--groups", "*", "--token-file", str(work / "token")],
                           stdout=f, check=True)
        token = (work / "token").read_text().strip()
    node = Node(shale, work, auth_file)
    driver = None
    try:
        log(f"node on {node.url}{' with auth' if auth else ''}")
        node.token = token
        total = fill(node)
        driver = browser(out)
        c = Console(driver, node, out, auth)
        driver.get(node.url + "/")
        if auth:
            dialog = c.wait(ec.visibility_of_element_located((By.ID, "token-dialog")), "the token dialog")
            assert "token" in dialog.text.lower()
            c.shot("token-dialog")
            driver.find_element(By.ID, "token-input").send_keys(token)
            driver.find_element(By.ID, "token-submit").click()
        c.wait(lambda d: d.find_element(By.ID, "main").get_attribute("data-ready") == "topics", "topics")
        c.shows("orders", "reminders", "%DLQ%billing")
        if auth:
            kept = driver.execute_script("return sessionStorage.getItem('shale.console.token')")
            assert kept == token, "the console keeps the token for the tab"
        # The rate chart: produce while it samples /metrics.
        for i in range(4):
            node.call("POST", "/v1/topics/orders/messages", {"messages": [{"body": f"live {i}"}] * 20})
            time.sleep(0.7)
        c.wait(lambda d: re.search(r"orders \d", d.find_element(By.ID, "rate-legend").text), "the rate legend")
        time.sleep(2.5)  # one more sample: a line, not only a point
        legend = driver.find_element(By.ID, "rate-legend").text
        assert re.search(r"orders (?!0\.00/s)", legend), f"a non-zero produce rate: {legend!r}"
        c.shot("topics")

        topic = node.call("GET", "/v1/topics/orders")
        c.go("#/topics/orders", "topics")
        c.shows(fmt(topic["queues"][0]["max_offset"]), topic["queues"][0]["owner"], "Cold bytes")
        assert len(driver.find_elements(By.CSS_SELECTOR, "main tbody tr")) == 4
        c.shot("topic-orders")

        groups = node.call("GET", "/v1/groups")["groups"]
        billing = next(g for g in groups if g["name"] == "billing")
        c.go("#/groups", "groups")
        c.shows("billing", fmt(billing["lag"]), fmt(billing["lag_cold"]))
        c.shot("groups")

        offsets = node.call("GET", "/v1/groups/billing/offsets?topic=orders")
        c.go("#/groups/billing", "groups")
        t = offsets["total"]
        c.shows("Cold lag", fmt(t["lag_cold"]), fmt(t["lag_hot"]), "Retrying", "Catch-up")
        assert t["lag_cold"] == total["lag_cold"] or t["lag_cold"] > 0
        c.shot("group-billing")

        read = node.call("GET", "/v1/topics/orders/queues/0/messages?offset=0&max_messages=20")
        first = read["messages"][0]
        c.go("#/messages/orders/0/0", "messages")
        c.wait(lambda d: d.find_elements(By.CSS_SELECTOR, f"[data-message-id='{first['message_id']}']"),
               "the first message of queue 0")
        # The body is text: its markup is shown, not rendered.
        c.shows("<b>not bold</b>")
        assert not driver.find_elements(By.CSS_SELECTOR, "main pre b")
        c.shot("messages-by-offset")
        form = driver.find_element(By.ID, "by-key")
        form.find_element(By.ID, "key-key").send_keys(first["keys"][0])
        form.find_element(By.CSS_SELECTOR, "button").click()
        c.shows("with key " + first["keys"][0], first["message_id"])
        form = driver.find_element(By.ID, "by-id")
        form.find_element(By.ID, "id-id").send_keys(first["message_id"])
        form.find_element(By.CSS_SELECTOR, "button").click()
        c.shows("1 message with id " + first["message_id"])
        c.shot("messages-by-id")

        timers = node.call("GET", "/v1/topics/reminders/timers")["timers"]
        assert len(timers) == 3
        c.go("#/timers/reminders", "timers")
        c.shows(*[x["message_id"] for x in timers])
        c.shot("timers")
        victim = timers[0]["message_id"]
        driver.find_element(By.CSS_SELECTOR, f"button.recall[data-message-id='{victim}']").click()
        c.shows("Recalled " + victim)
        left = [x["message_id"] for x in node.call("GET", "/v1/topics/reminders/timers")["timers"]]
        assert victim not in left and len(left) == 2, left
        c.shot("timers-recalled")

        dlq_read = node.call("GET", "/v1/topics/" + q("%DLQ%billing") + "/queues/0/messages?offset=0")
        dead = dlq_read["messages"]
        assert len(dead) >= 3
        c.go("#/dlq/" + q("%DLQ%billing"), "dlq")
        c.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "button.send-back")) == len(dead),
               "a send-back button per dead letter")
        c.shows("shale.origin_topic", "orders")
        c.shot("dlq")
        target = dead[0]["message_id"]
        driver.find_element(By.CSS_SELECTOR, f"button.send-back[data-message-id='{target}']").click()
        c.shows("Sent " + target + " back to orders")
        record = node.call("GET", "/v1/topics/" + q("%DLQ%billing") + f"/messages/{target}/send-back")
        again = node.call("GET", f"/v1/topics/orders/messages/{record['message_id']}")
        assert again["body"] == dead[0]["body"], "the origin topic holds the sent-back message"
        assert again["properties"]["shale.sent_back_from"] == target
        assert again["properties"]["region"] == "eu"
        c.shot("dlq-sent-back")
        # The record survives a reload: the page shows it as handled.
        c.go("#/topics", "topics")
        c.go("#/dlq/" + q("%DLQ%billing"), "dlq")
        c.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".sent-back.badge")) == 1, "the handled badge")

        cluster = node.call("GET", "/v1/cluster")
        c.go("#/cluster", "cluster")
        c.shows(cluster["self"], "this node")
        c.shot("cluster")

        # An API error is shown with the contract's code and message.
        c.go("#/topics/no-such-topic", "topics")
        c.shows("TOPIC_NOT_FOUND")
        c.shot("error")
        # That page's own 404 is a failed load in the log too: expected.
        c.check_log(lambda msg: "no-such-topic" in msg and "404" in msg)
        log("ok" + (" (with auth)" if auth else ""))
    finally:
        if driver:
            driver.quit()
        node.stop()


def main():
    shale, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    run(shale, out, "--auth" in sys.argv[3:])


if __name__ == "__main__":
    main()
