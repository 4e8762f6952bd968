"""The bridge's entry point: start the agent first, then the rest of the bridge.

A workspace is ready when its agent shows its prompt, so the agent starts as early as the
bridge can start it: after reading the configuration and the state dir, before the
terminal emulator, the HTTP server and the rest are imported (about 60 ms of imports on
a small machine). The agent's own start runs meanwhile, on the other core; its output
waits in the reader, stamped with the time it came. The API socket is bound first too:
a client that connects early is answered the moment the server runs instead of being
refused and trying again.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, MutableMapping
from types import FrameType
from typing import TYPE_CHECKING, Any

from .agent import AgentProcess, agent_argv, agent_env
from .config import BridgeConfig, ConfigError, load_config, parse_config_text
from .setup import RUNNING
from .statedir import MCP_COMMAND, TASK_COMMAND, StateDir, atomic_write, log

if TYPE_CHECKING:
    from .app import Bridge

# A fresh workspace gets its configuration and token in the environment (the server's
# BRIDGE_CONFIG_ENV and BRIDGE_TOKEN_ENV); files at the configured paths win (a server
# restarting the workspace copies newer ones in). Neither reaches the agent's environment.
CONFIG_ENV = "DOCKYARD_BRIDGE_CONFIG"
TOKEN_ENV = "DOCKYARD_BRIDGE_TOKEN"
TOKEN_FILE = "token"

# How long the agent runs alone before the bridge imports its serving half. None: the
# imports (about 17 ms of CPU) overlap the agent's own start on another core; an agent
# with `prompt_last` is idle the moment its prompt shows, so a head start would only put
# the imports after it, on the path to idle (measured: bridge answers 81 -> 61 ms).
AGENT_HEAD_START_S = 0.0
USAGE = "usage: dockyard-bridge --config PATH   (the bridge's JSON configuration)"


def config_path(argv: list[str]) -> str | None:
    """The --config argument; None when argv is anything else."""
    if len(argv) == 2 and argv[0] == "--config" and argv[1]:
        return argv[1]
    if len(argv) == 1 and argv[0].startswith("--config=") and len(argv[0]) > len("--config="):
        return argv[0].split("=", 1)[1]
    return None


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (an IPv6 host may come in brackets)."""
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # as http.server does: a restarted bridge can take its port back at once
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    return sock


def read_config(path: str, environ: MutableMapping[str, str]) -> BridgeConfig:
    """The configuration: the file at `path`, else CONFIG_ENV (taken out of `environ`)."""
    from_env = environ.pop(CONFIG_ENV, None)
    if from_env is not None and not os.path.exists(path):
        return parse_config_text(from_env, f"${CONFIG_ENV}", warn=log)
    return load_config(path, warn=log)


def read_token(
    config: BridgeConfig, state: StateDir, environ: MutableMapping[str, str]
) -> tuple[BridgeConfig, str]:
    """(config, token): the token file's, else TOKEN_ENV's (taken out of `environ`), which
    is then written to a 0600 file in the state dir for the agent's hooks to read."""
    from_env = environ.pop(TOKEN_ENV, None)
    if from_env is None or os.path.exists(config.token_file):
        return config, config.read_token()
    token = from_env.strip()
    if not token:
        raise ConfigError(f"${TOKEN_ENV} is empty")
    path = state.root / TOKEN_FILE
    old_mask = os.umask(0o077)
    try:
        atomic_write(path, token + "\n", durable=False)  # written from the environment each start
    finally:
        os.umask(old_mask)
    return config._replace(token_file=str(path)), token


def task_command_source(module: str = "task_command.py") -> bytes:
    """dockyard-task's source (or another command's, `module`): the file beside this
    module (in the zipapp)."""
    path = os.path.join(os.path.dirname(__file__), module)
    loader = __spec__.loader if __spec__ is not None else None
    get_data = getattr(loader, "get_data", None)  # a zipimporter reads inside the zipapp
    if get_data is not None:
        data: bytes = get_data(path)
        return data
    with open(path, "rb") as f:
        return f.read()


def prepare_reports(state: StateDir) -> None:
    """Make the report key and install dockyard-task and dockyard-mcp before the agent
    starts; a failure is logged (the agent then cannot report), never a reason not to
    start."""
    try:
        state.report_key()
        state.install_command(TASK_COMMAND, task_command_source())
        state.install_command(MCP_COMMAND, task_command_source("mcp_command.py"))
    except OSError as exc:
        log(f"cannot install {TASK_COMMAND} and {MCP_COMMAND} in {state.root}: {exc}")


SECRETS_DIR = "secrets"


def write_secret_files(config: BridgeConfig, state: StateDir) -> None:
    """The config's secret files, 0600 in <state dir>/secrets (0700), written at every
    start so a changed value reaches the workspace; a failure is logged: what needs the
    file (a clone with a token) then fails and says so."""
    if not config.secret_files:
        return
    folder = state.root / SECRETS_DIR
    old_mask = os.umask(0o077)
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        for name, content in config.secret_files.items():
            atomic_write(folder / name, content, durable=False)  # written each start
    except OSError as exc:
        log(f"cannot write the secret files in {folder}: {exc}")
    finally:
        os.umask(old_mask)


def import_serving() -> tuple[type[Bridge], Callable[[Bridge, socket.socket], Any]]:
    """Import the rest of the bridge (Bridge, make_server), without ssl: http.server's
    http.client imports it (~8 ms of the start) only to offer HTTPS client connections,
    and this process makes none (dockyard-task and dockyard-mcp, which do, are processes
    of their own). Only when neither is loaded yet: a process that has them keeps them."""
    blocked = "ssl" not in sys.modules and "http.client" not in sys.modules
    if blocked:
        sys.modules["ssl"] = None  # type: ignore[assignment]  # import ssl: ImportError
    try:
        from .app import Bridge
        from .http import make_server
    finally:
        if blocked:
            del sys.modules["ssl"]  # a later `import ssl` works as ever
    return Bridge, make_server


def _install_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    # A bridge started with SIGHUP ignored (under nohup, say) would hand that on to the
    # agent and every command it runs (an ignored signal stays ignored across exec), and
    # a command's hang-up at its timeout would do nothing. A handled signal is reset to
    # its default by exec: the bridge has no terminal to lose, so its handler does nothing.
    signal.signal(signal.SIGHUP, _no_terminal_to_lose)


def _no_terminal_to_lose(signum: int, frame: FrameType | None) -> None:
    """SIGHUP: the bridge itself goes on (see _install_signals)."""


def main(argv: list[str] | None = None) -> int:
    """Run the bridge until SIGTERM/SIGINT; 0 on a clean stop, non-zero on a bad start."""
    path = config_path(sys.argv[1:] if argv is None else argv)
    if path is None:
        sys.stderr.write(USAGE + "\n")
        return 2
    stop = threading.Event()
    _install_signals(stop)  # a stop while starting is kept, not a half-started bridge killed
    try:
        config = read_config(path, os.environ)
    except ConfigError as exc:
        log(f"bad configuration: {exc}")
        return 2
    try:
        state = StateDir(config.state_dir, config.workspace_id)
        run_state = state.load_run_state()
    except OSError as exc:
        log(f"cannot use state_dir {config.state_dir}: {exc}")
        return 1
    try:
        config, token = read_token(config, state, os.environ)
    except ConfigError as exc:
        log(f"bad configuration: {exc}")
        return 2
    except OSError as exc:
        log(f"cannot keep the token in {config.state_dir}: {exc}")
        return 1
    try:
        listener = bind(config.host, config.port)
    except OSError as exc:
        log(f"cannot listen on {config.listen}: {exc}")
        return 1
    port = listener.getsockname()[1]
    prepare_reports(state)
    write_secret_files(config, state)
    early: AgentProcess | None = None
    if run_state.setup_phase(config.setup_script) != RUNNING:
        # no setup script to run first: the agent starts now. Forked before any thread of
        # ours exists (the child only execs); a failed start is reported by the bridge.
        early = AgentProcess(
            agent_argv(config, run_state.agent_started),
            config.cwd,
            agent_env(config, port),
            config.columns,
            config.rows,
        )
        try:
            early.start()
            if AGENT_HEAD_START_S > 0:  # see AGENT_HEAD_START_S: none by default
                early.wait_first_output(AGENT_HEAD_START_S)
        except OSError as exc:
            log(f"cannot start the agent: {exc}")

    Bridge, make_server = import_serving()  # the heavy part: transcript, activity, HTTP

    try:
        bridge = Bridge(config, token, state, run_state, agent=early)
    except OSError as exc:
        log(f"cannot use state_dir {config.state_dir}: {exc}")
        if early is not None:
            early.terminate(grace_s=1.0)
        listener.close()
        return 1
    bridge.listen_port = port
    server = make_server(bridge, listener)
    bridge.start()  # adopts the early agent, or runs the setup script then the agent
    # a short poll interval makes server.shutdown() quick when Docker stops the container
    serving = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="http", daemon=True
    )
    serving.start()
    with bridge.cond:
        pid = bridge.agent.pid if bridge.agent is not None else None
    log(
        f"listening on {config.host}:{port}; agent pid {pid}; "
        f"resumed: {bridge.resumed}; setup: {bridge.setup_phase}"
    )
    while not stop.wait(1.0):
        pass
    log("stopping")
    bridge.shutdown()
    server.shutdown()
    server.server_close()
    return 0
