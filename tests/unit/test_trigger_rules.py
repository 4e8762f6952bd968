"""Triggers' pure rules (provisioner.triggers): signatures, and rendering bounded."""

from __future__ import annotations

import pytest

from provisioner.errors import ParameterError, TemplateError
from provisioner.triggers import (
    FORMS,
    check_delivery,
    check_filter,
    check_prompt_template,
    context,
    github_signature,
    passes,
    render_prompt,
)
from provisioner.webhooks import signature

SECRET = "0123456789abcdef"


def test_github_signatures() -> None:
    body = b'{"a": 1}'
    good = {"x-hub-signature-256": github_signature(SECRET, body), "x-github-delivery": "d1"}
    assert check_delivery(SECRET, good, body, 0).ok
    assert check_delivery(SECRET, good, body, 0).delivery_id == "d1"
    assert not check_delivery("another-secret-x", good, body, 0).ok
    assert not check_delivery(SECRET, {**good, "x-hub-signature-256": "sha256=00"}, body, 0).ok
    assert not check_delivery(SECRET, {}, body, 0).ok
    # an id with control characters or too long is not trusted as one (no replay key)
    odd = {**good, "x-github-delivery": "a\nb"}
    assert check_delivery(SECRET, odd, body, 0).delivery_id is None
    assert (
        check_delivery(SECRET, {**good, "x-github-delivery": "x" * 200}, body, 0).delivery_id
        is None
    )


def test_dockyard_signatures_need_a_recent_timestamp() -> None:
    body = '{"prompt": "hi"}'
    headers = {
        "x-dockyard-signature": signature(SECRET, 1000, body),
        "x-dockyard-timestamp": "1000",
    }
    assert check_delivery(SECRET, headers, body.encode(), 1100).ok
    assert not check_delivery(SECRET, headers, body.encode(), 5000).ok
    assert not check_delivery(SECRET, headers, b"\xff", 1100).ok


def test_every_form_renders_its_sample_and_passes_its_filter() -> None:
    for name, form in FORMS.items():
        ctx = context(form.sample, form.event, "d", name)
        assert passes(check_filter(form.filter), ctx), name
        assert render_prompt(check_prompt_template(form.prompt_template), ctx), name


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'x' * 10**9 }}",
        "{{ 'x'.ljust(10**9) }}",
        "{% for i in range(10**6) %}{% for j in range(10**6) %}{% endfor %}{% endfor %}",
        "{{ payload.p * 300000 }}",
    ],
)
def test_a_rendering_is_bounded(template: str) -> None:
    with pytest.raises(TemplateError):
        render_prompt(check_prompt_template(template), context({"p": "x"}, None, None, "t"))


@pytest.mark.parametrize(
    "text",
    [
        "{{ ''.__class__ }}",
        "{{ payload['__class__'] }}",
        "{{ payload | attr('__class__') }}",
        "{{ [payload] | map(attribute='__class__') | list }}",
        "{{ self.__init__ }}",
        "{{ _private }}",
    ],
)
def test_private_names_are_refused(text: str) -> None:
    with pytest.raises(ParameterError, match="_"):
        check_prompt_template(text)
    with pytest.raises(ParameterError):
        check_filter(text.strip("{} "))


def test_the_sandbox_refuses_what_slips_past_the_names_check() -> None:
    # a name made at run time: not seen when the trigger is created, refused rendering
    sneaky = "{{ payload | attr(('_' ~ '_class_' ~ '_')) }}"
    with pytest.raises(TemplateError):
        render_prompt(check_prompt_template(sneaky), context({}, None, None, "t"))


def test_deep_nesting_is_refused_not_a_crash() -> None:
    with pytest.raises(ParameterError, match="nests"):
        check_prompt_template("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}")
    with pytest.raises(ParameterError, match="nests"):
        check_filter("(" * 5000 + "1" + ")" * 5000)
