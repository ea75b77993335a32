"""Peak memory of the running daemon with 1, 10 and 50 feed sources (part of `make bench`; never run in CI).

The real command (`passaparola run`) polls N feeds of a local HTTP server (127.0.0.1, the same 60-entry feed
at N addresses, each every 10 s) for about `SECONDS`; the peak is the largest sum, over the samples, of the
memory of the daemon and every process under it (the feed-parse workers and multiprocessing's resource
tracker): the proportional set size (PSS: a page the processes share, such as libpython's, counted once, as a
container's memory limit counts it) and, beside it, the plain sum of resident sizes (RSS, which counts shared
pages once per process). The figure for one feed is the baseline of the same run: the others are printed as
ratios against it. Goal: under 400 MB at 50 feeds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FEEDS = (1, 10, 50)
SECONDS = 30.0
GOAL_MB_AT_50 = 400


def _feed() -> bytes:
    items = "".join(
        f"<item><guid>https://forum.example/t/{i}</guid><title>Caffè Aurora: ordine {i}</title>"
        f"<link>https://forum.example/t/{i}</link><pubDate>Mon, 30 Nov 2026 10:{i % 60:02d}:00 GMT</pubDate>"
        f"<description>La macchina Caffè Aurora non parte da ieri, ordine {i}: qualcuno sa come fare?</description>"
        f"</item>"
        for i in range(60)
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>f</title>{items}</channel></rss>'.encode()


@contextmanager
def _feed_server() -> Iterator[int]:
    body = _feed()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/rss+xml")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            """Quiet: a line per request would drown the figures."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(parent, []).append(int(entry))
    return tree


def _tree_mb(root: int) -> tuple[float, float]:
    """(PSS, RSS) of ``root`` and everything under it, in MB (Linux /proc)."""
    tree, pss, rss, todo = _children(), 0, 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(tree.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1])
        except OSError:
            continue
    return pss / 1024, rss / 1024


def _config(folder: Path, port: int, feeds: int) -> Path:
    tables = "".join(
        f'[[sources]]\ntype = "feed"\nname = "forum-{n}"\nurl = "http://127.0.0.1:{port}/feed/{n}.rss"\n'
        f'keywords = ["caffè aurora"]\nevery_seconds = 10\nallow_private = ["127.0.0.1"]\n\n'
        for n in range(feeds)
    )
    config = folder / "passaparola.toml"
    config.write_text(f'[storage]\npath = "{folder / "bench.db"}"\n\n{tables}', encoding="utf-8")
    return config


def _peak(feeds: int, port: int) -> tuple[float, float]:
    command = Path(sys.executable).parent / "passaparola"
    with tempfile.TemporaryDirectory() as scratch:
        config = _config(Path(scratch), port, feeds)
        daemon = subprocess.Popen(
            [str(command), "run", "--config", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        pss = rss = 0.0
        ends = time.monotonic() + SECONDS
        try:
            while time.monotonic() < ends and daemon.poll() is None:
                sample = _tree_mb(daemon.pid)
                pss, rss = max(pss, sample[0]), max(rss, sample[1])
                time.sleep(0.2)
            if daemon.poll() is not None:
                raise RuntimeError(f"passaparola run ended early (exit {daemon.returncode}) with {feeds} feeds")
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
    return pss, rss


def bench_feeds() -> dict[str, float]:
    figures: dict[str, float] = {}
    with _feed_server() as port:
        for feeds in FEEDS:
            pss, rss = _peak(feeds, port)
            figures[f"peak_pss_mb_{feeds}_feeds"], figures[f"peak_rss_mb_{feeds}_feeds"] = round(pss, 1), round(rss, 1)
    base = figures[f"peak_pss_mb_{FEEDS[0]}_feeds"]
    for feeds in FEEDS:
        pss, rss = figures[f"peak_pss_mb_{feeds}_feeds"], figures[f"peak_rss_mb_{feeds}_feeds"]
        figures[f"pss_vs_{FEEDS[0]}_feed_ratio_{feeds}"] = round(pss / base, 3)
        goal = f" (goal under {GOAL_MB_AT_50} MB)" if feeds == 50 else ""
        print(
            f"daemon with {feeds:>2} feed sources: peak {pss:4.0f} MB PSS ({rss:4.0f} MB RSS summed), "
            f"ratio to one feed {pss / base:4.2f}{goal}"
        )
    return figures


if __name__ == "__main__":
    bench_feeds()
