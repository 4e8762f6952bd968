"""The Jinja sandbox templates render in, with bounds on what one rendering may cost.

Jinja's sandbox keeps templates away from Python's internals, not from the machine's
memory and time: `{{ 'x' * 10**10 }}`, `{{ 'x'.ljust(10**10) }}` or nested loops over big
ranges would stall or kill the server that renders them (on every reconcile tick, too).
Here a rendering is refused once its output passes MAX_RENDERED_BYTES or it runs longer
than MAX_RENDER_SECONDS, and the operators and calls that make big values in one step
are checked before they run.
"""

from __future__ import annotations

import re
import shlex
import sys
import time
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from provisioner.errors import TemplateError

MAX_RENDERED_BYTES = 1024 * 1024  # one rendered file or field
MAX_RENDER_SECONDS = 3.0
# The largest integer a template may pass to a call or use as a repeat count or a power:
# more than any real width or count, far less than what exhausts memory.
MAX_ARGUMENT = MAX_RENDERED_BYTES
_WIDTH = re.compile(r"%[-+ #0]*(\d+|\*)|\{[^{}]*:[^{}]*?(\d{7,})")


class RenderLimit(TemplateError):
    """A rendering went past one of the bounds."""


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple) else None


def _check_argument(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_ARGUMENT:
        raise RenderLimit(f"a number larger than {MAX_ARGUMENT} is not allowed in a call")


def _bounded_concat(parts: Iterable[Any]) -> str:
    """ "".join, refused past MAX_RENDERED_BYTES (`{% set %}` blocks, macros, `~`)."""
    out: list[str] = []
    size = 0
    for part in parts:
        text = str(part)
        size += len(text)
        if size > MAX_RENDERED_BYTES:
            raise RenderLimit(f"a text larger than {MAX_RENDERED_BYTES >> 10} KiB")
        out.append(text)
    return "".join(out)


class _CodeGenerator(CodeGenerator):
    """`a ~ b` through the bounded concat (Jinja joins it with plain str.join)."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedEnvironment(SandboxedEnvironment):
    """A SandboxedEnvironment whose `*`, `**`, `%`, `~`, joins and calls cannot make huge
    values."""

    intercepted_binops = frozenset({"*", "**", "%"})
    code_generator_class = _CodeGenerator
    concat = staticmethod(_bounded_concat)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                size = _size(seq)
                if size is not None and isinstance(times, int) and size * times > MAX_ARGUMENT:
                    raise RenderLimit(f"a repeat making more than {MAX_ARGUMENT} items")
        elif operator == "**":
            exact = isinstance(left, int) and isinstance(right, int) and right > 0
            if exact and left.bit_length() * right > 4096:  # exact ints of any size are slow
                raise RenderLimit("a power larger than 2**4096")
            if isinstance(right, int | float) and abs(right) > MAX_ARGUMENT:
                raise RenderLimit(f"an exponent larger than {MAX_ARGUMENT}")
        elif operator == "%" and isinstance(left, str):
            _check_percent(left)
        return super().call_binop(context, operator, left, right)

    def call(
        __self,  # Jinja's signature: a template may pass `self` as a keyword
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        for value in (*args, *kwargs.values()):
            _check_argument(value)
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            method = getattr(__obj, "__name__", "")
            if method in ("format", "format_map"):
                _check_format(owner)
            elif method == "replace":
                _check_replace(owner, args)
            elif method == "join" and args:
                _check_join(owner, args[0])
        return super().call(__context, __obj, *args, **kwargs)


def _check_format(text: str) -> None:
    for match in re.finditer(r"\{[^{}]*:[^{}]*?(\d+)", text):
        if int(match.group(1)) > MAX_ARGUMENT:
            raise RenderLimit(f"a format width larger than {MAX_ARGUMENT}")


def _check_replace(text: str, args: tuple[Any, ...]) -> None:
    if len(args) >= 2 and isinstance(args[1], str):
        growth = max(len(args[1]), 1) * (len(text) + 1)
        if growth > MAX_ARGUMENT * 4:
            raise RenderLimit(f"a replace making more than {MAX_ARGUMENT} characters")


def _check_join(separator: str, items: Any) -> None:
    count = len(items) if hasattr(items, "__len__") else 0
    if len(separator) * count > MAX_RENDERED_BYTES:
        raise RenderLimit(f"a join making more than {MAX_RENDERED_BYTES >> 10} KiB")


def _check_percent(text: str) -> None:
    for match in _WIDTH.finditer(text):
        width = match.group(1) or match.group(2)
        if width == "*" or (width and int(width) > MAX_ARGUMENT):
            raise RenderLimit(f"a format width larger than {MAX_ARGUMENT}")


def _bounded_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """`original` with its arguments checked first (the value is the first one after the
    context, eval context or environment Jinja may pass)."""
    skip = 1 if hasattr(original, "jinja_pass_arg") else 0

    def checked(*args: Any, **kwargs: Any) -> Any:
        given = args[skip:]
        for value in (*given, *kwargs.values()):
            _check_argument(value)
        value = given[0] if given else None
        if name == "replace" and isinstance(value, str):
            _check_replace(value, given[1:])
        elif name == "format" and isinstance(value, str):
            _check_percent(value)
        elif name == "join" and len(given) >= 2 and isinstance(given[1], str):
            _check_join(given[1], given[0])
        elif name == "indent" and isinstance(value, str):
            width = given[1] if len(given) > 1 else kwargs.get("width", "")
            if isinstance(width, str) and len(width) * (value.count("\n") + 1) > MAX_ARGUMENT:
                raise RenderLimit(f"an indent making more than {MAX_ARGUMENT} characters")
        return original(*args, **kwargs)

    for attr in ("jinja_pass_arg",):  # keep what tells Jinja to pass the context first
        if hasattr(original, attr):
            setattr(checked, attr, getattr(original, attr))
    return checked


def make_environment(**options: Any) -> BoundedEnvironment:
    """A bounded sandbox with Dockyard's filters (`shell_quote`)."""
    env = BoundedEnvironment(undefined=StrictUndefined, **options)
    env.filters = {name: _bounded_filter(name, f) for name, f in env.filters.items()}
    # `{{ value | shell_quote }}`: one shell word whatever the value holds, for anything a
    # template puts into a script or a Dockerfile's RUN line.
    env.filters["shell_quote"] = lambda value: shlex.quote(str(value))
    return env


def render_bounded(env: BoundedEnvironment, text: str, context: dict[str, Any], where: str) -> str:
    """Render `text`, refusing output past MAX_RENDERED_BYTES and time past
    MAX_RENDER_SECONDS (a trace on the template's own code checks the clock: a loop with
    no output cannot outrun it)."""
    template = env.from_string(text)
    deadline = time.monotonic() + MAX_RENDER_SECONDS

    def on_line(frame: FrameType, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise RenderLimit(f"{where}: rendering took longer than {MAX_RENDER_SECONDS:g} s")
        return on_line

    def on_call(frame: FrameType, event: str, arg: Any) -> Any:
        # only frames of template code are traced line by line (they are cheap to watch)
        return on_line if frame.f_code.co_filename == "<template>" else None

    previous = sys.gettrace()
    sys.settrace(on_call)
    parts: list[str] = []
    size = 0
    try:
        for part in template.generate(context):
            size += len(part)
            if size > MAX_RENDERED_BYTES:
                raise RenderLimit(
                    f"{where}: the rendered text is larger than {MAX_RENDERED_BYTES >> 10} KiB"
                )
            parts.append(part)
    except RenderLimit as exc:
        if exc.message.startswith(where):
            raise
        raise RenderLimit(f"{where}: {exc.message}") from None
    except (OverflowError, MemoryError, RecursionError) as exc:
        # Jinja's own guard (range) raises OverflowError; no Python trace in the message
        raise RenderLimit(f"{where}: {type(exc).__name__}: {str(exc)[:120]}") from None
    finally:
        sys.settrace(previous)
    return "".join(parts)
