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
import threading
import time
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

from jinja2 import StrictUndefined, Template, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import LRUCache

from provisioner.errors import TemplateError

MAX_RENDERED_BYTES = 1024 * 1024  # one rendered file or field
MAX_RENDER_SECONDS = 3.0
# Text and lists one rendering may make in all (operators, calls, filters, joins): what is
# made need not be output (`{% set %}` blocks, loops), so the output cap alone is no bound.
MAX_MADE_BYTES = 16 * MAX_RENDERED_BYTES
# The largest integer a template may pass to a call or use as a repeat count or a power:
# more than any real width or count, far less than what exhausts memory.
MAX_ARGUMENT = MAX_RENDERED_BYTES
# Python's integers have no size limit, and squaring one in a loop doubles it each time.
MAX_INT_BITS = 4096
COMPILED_KEPT = 256  # compiled templates an environment keeps (by their source)
MAX_KEPT_SOURCE = 8 * 1024  # a longer source is compiled every time it is rendered
# widths and precisions of %-formats and of str.format fields: each pads to its size
_PERCENT = re.compile(r"%[-+ #0]*(\d+|\*)?(?:\.(\d+|\*))?")
_FIELD_SPEC = re.compile(r"\{[^{}]*?:([^{}]*)\}")
_NESTED_SPEC = re.compile(r"\{[^{}]*:[^{}]*\{")
_WIDTH_METHODS = frozenset({"ljust", "rjust", "center", "zfill"})


class RenderLimit(TemplateError):
    """A rendering went past one of the bounds."""


_budget = threading.local()  # what the rendering under way in this thread may still make


def _made(value: Any) -> Any:
    """Count `value` against the rendering's budget; return it."""
    left = getattr(_budget, "left", None)
    size = _size(value)
    if left is not None and size:
        _budget.left = left - size
        if _budget.left < 0:
            raise RenderLimit(f"the rendering makes more than {MAX_MADE_BYTES >> 20} MiB of text")
    return value


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple) else None


def _check_width(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and value > MAX_ARGUMENT:
        raise RenderLimit(f"a width larger than {MAX_ARGUMENT}")


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
    return str(_made("".join(out)))


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

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # compiled sources: every create renders its template's same dozen fields, and
        # compiling is most of a render's time (Jinja's LRUCache is thread-safe)
        self._compiled = LRUCache(COMPILED_KEPT)

    def compiled(self, source: str) -> Template:
        """`source` compiled, once per environment (a source too large to keep, each time).
        A source that does not compile raises as from_string does, and is not kept."""
        if len(source) > MAX_KEPT_SOURCE:
            return self.from_string(source)
        template: Template | None = self._compiled.get(source)
        if template is None:
            template = self.from_string(source)
            self._compiled[source] = template
        return template

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            both_ints = isinstance(left, int) and isinstance(right, int)
            if both_ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise RenderLimit(f"a product larger than 2**{MAX_INT_BITS}")
            for seq, times in ((left, right), (right, left)):
                size = _size(seq)
                if size is not None and isinstance(times, int) and size * times > MAX_ARGUMENT:
                    raise RenderLimit(f"a repeat making more than {MAX_ARGUMENT} items")
        elif operator == "**":
            exact = isinstance(left, int) and isinstance(right, int) and right > 0
            if exact and left.bit_length() * right > MAX_INT_BITS:
                raise RenderLimit(f"a power larger than 2**{MAX_INT_BITS}")
            if isinstance(right, int | float) and abs(right) > MAX_ARGUMENT:
                raise RenderLimit(f"an exponent larger than {MAX_ARGUMENT}")
        elif operator == "%" and isinstance(left, str):
            _check_percent(left)
        return _made(super().call_binop(context, operator, left, right))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # str.format and format_map: the sandbox swaps them for a wrapper when looked up
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        _check_format(value.__self__)

        def bounded(*args: Any, **kwargs: Any) -> str:
            return str(_made(wrapped(*args, **kwargs)))

        return bounded

    def call(
        __self,  # Jinja's signature: a template may pass `self` as a keyword
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            method = getattr(__obj, "__name__", "")
            if method in _WIDTH_METHODS:
                for value in (*args, *kwargs.values()):
                    _check_width(value)
            elif method == "expandtabs":
                size = args[0] if args else kwargs.get("tabsize", 8)
                if isinstance(size, int):
                    _check_width(size * owner.count("\t"))
            elif method == "replace":
                _check_replace(owner, args)
            elif method == "join" and args:
                _check_join(owner, args[0])
        return _made(super().call(__context, __obj, *args, **kwargs))


def _check_format(text: str) -> None:
    if _NESTED_SPEC.search(text):  # `{:{}}`: a width given as an argument
        raise RenderLimit("a format field whose width or precision is itself a field")
    for spec in _FIELD_SPEC.findall(text):
        if any(int(n) > MAX_ARGUMENT for n in re.findall(r"\d+", spec)):
            raise RenderLimit(f"a format width or precision larger than {MAX_ARGUMENT}")


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
    for match in _PERCENT.finditer(text):
        for number in match.groups():
            if number == "*" or (number and int(number) > MAX_ARGUMENT):
                raise RenderLimit(f"a format width or precision larger than {MAX_ARGUMENT}")


def _bounded_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """`original` with its arguments checked first (the value is the first one after the
    context, eval context or environment Jinja may pass)."""
    skip = 1 if hasattr(original, "jinja_pass_arg") else 0

    def checked(*args: Any, **kwargs: Any) -> Any:
        given = args[skip:]
        value = given[0] if given else None
        if name in ("center", "batch", "slice"):  # a width, or a count of items made
            _check_width(given[1] if len(given) > 1 else next(iter(kwargs.values()), None))
        if name == "replace" and isinstance(value, str):
            _check_replace(value, given[1:])
        elif name == "format" and isinstance(value, str):
            _check_percent(value)
        elif name == "join" and len(given) >= 2 and isinstance(given[1], str):
            _check_join(given[1], given[0])
        elif name == "indent" and isinstance(value, str):
            width = given[1] if len(given) > 1 else kwargs.get("width", 4)
            per_line = len(width) if isinstance(width, str) else width
            if isinstance(per_line, int) and per_line * (value.count("\n") + 1) > MAX_ARGUMENT:
                raise RenderLimit(f"an indent making more than {MAX_ARGUMENT} characters")
        return _made(original(*args, **kwargs))

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
    template = env.compiled(text)
    deadline = time.monotonic() + MAX_RENDER_SECONDS

    def on_line(frame: FrameType, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise RenderLimit(f"{where}: rendering took longer than {MAX_RENDER_SECONDS:g} s")
        return on_line

    def on_call(frame: FrameType, event: str, arg: Any) -> Any:
        # only frames of template code are traced line by line (they are cheap to watch)
        return on_line if frame.f_code.co_filename == "<template>" else None

    previous = sys.gettrace()
    outer = getattr(_budget, "left", None)  # a default rendered within a rendering
    _budget.left = MAX_MADE_BYTES
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
        _budget.left = outer
    return "".join(parts)
