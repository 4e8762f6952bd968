"""What a prompt may hold: control characters, invalid Unicode and size (pure checks)."""

from __future__ import annotations

import json

import pytest

from provisioner.bridge.runtime.http import MAX_BODY
from provisioner.errors import ParameterError, PayloadTooLarge
from provisioner.prompts import (
    MAX_PROMPT_BYTES,
    check_prompt,
    check_strings,
    describe,
    refusal_reason,
)


def test_text_newlines_and_tabs_pass_and_crlf_becomes_a_newline() -> None:
    assert check_prompt("fix\tit\r\nthen test\n") == "fix\tit\nthen test\n"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("text\u0015/write x y", "U+0015 (Ctrl-U) at position 4"),
        ("\u0004", "U+0004 (Ctrl-D) at position 0"),
        ("a\x03", "U+0003 (Ctrl-C) at position 1"),
        ("a\x1a", "U+001A (Ctrl-Z)"),
        ("a\x1c", "U+001C (Ctrl-\\)"),
        ("a\x16b", "U+0016 (Ctrl-V)"),
        ("a\x17b", "U+0017 (Ctrl-W)"),
        ("a\x7fb", "U+007F (Delete)"),
        ("a\rb", "U+000D (carriage return) at position 1"),
        ("a\x1b[2J", "U+001B (Escape)"),
        ("a\x9b2J", "U+009B (CSI)"),
        ("a\x85", "U+0085 (C1 control)"),
    ],
)
def test_control_characters_are_refused_by_name_and_position(text: str, named: str) -> None:
    with pytest.raises(ParameterError) as caught:
        check_prompt(text)
    message = str(caught.value)
    assert f"the prompt contains control character {named}" in message
    assert message.endswith("only newlines and tabs are allowed")


def test_a_prompt_over_the_limit_is_refused_with_the_limit() -> None:
    assert check_prompt("x" * MAX_PROMPT_BYTES)
    with pytest.raises(PayloadTooLarge) as caught:
        check_prompt("é" * (MAX_PROMPT_BYTES // 2 + 1))
    assert str(caught.value).startswith(
        f"the prompt is {MAX_PROMPT_BYTES + 2} bytes; "
        f"Dockyard takes at most {MAX_PROMPT_BYTES} bytes (256 KiB)"
    )


@pytest.mark.parametrize("char", ["\U0001f600", "\n", '"', "\\", "\u4e2d"])
def test_the_largest_prompt_fits_the_bridges_body_limit_json_escaped(char: str) -> None:
    size = len(char.encode("utf-8"))
    prompt = check_prompt(char * (MAX_PROMPT_BYTES // size))
    # as the engine's client sends it: json.dumps escapes everything beyond ASCII
    body = json.dumps({"content": prompt, "type": "user", "id": "f" * 64}).encode()
    assert len(body) < MAX_BODY


def test_invalid_unicode_and_nul_are_refused_naming_the_field() -> None:
    with pytest.raises(ParameterError, match=r"^the prompt contains an unpaired surrogate U\+D800"):
        check_prompt("x \ud800")
    with pytest.raises(ParameterError, match=r"^parameters\.memory contains NUL at position 1"):
        check_strings({"memory": "1\x00"}, "parameters")
    with pytest.raises(ParameterError, match=r"^a key of parameters contains an unpaired"):
        check_strings({"k\udc00": "v"}, "parameters")
    with pytest.raises(ParameterError, match=r"^parameters\.list\[1\] contains"):
        check_strings({"list": ["ok", "\udfff"]}, "parameters")
    check_strings({"fine": ["text", 1, None, {"deep": "é"}]}, "parameters")


def test_messages_never_echo_a_huge_name() -> None:
    with pytest.raises(ParameterError) as caught:
        check_strings({"k" * 10_000: "\ud800"}, "parameters")
    assert len(str(caught.value)) < 200


def test_describe() -> None:
    assert describe("\x00") == "U+0000 (NUL)"
    assert describe("\x01") == "U+0001 (Ctrl-A)"


def test_only_a_refusal_for_good_fails_a_prompt() -> None:
    assert refusal_reason(413, '{"error": "body larger than 1048576 bytes"}') == (
        "the workspace's bridge refused it (413): body larger than 1048576 bytes"
    )
    # agentapi's ErrorModel, as the bridge answers now
    problem = {"title": "Unprocessable Entity", "status": 422, "detail": "content must be a"}
    problem["errors"] = [{"location": "body.content", "message": "content must be a"}]
    assert refusal_reason(422, json.dumps(problem)) == (
        "the workspace's bridge refused it (422): content must be a"
    )
    assert refusal_reason(400, "not json " + "z" * 500) is not None
    assert len(refusal_reason(400, "z" * 5000) or "") < 150  # never the whole body
    for passing in (401, 404, 409, 429, 500, 502, 503):
        assert refusal_reason(passing, '{"error": "the agent has exited"}') is None


def test_a_bridge_error_says_what_the_bridge_said() -> None:
    from provisioner.bridge.client import BridgeError

    problem = json.dumps({"title": "Conflict", "status": 409, "detail": "the agent has exited"})
    assert BridgeError(409, problem).detail == "the agent has exited"
    assert BridgeError(409, '{"error": "stopping"}').detail == "stopping"  # an older bridge
    assert BridgeError(502, "<html>bad gateway</html>").detail == "<html>bad gateway</html>"
    assert BridgeError(500, "[1]").detail == "[1]"
