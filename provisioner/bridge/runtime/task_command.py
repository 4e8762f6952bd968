#!/usr/bin/env python3
"""dockyard-task: tell Dockyard how the task goes, from inside its workspace.

  dockyard-task complete --outcome SUCCESS|FAILED|SKIPPED|CANCELLED [--error-code C]
        [--error-class TRANSIENT|PERMANENT|DEPENDENCY|POLICY|TIMEOUT|UNKNOWN]
        [--output TEXT|-] [--tokens-in N] [--tokens-out N] [--cost-usd X] [--model M]
  dockyard-task progress NOTE
  dockyard-task ask QUESTION
  dockyard-task usage --tokens-in N --tokens-out N [--cost-usd X] [--model M]

The workspace has no path to the Dockyard server: the command hands the report to the
workspace's bridge ($DOCKYARD_BRIDGE_URL, on 127.0.0.1) with the workspace's report key
(the file $DOCKYARD_REPORT_KEY_FILE names), and the server's follower takes it from there.
A report acts on this workspace's task only. `ask` returns at once: the answer comes as
the agent's next prompt.

Exit codes: 0 reported; 2 a wrong argument (nothing was sent); 3 the bridge cannot be
reached or the report key read; 4 the bridge refused the report (it says why).

The bridge ships this file in its zipapp and installs it on the agent's PATH; the bridge
and the server validate every report with check_report below, so it is standard library
only and imports nothing of its package.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import unicodedata
from typing import Any

# -- the report contract (the bridge and the server check every report with it) ----------

COMPLETE, PROGRESS, ASK, USAGE = "complete", "progress", "ask", "usage"
KINDS = (COMPLETE, PROGRESS, ASK, USAGE)
OUTCOMES = ("SUCCESS", "FAILED", "SKIPPED", "CANCELLED")
ERROR_CLASSES = ("TRANSIENT", "PERMANENT", "DEPENDENCY", "POLICY", "TIMEOUT", "UNKNOWN")

# sizes in bytes of UTF-8
MAX_NOTE = 2048
MAX_QUESTION = 4096
MAX_OUTPUT = 65536
MAX_ERROR_CODE = 64
MAX_MODEL = 128
# an error code: letters, digits and . _ : - ; a model name: and / @ + too
ERROR_CODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
MODEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,127}")
# besides control characters: the bidi overrides that make text read as something else
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
MAX_TOKENS = 10**12
MAX_COST_USD = 1_000_000.0

TEXT_LIMITS = {"note": MAX_NOTE, "question": MAX_QUESTION, "output": MAX_OUTPUT}
NAME_FIELDS = {
    "error_code": (ERROR_CODE_RE, "1-64 letters, digits and . _ : -"),
    "model": (MODEL_RE, "1-128 letters, digits and . _ : / @ + -"),
}
TOKEN_FIELDS = ("tokens_in", "tokens_out")
_COST = ("tokens_in", "tokens_out", "cost_usd", "model")

# kind -> (required fields, optional fields)
FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    COMPLETE: (("outcome",), ("error_code", "error_class", "output", *_COST)),
    PROGRESS: (("note",), ()),
    ASK: (("question",), ()),
    USAGE: (("tokens_in", "tokens_out"), ("cost_usd", "model")),
}
ALL_FIELDS = ("outcome", "error_code", "error_class", "output", *_COST, "note", "question")


class ReportError(ValueError):
    """A report that is not as documented; `field` names the part that is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _text(field: str, value: Any, limit: int, *, blank_ok: bool) -> str:
    """Text with newlines and tabs only (CR LF counts as a newline), at most `limit` bytes."""
    if not isinstance(value, str):
        raise ReportError(field, f"{field} must be a string")
    value = value.replace("\r\n", "\n")
    for position, char in enumerate(value):
        if char in "\n\t":
            continue
        category = unicodedata.category(char)
        if category == "Cc":
            raise ReportError(
                field,
                f"{field} holds control character U+{ord(char):04X} at position {position}; "
                "only newlines and tabs are allowed",
            )
        if category == "Cs":
            raise ReportError(field, f"{field} holds an unpaired surrogate at position {position}")
        if char in _BIDI:
            raise ReportError(
                field,
                f"{field} holds the bidi override U+{ord(char):04X} at position {position}",
            )
    size = len(value.encode("utf-8"))
    if size > limit:
        raise ReportError(field, f"{field} is {size} bytes; at most {limit} are allowed")
    if not blank_ok and not value.strip():
        raise ReportError(field, f"{field} must hold more than whitespace")
    return value


def _name(field: str, value: Any) -> str:
    """An error code or a model name (NAME_FIELDS says what each may hold)."""
    pattern, shape = NAME_FIELDS[field]
    if not isinstance(value, str) or not pattern.fullmatch(value):
        shown = repr(value)[:40]
        raise ReportError(field, f"{field} must be {shape}, not {shown}")
    return value


def _tokens(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ReportError(field, f"{field} must be a whole number")
    if not 0 <= value <= MAX_TOKENS:
        raise ReportError(field, f"{field} must be from 0 to {MAX_TOKENS}")
    return value


def _cost(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ReportError(field, f"{field} must be a number")
    if not math.isfinite(value) or not 0 <= value <= MAX_COST_USD:
        raise ReportError(field, f"{field} must be from 0 to {MAX_COST_USD:g}")
    return float(value)


def _one_of(field: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ReportError(field, f"{field} must be one of: {', '.join(allowed)}")
    return str(value)


def check_report(body: Any) -> dict[str, Any]:
    """The report `body` ({"kind", ...fields}) as it is kept: {"kind", ...fields given}.

    Raises ReportError naming the first field that is wrong: an unknown kind or field, a
    missing required one, a value of the wrong type, out of range or too long, text with
    control characters other than newline and tab. A field given as null counts as absent.
    """
    if not isinstance(body, dict):
        raise ReportError("body", "a report must be a JSON object")
    kind = body.get("kind")
    if kind not in KINDS:
        raise ReportError("kind", f"kind must be one of: {', '.join(KINDS)}")
    required, optional = FIELDS[kind]
    given = {k: v for k, v in body.items() if k != "kind" and v is not None}
    for name in sorted(set(given) - set(required) - set(optional)):
        if name in ALL_FIELDS:
            raise ReportError(name, f"{name} does not go with a {kind} report")
        raise ReportError(name, f"unexpected field {name[:64]!r}")
    for name in required:
        if name not in given:
            raise ReportError(name, f"a {kind} report needs {name}")
    report: dict[str, Any] = {"kind": kind}
    for name in (*required, *optional):
        if name not in given:
            continue
        value = given[name]
        if name == "outcome":
            report[name] = _one_of(name, value, OUTCOMES)
        elif name == "error_class":
            report[name] = _one_of(name, value, ERROR_CLASSES)
        elif name in TEXT_LIMITS:
            report[name] = _text(name, value, TEXT_LIMITS[name], blank_ok=name == "output")
        elif name in NAME_FIELDS:
            report[name] = _name(name, value)
        elif name in TOKEN_FIELDS:
            report[name] = _tokens(name, value)
        else:  # cost_usd
            report[name] = _cost(name, value)
    if report.get("outcome") == "SUCCESS":
        for name in ("error_code", "error_class"):
            if name in report:
                raise ReportError(name, f"{name} does not go with outcome SUCCESS")
    return report


# -- the command -----------------------------------------------------------------------

EXIT_OK, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_REFUSED = 0, 2, 3, 4
URL_ENV = "DOCKYARD_BRIDGE_URL"
KEY_ENV = "DOCKYARD_REPORT_KEY_FILE"
DEFAULT_URL = "http://127.0.0.1:7777"
# where the bridge keeps the key when the environment does not say (a shell opened with
# `docker exec` lacks the agent's environment)
DEFAULT_KEY_FILE = os.path.join("~", ".dockyard", "bridge", "report-key")
TIMEOUT_S = 10.0
PROG = "dockyard-task"


class Failure(Exception):
    """The command cannot do what was asked; `code` is its exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _parser() -> Any:
    import argparse

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Report on this workspace's task to Dockyard (through its bridge).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def cost(sub: Any, required: bool) -> None:
        sub.add_argument("--tokens-in", type=_int_arg, required=required, metavar="N")
        sub.add_argument("--tokens-out", type=_int_arg, required=required, metavar="N")
        sub.add_argument("--cost-usd", type=_float_arg, metavar="X")
        sub.add_argument("--model", metavar="M")

    complete = commands.add_parser(
        "complete", help="end the task with an outcome (the workspace is then stopped)"
    )
    complete.add_argument("--outcome", required=True, choices=OUTCOMES, metavar="OUTCOME")
    complete.add_argument("--error-code", metavar="C")
    complete.add_argument("--error-class", choices=ERROR_CLASSES, metavar="CLASS")
    complete.add_argument(
        "--output", metavar="TEXT", help=f"the result (at most {MAX_OUTPUT} bytes; - reads stdin)"
    )
    cost(complete, required=False)
    progress = commands.add_parser("progress", help="say how far the task is")
    progress.add_argument("note", nargs="+", metavar="NOTE")
    ask = commands.add_parser(
        "ask", help="ask the user a question; the answer comes as the next prompt"
    )
    ask.add_argument("question", nargs="+", metavar="QUESTION")
    usage = commands.add_parser("usage", help="add tokens and cost to the task's totals")
    cost(usage, required=True)
    return parser


def _int_arg(text: str) -> int:
    import argparse

    try:
        return int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def _float_arg(text: str) -> float:
    import argparse

    try:
        return float(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def report_from_args(args: Any, stdin: Any = None) -> dict[str, Any]:
    """The report body the parsed arguments ask for (unchecked)."""
    if args.command == PROGRESS:
        return {"kind": PROGRESS, "note": " ".join(args.note)}
    if args.command == ASK:
        return {"kind": ASK, "question": " ".join(args.question)}
    body: dict[str, Any] = {"kind": args.command}
    if args.command == COMPLETE:
        output = args.output
        if output == "-":
            stream = sys.stdin if stdin is None else stdin
            output = stream.read(MAX_OUTPUT * 4 + 1)
        body.update(
            outcome=args.outcome,
            error_code=args.error_code,
            error_class=args.error_class,
            output=output,
        )
    body.update(
        tokens_in=args.tokens_in,
        tokens_out=args.tokens_out,
        cost_usd=args.cost_usd,
        model=args.model,
    )
    return {k: v for k, v in body.items() if v is not None}


def _read_key(environ: dict[str, str]) -> str:
    path = environ.get(KEY_ENV) or os.path.expanduser(DEFAULT_KEY_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            key = f.read(4096).strip()
    except OSError as exc:
        raise Failure(
            EXIT_UNREACHABLE,
            f"cannot read the report key {path}: {exc.strerror or exc}; "
            "dockyard-task runs inside a Dockyard workspace",
        ) from None
    if not key:
        raise Failure(EXIT_UNREACHABLE, f"the report key file {path} is empty")
    return key


def send(report: dict[str, Any], environ: dict[str, str]) -> dict[str, Any]:
    """POST the report to the bridge; its answer ({"ok", "id", "seq"}) or Failure."""
    import urllib.error
    import urllib.request

    key = _read_key(environ)
    url = (environ.get(URL_ENV) or DEFAULT_URL).rstrip("/") + "/dockyard/report"
    request = urllib.request.Request(
        url,
        data=json.dumps(report).encode("utf-8"),
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    # never through a proxy the workspace's environment names: the bridge is local
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=TIMEOUT_S) as response:
            answer: dict[str, Any] = json.loads(response.read() or b"{}")
            return answer
    except urllib.error.HTTPError as exc:
        detail = _detail(exc.read())
        raise Failure(
            EXIT_REFUSED, f"the bridge refused the report ({exc.code}): {detail}"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Failure(EXIT_UNREACHABLE, f"cannot reach the bridge at {url}: {reason}") from None


def _detail(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:500].decode("utf-8", "replace")
    if isinstance(data, dict) and isinstance(data.get("detail"), str):
        return str(data["detail"])
    return body[:500].decode("utf-8", "replace")


_DONE = {
    COMPLETE: "reported the outcome {outcome}; Dockyard ends the task",
    PROGRESS: "progress noted",
    ASK: "question sent; the answer comes as the next prompt",
    USAGE: "usage added",
}


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> int:
    """Run the command; the exit code (see the module's docstring)."""
    parser = _parser()
    args = parser.parse_args(argv)  # exits 2 with argparse's message when wrong
    env = dict(os.environ if environ is None else environ)
    try:
        report = check_report(report_from_args(args))
    except ReportError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return EXIT_USAGE
    try:
        answer = send(report, env)
    except Failure as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return exc.code
    said = _DONE[report["kind"]].format(outcome=report.get("outcome", ""))
    sys.stdout.write(f"{PROG}: {said} (report {answer.get('id', '?')})\n")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
