"""Running Terraform in a working directory through python-terraform, made fit for 1.x.

python-terraform 0.10.1 (2019) predates Terraform 0.15; used as it is with 1.x:
- `destroy()` passes `-force`, which Terraform rejects: we pass `-auto-approve` instead;
- `apply()` passes `-auto-approve=false` unless `skip_plan=True`, and with `-input=false`
  Terraform then fails ("error asking for approval"): we always approve (a saved plan);
- every command gets `-var-file=<temp file>` of an empty map (its default `variables`),
  even `init`: we drop it, variables come from terraform.tfvars.json in the directory;
- `capture_output=False` writes to `sys.stdout`/`sys.stderr` (which need not be real
  files), output is only seen once the command ends, `synchronous=False` leaks into the
  command line as `-synchronous=false`, and a failure calls the deprecated `Logger.warn`:
  our `cmd` runs the command itself and streams each stdout line as it comes;
- it parses the state file after every command (and in its constructor), which raises on
  a state being written by another run: we read the state ourselves.
Its flag values work as documented when the classes themselves are passed: `IsFlagged`
gives `-flag`, `IsNotFlagged` or None drops it, a bool gives `-flag=true|false`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from python_terraform import IsFlagged, IsNotFlagged, Terraform

from provisioner.backends.terraform_workdir import PLAN_FILE, error_summary, parse_outputs
from provisioner.errors import BackendError, BackendUnavailable

log = logging.getLogger(__name__)

LineFn = Callable[[str], None]
LOCK_TIMEOUT = "60s"
ENV = {"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"}
# What Terraform and its provisioners may see of the server's environment: what it takes
# to run programs, reach Docker and the network. Not the rest: the server's environment
# holds its database URL (with a password), DOCKYARD_SECRET_* values and model API keys,
# and a template's local-exec or `external` data source could print any of it to a log.
_PASSED = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "TERM", "SHELL"}
    | {"DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "DOCKER_CONTEXT"}
    | {"SSL_CERT_FILE", "SSL_CERT_DIR"}
    | {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"}
)
_PASSED_PREFIXES = ("LC_", "TF_")


def terraform_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment a Terraform run gets: the passed-through part of `environ`, plus
    Dockyard's own settings."""
    kept = {k: v for k, v in environ.items() if k in _PASSED or k.startswith(_PASSED_PREFIXES)}
    return {**kept, **ENV}


INSTALL_HINT = "install Terraform 1.x and put `terraform` on PATH"


def _log_line(line: str) -> None:
    log.info("terraform: %s", line)


class StreamingTerraform(Terraform):
    """python-terraform's Terraform with the fixes above."""

    def __init__(
        self, working_dir: Path, on_line: LineFn = _log_line, binary: str = "terraform"
    ) -> None:
        super().__init__(working_dir=str(working_dir), terraform_bin_path=binary)
        self.on_line = on_line
        self.timeout_s: float = 900

    def read_state_file(self, file_path: str | None = None) -> None:
        """Not kept: Dockyard reads the state itself (a half-written file must not raise)."""
        self.tfstate = None

    def _generate_default_options(self, input_options: dict[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = super()._generate_default_options(input_options)
        if not options.get("var"):
            options["var"] = None  # no -var-file of an empty temp file
        return options

    def destroy(self, dir_or_plan: str | None = None, **kwargs: Any) -> tuple[int, str, str]:
        """`terraform destroy -auto-approve` (0.10.1 would pass the removed `-force`)."""
        kwargs.setdefault("auto_approve", IsFlagged)
        result: tuple[int, str, str] = super().destroy(dir_or_plan, force=IsNotFlagged, **kwargs)
        return result

    def cmd(self, cmd: str, *args: Any, **kwargs: Any) -> tuple[int, str, str]:
        """Run one command, streaming stdout lines to on_line; (return code, out, err)."""
        for unsupported in ("capture_output", "synchronous", "raise_on_error"):
            kwargs.pop(unsupported, None)
        argv = self.generate_cmd_string(cmd, *args, **kwargs)
        try:
            return self._execute(argv)
        finally:
            self.temp_var_files.clean_up()

    def _execute(self, argv: list[str]) -> tuple[int, str, str]:
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.working_dir,
                env=terraform_env(os.environ),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                start_new_session=True,  # a provisioner's children die with it on timeout
            )
        except FileNotFoundError as exc:
            raise BackendUnavailable(f"{argv[0]} not found", hint=INSTALL_HINT) from exc
        err: list[str] = []
        reader = threading.Thread(target=lambda: err.extend(proc.stderr or []), daemon=True)
        reader.start()
        killer = threading.Timer(self.timeout_s, _kill_group, (proc,))
        killer.start()
        out: list[str] = []
        try:
            for line in proc.stdout or []:
                out.append(line)
                if line.strip():
                    self.on_line(line.rstrip())
            code = proc.wait()
        finally:
            killer.cancel()
            reader.join(timeout=5)
        return code, "".join(out), "".join(err)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    log.warning("terraform ran out of time; killing it")
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)


class TerraformRunner:
    """init / plan+apply / destroy / output in one working directory, errors translated."""

    def __init__(self, binary: str = "terraform", timeout_s: float = 900) -> None:
        self.binary = binary
        self.timeout_s = timeout_s

    def _tf(self, workdir: Path, on_line: LineFn | None) -> StreamingTerraform:
        tf = StreamingTerraform(workdir, on_line or _log_line, self.binary)
        tf.timeout_s = self.timeout_s
        return tf

    def _check(
        self, what: str, result: tuple[int, str, str], on_line: LineFn | None, ok: tuple[int, ...]
    ) -> int:
        code, _, err = result
        if code in ok:
            return code
        lines = (error_summary(err) or f"exit code {code}").splitlines()
        for line in lines:
            (on_line or _log_line)(line)
        # Terraform wraps its messages at 78 columns: joined again, they read as one line.
        raise BackendError(f"terraform {what} failed: {' '.join(lines)}")

    def version(self) -> str:
        """`terraform version`; BackendUnavailable unless it runs."""
        code, out, err = self._tf(Path.cwd(), lambda _: None).version_cmd(json=IsFlagged)
        if code != 0:
            raise BackendUnavailable(
                f"terraform version failed: {error_summary(err)}", hint=INSTALL_HINT
            )
        return out

    def init(self, workdir: Path, on_line: LineFn | None = None) -> None:
        """`terraform init` (offline: only built-in providers, or ones already cached)."""
        result = self._tf(workdir, on_line).init(lock_timeout=LOCK_TIMEOUT)
        self._check("init", result, on_line, (0,))

    def apply(self, workdir: Path, on_line: LineFn | None = None) -> bool:
        """Plan to a file, then apply that plan when it changes anything; True if it did."""
        tf = self._tf(workdir, on_line)
        plan = tf.plan(out=PLAN_FILE, lock_timeout=LOCK_TIMEOUT)  # -detailed-exitcode
        try:
            if self._check("plan", plan, on_line, (0, 2)) == 0:
                return False
            applied = tf.apply(PLAN_FILE, skip_plan=True, lock_timeout=LOCK_TIMEOUT)
            self._check("apply", applied, on_line, (0,))
            return True
        finally:
            (workdir / PLAN_FILE).unlink(missing_ok=True)

    def destroy(self, workdir: Path, on_line: LineFn | None = None) -> None:
        """`terraform destroy -auto-approve`."""
        result = self._tf(workdir, on_line).destroy(lock_timeout=LOCK_TIMEOUT)
        self._check("destroy", result, on_line, (0,))

    def outputs(self, workdir: Path) -> dict[str, Any]:
        """`terraform output -json`, as name -> value."""
        code, out, err = self._tf(workdir, lambda _: None).output_cmd(json=IsFlagged)
        self._check("output", (code, out, err), None, (0,))
        try:
            return parse_outputs(out)
        except ValueError as exc:
            raise BackendError(f"terraform output printed no JSON: {out[:200]!r}") from exc
