"""`serve RUN_DIR`: checks the run and the port, loads the best saved model, then serves the page.

The checks that need no TensorFlow come first (a folder that is not a finished run, a best cell
with no saved model, a port already taken), so each is one line and exit 2 within a second or two.
The socket is bound here and handed to uvicorn, so nothing can take the port between the check
and the serving.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

from benchmark.app.run_folder import ModelChoice, check_run, run_summary, saved_choices
from benchmark.errors import UsageError, first_line
from benchmark.output import say, warn

DEFAULT_HOST = "127.0.0.1"  # this machine only: the page has no login
DEFAULT_PORT = 8000


@dataclass
class Ready:
    """What `prepare` checked: the run folder, its saved models (best first), the bound socket."""

    run_dir: Path
    choices: list[ModelChoice]
    sock: socket.socket
    host: str


def prepare(target: str | None, host: str, port: int) -> Ready:
    """The run, its models and the listening socket, each refused in one line; no TensorFlow."""
    run_dir = check_run(target)
    choices = saved_choices(run_dir)
    return Ready(run_dir, choices, bind(host, port), host)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on `host:port`, or a UsageError naming the flag to change."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        family = socket.AF_INET  # a host name such as localhost
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restarts reuse TIME_WAIT ports
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise UsageError(
                f"serve --port {port}: the port is in use on {host}; pass another --port or stop "
                "what listens there"
            ) from None
        raise UsageError(
            f"serve --host {host} --port {port}: cannot listen there ({first_line(err)}); pass "
            f"another --host or --port (default {DEFAULT_HOST}:{DEFAULT_PORT})"
        ) from None
    return sock


def serve_command(ready: Ready) -> int:
    """Serves the app until interrupted (Ctrl+C); returns 0."""
    run_dir, choices, sock, host = ready.run_dir, ready.choices, ready.sock, ready.host
    import uvicorn

    from benchmark.app.classifier import Classifiers
    from benchmark.app.litert import with_litert
    from benchmark.app.server import create_app

    classifiers = Classifiers(run_dir, with_litert(run_dir, choices))
    classifiers.warm_up(classifiers.default)  # a model that cannot load fails now, not at an upload
    app = create_app(run_dir, classifiers, run_summary(run_dir, list(classifiers.choices.values())))
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    say(
        f"serving {run_dir} (model {classifiers.default}) at http://{shown}:{bound_port}/ "
        "(Ctrl+C stops)"
    )
    if host not in ("127.0.0.1", "localhost", "::1"):
        warn(f"--host {host} lets other machines open the page; it has no login")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
    return 0
