"""A page opened in headless Chromium, seen as a user's browser sees it: its console errors and
uncaught exceptions, what a script reads from its DOM, and a screenshot.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: it reads
commands on fd 3 and writes replies and events on fd 4, each a JSON text ended by a NUL byte), so
nothing but the standard library is needed, and no port is opened.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


@dataclass
class Visit:
    errors: list[str] = field(default_factory=list)  # console.error/assert, uncaught exceptions, failed loads
    values: dict[str, Any] = field(default_factory=dict)  # each script's result
    screenshot: bytes = b""  # PNG of the viewport


def _high(fd: int) -> int:
    """``fd`` moved to a number above 10 (close-on-exec), clear of the 3 and 4 the child gets."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class _Pipe:
    def __init__(self, browser: str, timeout: float) -> None:
        to_child, self._write = map(_high, os.pipe())
        self._read, from_child = map(_high, os.pipe())

        def fds_3_and_4() -> None:  # where --remote-debugging-pipe looks for them; dup2 keeps them open in exec
            os.dup2(to_child, 3)
            os.dup2(from_child, 4)

        self.proc = subprocess.Popen(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=fds_3_and_4, close_fds=False)
        os.close(to_child)
        os.close(from_child)
        self.deadline = time.monotonic() + timeout
        self.events: list[dict] = []
        self._buffer, self._next = b"", 0

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict:
        while True:
            event = self._receive()
            self.events.append(event)
            if event.get("method") == method:
                return event

    def _receive(self) -> dict:
        while b"\0" not in self._buffer:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError("the browser did not answer in time")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("the browser closed its pipe")
            self._buffer += chunk
        text, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(text)

    def close(self) -> None:
        try:
            os.write(self._write, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._write)
        os.close(self._read)


def visit(path: Path, scripts: dict[str, str], size: tuple[int, int] = (1200, 2000), settle: float = 1.0,
          timeout: float = 120.0, browser: str | None = None) -> Visit:
    """Open ``path`` (a local file), wait for its load event and ``settle`` seconds more, evaluate
    each script (an expression; its value by value), take a screenshot of a ``size`` viewport."""
    pipe = _Pipe(browser or find_browser() or "chromium", timeout)
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            pipe.send(f"{domain}.enable", session=session)
        pipe.send("Emulation.setDeviceMetricsOverride",
                  {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": False}, session)
        pipe.send("Page.navigate", {"url": path.resolve().as_uri()}, session)
        pipe.wait_for("Page.loadEventFired")
        time.sleep(settle)
        out = Visit()
        for name, expression in scripts.items():
            result = pipe.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
            out.values[name] = result.get("result", {}).get("value")
        out.screenshot = base64.b64decode(pipe.send("Page.captureScreenshot", {"format": "png"}, session)["data"])
        out.errors = [e for e in map(_error, pipe.events) if e]
        return out
    finally:
        pipe.close()


def _error(event: dict) -> str:
    """The text of an event that reports an error on the page, else ''."""
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.exceptionThrown":
        details = params.get("exceptionDetails", {})
        return f"uncaught: {details.get('exception', {}).get('description') or details.get('text')}"
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        return "console.error: " + " ".join(str(a.get("value", a.get("description"))) for a in params.get("args", []))
    if method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
        return f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}".strip()
    return ""
