"""Headless Chromium driven over the DevTools protocol: pictures of the viewer (live or exported) without a display.

Only a Chromium executable is needed (Debian: ``apt-get install chromium``); nothing is downloaded. WebGL runs on
SwiftShader, Chromium's software renderer, so no GPU or X server is needed either. The flags keep Chromium off the
network it would otherwise try to reach (updates, sync, QUIC probes), which on a closed network makes it stall.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field

from easyocc.errors import EasyOccError

#: Executable names tried on PATH, after the ``EASYOCC_CHROMIUM`` environment variable.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_ENV = "EASYOCC_CHROMIUM"
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    # WebGL on the CPU: ANGLE over SwiftShader (Chromium refuses software WebGL without the second flag).
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
)
#: Hides viser's pop-up notifications (e.g. "software WebGL rendering detected") in pictures.
_HIDE_NOTIFICATIONS = (
    "(() => { const s = document.createElement('style');"
    " s.textContent = '.mantine-Notifications-root { display: none !important; }';"
    " document.head.appendChild(s); return true; })()"
)


def find_chromium() -> str | None:
    """Path of a Chromium-family executable: ``$EASYOCC_CHROMIUM``, else the first of ``CHROMIUM_NAMES`` on PATH."""
    override = os.environ.get(CHROMIUM_ENV)
    if override:
        return override if os.path.isfile(override) and os.access(override, os.X_OK) else None
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


def require_chromium() -> str:
    path = find_chromium()
    if path is None:
        raise EasyOccError(f"no Chromium found (looked for ${CHROMIUM_ENV}, then {', '.join(CHROMIUM_NAMES)} on "
                           "PATH); pictures need a headless Chromium, e.g. Debian's: apt-get install chromium")
    return path


@dataclass
class Capture:
    """png: the screenshot; requests: every URL the page asked for (to check that it stayed offline)."""

    png: bytes
    requests: list[str] = field(default_factory=list)


class Chromium:
    """One headless Chromium with one page, controlled through the DevTools protocol over a websocket.

    >>> with Chromium(window=(1280, 800)) as browser:          # doctest: +SKIP
    ...     png = browser.capture("http://127.0.0.1:8080", ready_text="ready").png
    """

    def __init__(self, executable: str | None = None, window: tuple[int, int] = (1400, 900), timeout: float = 60.0):
        self.executable = executable or require_chromium()
        self.window = (int(window[0]), int(window[1]))
        self.timeout = float(timeout)
        self._process: subprocess.Popen | None = None
        self._profile: str | None = None
        self._socket = None
        self._next_id = 0
        self._stderr: deque[str] = deque(maxlen=40)
        self.requests: list[str] = []

    # --- lifetime -------------------------------------------------------------------------------------------------

    def __enter__(self) -> "Chromium":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        from websockets.sync.client import connect

        self._profile = tempfile.mkdtemp(prefix="easyocc-chromium-")
        width, height = self.window
        command = [self.executable, *HEADLESS_FLAGS, f"--user-data-dir={self._profile}",
                   f"--window-size={width},{height}", "--remote-debugging-address=127.0.0.1",
                   "--remote-debugging-port=0", "about:blank"]
        try:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.PIPE, text=True, errors="replace")
        except OSError as exc:
            self.close()
            raise EasyOccError(f"cannot start Chromium {self.executable}: {exc}") from None
        endpoint = self._devtools_endpoint()
        port = endpoint.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
        page = self._wait(lambda: self._page_target(port), "a page target")
        self._socket = connect(page, max_size=None, open_timeout=self.timeout, proxy=None)
        self.send("Page.enable")
        self.send("Network.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def close(self) -> None:
        if self._socket is not None:
            try:
                self._socket.close()
            except Exception:  # noqa: BLE001 - the browser may already be gone
                pass
            self._socket = None
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
            self._process = None
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None

    def _devtools_endpoint(self) -> str:
        """Read Chromium's stderr until it prints its DevTools websocket; keep draining it afterwards (a full pipe
        would block the browser)."""
        assert self._process is not None and self._process.stderr is not None
        found: list[str] = []
        ready = threading.Event()

        def drain(stream):
            for line in stream:
                self._stderr.append(line.rstrip())
                if not found and "DevTools listening on " in line:
                    found.append(line.split("DevTools listening on ", 1)[1].strip())
                    ready.set()
            ready.set()

        threading.Thread(target=drain, args=(self._process.stderr,), daemon=True).start()
        if not ready.wait(self.timeout) or not found:
            tail = " | ".join(list(self._stderr)[-3:])
            self.close()
            raise EasyOccError(f"Chromium did not start its DevTools endpoint within {self.timeout:g} s ({tail})")
        return found[0]

    @staticmethod
    def _page_target(port: str) -> str | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
            targets = json.loads(response.read())
        return next((t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"), None)

    def _wait(self, probe, what: str, interval: float = 0.2):
        deadline = time.monotonic() + self.timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise EasyOccError(f"headless Chromium: timed out after {self.timeout:g} s waiting for {what}")
            time.sleep(interval)

    # --- the protocol ---------------------------------------------------------------------------------------------

    def send(self, method: str, params: dict | None = None) -> dict:
        """Call a DevTools method and return its result; events that arrive meanwhile are recorded."""
        self._next_id += 1
        call_id = self._next_id
        self._socket.send(json.dumps({"id": call_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + self.timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EasyOccError(f"headless Chromium: no answer to {method} within {self.timeout:g} s")
            message = json.loads(self._socket.recv(timeout=remaining))
            if message.get("method") == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])
            if message.get("id") == call_id:
                if "error" in message:
                    raise EasyOccError(f"headless Chromium: {method} failed: {message['error'].get('message')}")
                return message.get("result", {})

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result.get("result", {}).get("value")

    def screenshot(self) -> bytes:
        import base64

        return base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"])

    # --- what callers use -----------------------------------------------------------------------------------------

    def capture(self, url: str, ready_text: str | None = None, settle: float = 0.5) -> Capture:
        """Open ``url``, wait until the page shows ``ready_text`` (if given) and a WebGL canvas, then until two
        screenshots ``settle`` seconds apart are identical; return the last one and the URLs requested."""
        self.requests = []
        self.send("Page.navigate", {"url": url})
        self._wait(lambda: self.evaluate("document.querySelector('canvas') !== null"), "a canvas on the page")
        if ready_text is not None:
            probe = f"document.body !== null && document.body.innerText.includes({json.dumps(ready_text)})"
            self._wait(lambda: self.evaluate(probe), f"the page to show '{ready_text}'")
        self.evaluate(_HIDE_NOTIFICATIONS)
        previous = self.screenshot()
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            time.sleep(settle)
            current = self.screenshot()
            if current == previous:
                break
            previous = current
        return Capture(previous, list(self.requests))
