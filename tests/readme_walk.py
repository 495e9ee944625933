"""Runs the README as a newcomer would: its first command (`make server`), then every command
the README shows, in order, checking each one succeeds and that what it prints matches the
output the README pastes under it.

What counts as a command the README shows:
- every line of a ```sh block (run block by block in one bash, so an `export` carries over);
- every `$ command` line of a ```text block; the lines under it, up to the next `$ ` line or
  blank line, are its output as pasted (a `kvsim shell` session: the lines after its prompts
  are fed to the shell, and everything it prints is compared);
- inline `make TARGET` and `./script.sh` mentions.
`make server` is the setup and `make test` (through `make readme-test`) is what runs this, so
none of them runs again.

To keep working next to a server a developer already runs, the walk starts `make server` on
three free ports with a temporary data directory (`SERVER_ARGS`) and rewrites the README's
8100, 8101 and 8102 to them; `kvsim` is on PATH as `cargo install --path .` would put it.
Output comparison masks what differs between runs by nature: timestamps, table ids, and in
`kvsim status` the term and indexes (the node and address columns, one leader and one term
are checked).

Run: .venv/bin/python tests/readme_walk.py   (make readme-test)
"""

from __future__ import annotations

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
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
DEFAULT_PORTS = (8100, 8101, 8102)
SKIP = {"make server", "make test", "make readme-test"}
# `make server` builds the release binary first: on a cold machine that takes minutes.
STARTUP_TIMEOUT_S = 1800
COMMAND_TIMEOUT_S = 300


def fail(message: str) -> None:
    print(f"readme_walk: FAILED: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def commands(readme: str) -> list[dict]:
    """The README's commands in document order: {kind, text, expected, shell_input}."""
    out: list[dict] = []
    fence = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
    pos = 0
    for m in fence.finditer(readme):
        out.extend(inline(readme[pos:m.start()]))
        pos = m.end()
        lang, body = m.group(1), m.group(2)
        if lang == "sh":
            lines = [ln.split("  #")[0].strip() for ln in body.splitlines()]
            lines = [ln for ln in lines if ln and ln not in SKIP]
            if lines:
                out.append({"kind": "script", "text": "\n".join(lines)})
        elif lang == "text":
            out.extend(transcript(body))
    out.extend(inline(readme[pos:]))
    # An inline command mentioned twice runs once, where it is first mentioned.
    seen: set[str] = set()
    deduped = []
    for cmd in out:
        if cmd["kind"] == "script" and cmd["text"] in seen:
            continue
        seen.add(cmd["text"])
        deduped.append(cmd)
    return deduped


def inline(prose: str) -> list[dict]:
    found = []
    for span in re.findall(r"`([^`\n]+)`", prose):
        if re.fullmatch(r"make [a-z][a-z-]*|\./[\w.-]+\.sh", span) and span not in SKIP:
            found.append({"kind": "script", "text": span})
    return found


def transcript(body: str) -> list[dict]:
    """`$ command` lines and the output pasted under each."""
    out: list[dict] = []
    current = None
    for line in body.splitlines():
        if line.startswith("$ "):
            current = {"kind": "command", "text": line[2:], "expected": [], "shell_input": []}
            out.append(current)
        elif current is None:
            continue
        elif line == "" and current["text"] != "kvsim shell":
            current = None
        elif current["text"] == "kvsim shell" and re.match(r"^kvsim node\d+ \w+( \[\w+\])?> ", line):
            current["shell_input"].append(line.split("> ", 1)[1])
        else:
            current["expected"].append(line)
    return out


def free_base() -> int:
    rng = random.SystemRandom()
    for _ in range(200):
        base = rng.randrange(20000, 32000)
        try:
            socks = []
            for p in range(base, base + 3):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
            for s in socks:
                s.close()
            return base
        except OSError:
            continue
    fail("found no three free consecutive ports")
    return 0


def leader(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as r:
            return json.load(r).get("leader_id")
    except (OSError, ValueError):
        return None


MASKS = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"), "<time>"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
]


def masked(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        for pattern, replacement in MASKS:
            line = pattern.sub(replacement, line)
        out.append(line.rstrip())
    while out and out[-1] == "":
        out.pop()
    return out


def status_rows(lines: list[str]) -> tuple[list[str], list[list[str]]]:
    """The header cells and the node rows' cells of `kvsim status`'s table."""
    rows = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines
            if ln.startswith("|")]
    return (rows[0], rows[1:]) if rows else ([], [])


def check_output(cmd: dict, got: str) -> None:
    expected = cmd["expected"]
    if cmd["text"] == "kvsim status":
        want_head, want_rows = status_rows(expected)
        head, rows = status_rows(got.splitlines())
        if head != want_head:
            fail(f"`kvsim status` header {head} is not the README's {want_head}")
        if [r[:2] for r in rows] != [r[:2] for r in want_rows]:
            fail(f"`kvsim status` nodes {[r[:2] for r in rows]} are not the README's")
        roles = sorted(r[2] for r in rows)
        if roles != ["follower", "follower", "leader"] or len({r[3] for r in rows}) != 1:
            fail(f"`kvsim status` does not show one leader in one term:\n{got}")
        return
    if masked(got.splitlines()) != masked(expected):
        fail(f"`{cmd['text']}` printed\n{got}\nbut the README shows\n" + "\n".join(expected))


def main() -> None:
    with open(README, encoding="utf-8") as f:
        readme = f.read()
    first = re.search(r"```sh\n(.*?)\n", readme)
    if not first or not first.group(1).startswith("make server"):
        fail("the README's first command is no longer `make server`; update this walk")
    base = free_base()
    ports = (base, base + 1, base + 2)

    def local(text: str) -> str:
        # One pass, so that a port just written is never rewritten again.
        return re.sub(r"\b810[012]\b", lambda m: str(ports[int(m[0]) - DEFAULT_PORTS[0]]), text)

    work = tempfile.mkdtemp(prefix="kvsim-readme-")
    venv_bin = os.path.join(ROOT, ".venv", "bin")
    env = dict(os.environ)
    home = os.path.expanduser("~")
    # HOME moves below; cargo and rustup stay where they are.
    env.setdefault("RUSTUP_HOME", os.path.join(home, ".rustup"))
    env.setdefault("CARGO_HOME", os.path.join(home, ".cargo"))
    env.update({
        "PATH": os.pathsep.join([os.path.join(ROOT, "target", "release"), venv_bin,
                                 env.get("PATH", "")]),
        "KVSIM_TARGET_ADDR": f"localhost:{base}",
        "HOME": work,  # the shell's history, the AWS CLI's config: nothing of the user's
        "NO_COLOR": "1",
    })
    env.pop("KVSIM", None)
    log = open(os.path.join(work, "server.log"), "wb")
    server_args = f"--base-port {base} --data-dir-root {os.path.join(work, 'data')}"
    print(f"readme_walk: make server SERVER_ARGS='{server_args}' (the README's 8100-8102 are "
          f"{base}-{base + 2} here)", flush=True)
    server = subprocess.Popen(["make", "server", f"SERVER_ARGS={server_args}"], cwd=ROOT,
                              env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not all(leader(p) for p in ports):
            if server.poll() is not None:
                log.flush()
                with open(log.name, "rb") as f:
                    sys.stderr.write(f.read().decode("utf-8", "replace")[-4000:])
                fail(f"`make server` exited with {server.returncode}")
            if time.monotonic() > deadline:
                fail("`make server` did not bring up a cluster with a leader in time")
            time.sleep(0.2)
        walk = commands(readme)
        for n, cmd in enumerate(walk, 1):
            text = local(cmd["text"])
            more = " ..." if len(text.splitlines()) > 1 else ""
            print(f"readme_walk: [{n}/{len(walk)}] {text.splitlines()[0]}{more}", flush=True)
            stdin = None
            if cmd.get("shell_input"):
                stdin = "\n".join(local(line) for line in cmd["shell_input"]) + "\n"
            try:
                run = subprocess.run(["bash", "-euo", "pipefail", "-c", text], cwd=ROOT, env=env,
                                     input=stdin, capture_output=True, text=True,
                                     timeout=COMMAND_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                fail(f"`{text}` did not finish within {COMMAND_TIMEOUT_S} s")
            if run.returncode != 0:
                fail(f"`{text}` exited with {run.returncode}\nstdout:\n{run.stdout}\n"
                     f"stderr:\n{run.stderr}")
            if cmd["kind"] == "command":
                # Masked first: a pasted id or timestamp may contain "8100".
                cmd = dict(cmd, expected=[local(line) for line in masked(cmd["expected"])])
                check_output(cmd, run.stdout)
        print(f"readme_walk: all {len(walk)} README commands ran as documented", flush=True)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
