#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""serve's live page (GET /) in a real headless browser (Debian's chromium,
driven by chromedriver through python3-selenium): a running task's tree is
shown, and the page follows it as a process forks, execs, exits and is
killed by ptmon.  Saves a screenshot.  Exits 77 (CTest: skipped) where
chromium, chromedriver or selenium is missing.

usage: serve_page.py PTMON_BIN SCREENSHOT.png
"""
import ctypes
import faulthandler
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

SKIP = 77
DEADLINE_S = 30


def skip(why):
    print("SKIP: " + why + " (Debian: apt-get install chromium chromium-driver "
          "python3-selenium)")
    sys.exit(SKIP)


ptmon, shot = sys.argv[1], sys.argv[2]
chromium = shutil.which("chromium")
driver_bin = shutil.which("chromedriver")
if not chromium or not driver_bin:
    skip("chromium or chromedriver not found")
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    skip("python3-selenium not found")

faulthandler.dump_traceback_later(150)  # where it hangs, before CTest's 180 s
tmp = tempfile.mkdtemp(prefix="ptmon-page.")
os.chmod(tmp, 0o700)
# PTMON_TEST_SCAN_ROOT: serve run as root also follows every user's tasks,
# under /run/user and /tmp; here only those under tmp (none).
env = dict(os.environ, XDG_RUNTIME_DIR=tmp, D=tmp, PTMON_TEST_SCAN_ROOT=tmp)
procs = []
browser = None


def die_with_us():
    # PR_SET_PDEATHSIG, SIGKILL: nothing outlives the test if it is killed.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


def start(argv, **kw):
    p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True,
                         preexec_fn=die_with_us, **kw)
    procs.append(p)
    return p


def get_json(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
        return json.load(r)


def until(what, f):
    """f() until it is true, within DEADLINE_S: what is said if it never is."""
    end = time.monotonic() + DEADLINE_S
    while True:
        v = f()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("never: " + what)
        time.sleep(0.02)  # between two looks, not a synchronisation


def ptmon_cli(*args):
    r = subprocess.run([ptmon, *args], env=env, capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError("ptmon %s: %d %s" % (" ".join(args), r.returncode, r.stderr))


def fifo_write(name):
    # Blocks until the task's process opens it: that process is alive.
    with open(os.path.join(tmp, name), "w") as f:
        f.write("go\n")


try:
    serve = start([ptmon, "serve", "--listen", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True)
    line = serve.stderr.readline()
    if "serving http://127.0.0.1:" not in line:
        raise AssertionError("serve did not start: " + line)
    port = int(line.split("127.0.0.1:")[1].split("/")[0])
    for f in ("go", "a", "b", "end"):
        os.mkfifo(os.path.join(tmp, f))
    # The root waits for "go", then forks A (waits, then execs sleep) and
    # B (waits, then exits 7), then stays until cancelled.
    script = ('read x < "$D/go"\n'
              'sh -c \'read x < "$D/a"; exec sleep 999\' &\n'
              'sh -c \'read x < "$D/b"; exit 7\' &\n'
              'wait\n'
              'read x < "$D/end"\n')
    task = start([ptmon, "run", "--name", "pagedemo", "--", "/bin/sh", "-c", script],
                 stdout=subprocess.DEVNULL)
    info = until("serve follows the task", lambda: get_json(port, "/api/tasks")["tasks"])[0]
    tid, root = info["id"], info["root_pid"]

    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,620",
              "--user-data-dir=" + os.path.join(tmp, "chromium"), "--no-first-run"):
        opts.add_argument(a)
    opts.binary_location = chromium
    browser = webdriver.Chrome(service=Service(driver_bin), options=opts)
    browser.get("http://127.0.0.1:%d/" % port)
    wait = WebDriverWait(browser, DEADLINE_S, poll_frequency=0.05)

    # The page rebuilds its tree on each change: read a row in one go, in
    # the page, rather than through element handles that go stale.
    def row(pid, inside=None):
        return browser.execute_script(
            "const sel = (arguments[1] ? 'li[data-pid=\"' + arguments[1] + '\"] ' : '') +"
            "  'li[data-pid=\"' + arguments[0] + '\"]';"
            "const e = document.querySelector(sel);"
            "return e && {state: e.dataset.state, text: e.firstChild.textContent,"
            "             argv: e.querySelector('.argv').textContent};", pid, inside)

    def state(pid):
        r = row(pid)
        return r and r["state"]

    wait.until(lambda d: state(root) == "running", "the root shown running")
    # fork: A and B appear, below the root.
    fifo_write("go")
    # A and B once they exec'd sh: till then they show the root's argv.
    def own(ps, fifo):
        return [p["pid"] for p in ps if p["pid"] != root and (p.get("argv") or [""])[-1]
                .startswith('read x < "$D/%s"' % fifo)]
    a, b = until("A and B forked and exec'd", lambda: (lambda ps: (
        own(ps, "a")[0], own(ps, "b")[0]) if own(ps, "a") and own(ps, "b") else None)(
        get_json(port, "/api/tasks/%s/tree" % tid)["processes"]))
    for pid in (a, b):
        wait.until(lambda d: (row(pid, root) or {}).get("state") == "running",
                   "child %d shown below the root" % pid)
    # exec: A's command becomes sleep 999.
    fifo_write("a")
    wait.until(lambda d: (row(a) or {}).get("argv") == "sleep 999", "A's exec shown")
    # exit: B exits 7.
    fifo_write("b")
    wait.until(lambda d: state(b) == "exited" and "exited 7" in row(b)["text"], "B's exit shown")
    # killed by ptmon: A, through the control socket.
    ptmon_cli("kill", tid, str(a), "-s", "KILL")
    wait.until(lambda d: state(a) == "killed" and "killed by ptmon SIGKILL" in row(a)["text"],
               "A shown killed by ptmon")
    assert state(root) == "running"
    # Offline: the page loaded nothing but from serve itself.
    names = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    own = "http://127.0.0.1:%d/" % port
    assert all(n.startswith(own) for n in names), names
    time.sleep(0.3)  # the next render of the durations, for a tidy screenshot
    browser.save_screenshot(shot)
    # The task's end: done shown, and the task listed as finished.
    ptmon_cli("cancel", tid, "--now")
    task.wait(timeout=DEADLINE_S)
    wait.until(lambda d: browser.find_elements(
        By.CSS_SELECTOR, 'section[data-task="%s"][data-done="1"]' % tid), "the task shown done")
    wait.until(lambda d: tid in browser.find_element(By.ID, "finished").text,
               "the task listed as finished")
    print("ok: fork, exec, exit, kill and done shown; screenshot " + shot)
except Exception:
    if browser:
        print("the page:", browser.execute_script(
            "return document.querySelector('main').innerText"), file=sys.stderr)
        print("browser log:", browser.get_log("browser"), file=sys.stderr)
        print("the page's processes:", browser.execute_script(
            "return [...tasks.values()].map(t => [...t.procs.values()].map("
            "p => [p.id, p.pid, p.parent_id, p.state, p.comm, p.code, p.signal]))"),
            file=sys.stderr)
        print("rows:", [row(p) for p in (globals().get("a"), globals().get("b")) if p],
              file=sys.stderr)
        print("serve:", get_json(port, "/api/tasks"), file=sys.stderr)
    raise
finally:
    if browser:
        browser.quit()
    for p in reversed(procs):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    shutil.rmtree(tmp, ignore_errors=True)
