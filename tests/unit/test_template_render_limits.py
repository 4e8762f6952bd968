"""Rendering is bounded (output size, time, huge values made in one step) and number
parameters are finite and bounded: a template or a value cannot stall or crash the server."""

from __future__ import annotations

import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from jinja2 import TemplateSyntaxError

from provisioner.errors import ParameterError, TemplateError
from provisioner.templating import sandbox
from provisioner.templating.catalog import Catalog
from provisioner.templating.render import render_string, render_workspace
from provisioner.templating.validate import validate_template

WHERE = "t/template.yaml: field setup"


@pytest.mark.parametrize(
    "text",
    [
        "{{ range(100000000)|list }}",
        "{{ 'x' * 10**9 }}",
        "{{ ['x'] * 10**9 }}",
        "{{ 7 ** 1000000 }}",
        "{% set ns = namespace(x=3) %}{% for i in range(100) %}{% set ns.x = ns.x * ns.x %}"
        "{% endfor %}{{ ns.x > 1 }}",
        "{{ [1]|batch(1000000000, 'x')|list }}",
        "{{ 'x'.ljust(10**9) }}",
        "{{ 'x'|center(1000000000) }}",
        "{{ '%1000000000s' % 'x' }}",
        "{{ '%*s' % (1000000000, 'x') }}",
        "{{ '%1000000000s'|format('x') }}",
        "{{ '%.1000000000f' % 1.0 }}",
        "{{ '{:>1000000000}'.format('x') }}",
        "{{ '{:.1000000000f}'.format(1.0) }}",
        "{{ '{:{}}'.format('x', 1000000000) }}",
        "{{ ('\t' * 1000).expandtabs(1000000) }}",
        "{{ 'x'.zfill(1000000000) }}",
        "{{ ('\n' * 1000000)|indent(1000000) }}",
        "{{ ('x' * 1000000)|replace('x', 'y' * 1000000) }}",
        "{{ ('x' * 1000000).replace('x', 'y' * 1000000) }}",
        "{{ range(100000)|join('x' * 1000000) }}",
        "{{ ('x' * 1000000).join(['a'] * 1000000) }}",
        "{{ ('\\n' * 1000000)|indent('x' * 1000000) }}",
        "{% macro d(s, n) %}{{ d(s ~ s, n - 1) if n else s|length }}{% endmacro %}{{ d('x', 40) }}",
        "{% set s %}{% for i in range(100000) %}{{ 'x' * 1000000 }}{% endfor %}{% endset %}"
        "{{ s|length }}",
        "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
    ],
)
def test_huge_renderings_are_refused_quickly(text: str) -> None:
    started = time.monotonic()
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError) as caught:
            render_string(text, {}, WHERE)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < sandbox.MAX_RENDER_SECONDS + 1
    assert peak < sandbox.MAX_MADE_BYTES + (8 << 20)
    assert str(caught.value).startswith(WHERE) and len(str(caught.value)) < 300


def test_the_output_cap_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TemplateError, match=f"{WHERE}: the rendered text is larger than 1024 KiB"):
        render_string("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", {}, WHERE)


def test_a_busy_loop_without_output_runs_out_of_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "MAX_RENDER_SECONDS", 0.5)
    tracer = sys.gettrace()
    started = time.monotonic()
    with pytest.raises(TemplateError, match=f"{WHERE}: rendering took longer than 0.5 s"):
        render_string(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            {},
            WHERE,
        )
    assert time.monotonic() - started < 2
    assert sys.gettrace() is tracer  # whoever traced before (coverage) still does


def test_ordinary_templates_render_as_before() -> None:
    text = "{% for i in range(3) %}{{ i ~ '-' ~ name|upper }} {% endfor %}{{ '%5s' % 'x' }}"
    assert render_string(text, {"name": "a"}, WHERE) == "0-A 1-A 2-A     x"
    fields = "{{ '{}://{}'.format('http', 'h') }} {{ '{a}:{b:>3}'.format_map({'a': 1, 'b': 2}) }}"
    assert render_string(fields, {}, WHERE) == "http://h 1:  2"
    big = "{{ '%d'|format(4294967296) }} {{ '{:,}'.format(10**12) }} {{ 4096 * 1048576 }}"
    assert render_string(big, {}, WHERE) == "4294967296 1,000,000,000,000 4294967296"
    assert render_string("{{ 'ab' * 3 }}{{ 2 ** 10 }}", {}, WHERE) == "ababab1024"
    assert render_string("{{ v | shell_quote }}", {"v": "a b"}, WHERE) == "'a b'"


def write_template(folder: Path, command: str, params: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "template.yaml").write_text(
        f"name: demo\nparameters:\n{params or '  - {name: n, type: number, default: 1}'}\n"
        f"agent:\n  command: [{command!r}]\n"
    )
    return folder


def test_validate_reports_a_template_that_renders_too_much(tmp_path: Path) -> None:
    folder = write_template(tmp_path / "demo", "{{ range(100000000)|list }}")
    report = validate_template(folder, preset_dirs=[])
    assert report.errors and "agent.command[0]" in report.errors[0]


@pytest.mark.parametrize(
    "value",
    ["1e999", "-1e999", "nan", "inf", "1" * 400, 10**400, 1e300, -(10**16), "1" * 5000],
    ids=[
        "1e999",
        "-1e999",
        "nan",
        "inf",
        "400-digit text",
        "400-digit int",
        "1e300",
        "-1e16",
        "5000-digit text",
    ],
)
@pytest.mark.parametrize("kind", ["number", "integer"])
def test_numbers_are_finite_and_bounded(tmp_path: Path, kind: str, value: Any) -> None:
    folder = write_template(tmp_path / "demo", "run", f"  - {{name: size, type: {kind}}}")
    template = Catalog([tmp_path], []).get("demo")
    with pytest.raises(ParameterError) as caught:
        render_workspace(template, None, {"size": value})
    message = str(caught.value)
    assert message.startswith("Parameter size from --param: expected") and "1e+15" in message
    assert len(message) < 300
    assert folder.exists()


def test_ordinary_numbers_still_parse(tmp_path: Path) -> None:
    write_template(
        tmp_path / "demo", "run", "  - {name: a, type: number}\n  - {name: b, type: integer}"
    )
    template = Catalog([tmp_path], []).get("demo")
    spec = render_workspace(template, None, {"a": "2.5", "b": "1e3"})
    assert spec.parameters == {"a": 2.5, "b": 1000}


def test_a_source_is_compiled_once_and_its_limits_hold_every_time() -> None:
    env = sandbox.make_environment(keep_trailing_newline=True)
    text = "{{ 'x' * n }}\n"
    first = env.compiled(text)
    assert env.compiled(text) is first  # kept: the same dozen fields render per create
    assert sandbox.render_bounded(env, text, {"n": 3}, WHERE) == "xxx\n"
    # a kept template is bounded on every render, not only the first
    with pytest.raises(sandbox.RenderLimit):
        sandbox.render_bounded(env, text, {"n": 10**9}, WHERE)
    # another environment's options give another compilation
    other = sandbox.make_environment()
    assert sandbox.render_bounded(other, text, {"n": 1}, WHERE) == "x"
    # too long to keep: compiled each time; a source that does not compile is not kept
    long = "y" * (sandbox.MAX_KEPT_SOURCE + 1)
    assert env.compiled(long) is not env.compiled(long)
    for _ in range(2):
        with pytest.raises(TemplateSyntaxError):
            env.compiled("{{ unclosed")
