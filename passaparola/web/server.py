"""uvicorn in a background thread: started and stopped by the CLI, never installing signal handlers there."""

from __future__ import annotations

import threading
import time

import uvicorn
from starlette.types import ASGIApp


class WebServer:
    """Serves ``app`` on ``host:port`` (port 0: any free port, see `port`) until `stop`."""

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="web", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise OSError(
                    f"the web app could not listen on {self.server.config.host}:{self.server.config.port}; "
                    "is the port in use? set web.port"
                )
            time.sleep(0.02)

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
