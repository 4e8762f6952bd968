"""Targets (named routes of the server's config) and routing a new task: pure logic, and
the config file read as the server reads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from provisioner import paths
from provisioner.errors import DockyardError, ParameterError
from provisioner.routing import (
    MAX_CODEBASES,
    MAX_TARGETS,
    Route,
    Target,
    limits_of,
    parse_targets,
    route,
    template_and_preset,
)

CONFIG = {
    "builder": {
        "template": "aider",
        "preset": "default",
        "max_concurrent": 2,
        "codebases": ["api-server", "global"],
    },
    "reviewer": {"template": "scripted", "codebases": ["global", "web"]},
    "plain": {"template": "scripted"},
}


def test_targets_parse_with_their_defaults() -> None:
    targets = parse_targets(CONFIG)
    assert targets["builder"] == Target("builder", "aider", "default", 2, ("api-server", "global"))
    assert targets["plain"] == Target("plain", "scripted")
    assert list(targets) == ["builder", "reviewer", "plain"]  # config order kept
    assert limits_of(targets) == {"builder": 2}
    assert parse_targets(None) == {}
    # one codebase may be given bare; duplicates are dropped
    assert parse_targets({"t": {"template": "x", "codebases": "a"}})["t"].codebases == ("a",)
    assert parse_targets({"t": {"template": "x", "codebases": ["a", "a"]}})["t"].codebases == ("a",)
    assert (
        parse_targets({"t": {"template": "x", "max_concurrent": "unlimited"}})["t"].max_concurrent
        is None
    )


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ([{"template": "x"}], "targets: expected a mapping"),
        ("builder", "targets: expected a mapping"),
        ({"b": "aider"}, "targets.b: expected a mapping with template"),
        ({"b": {"template": "x", "max_concurent": 2}}, "targets.b: unknown key 'max_concurent'"),
        ({"b": {"preset": "default"}}, "targets.b.template: missing"),
        ({"b": {"template": None}}, "targets.b.template: missing"),
        ({"b": {"template": 3}}, "targets.b.template: expected a name, got int"),
        ({"b": {"template": "../../etc"}}, "targets.b.template: Invalid name"),
        ({"b": {"template": "x\nrm -rf /"}}, "targets.b.template: Invalid name"),
        ({"b": {"template": "x", "preset": ["p"]}}, "targets.b.preset: expected a name"),
        ({"b": {"template": "x", "max_concurrent": 0}}, "targets.b.max_concurrent: must be"),
        ({"b": {"template": "x", "max_concurrent": -1}}, "targets.b.max_concurrent: must be"),
        ({"b": {"template": "x", "max_concurrent": True}}, "targets.b.max_concurrent: expected"),
        ({"b": {"template": "x", "max_concurrent": "2x"}}, "targets.b.max_concurrent: expected"),
        ({"b": {"template": "x", "max_concurrent": 1.5}}, "targets.b.max_concurrent: expected"),
        ({"b": {"template": "x", "codebases": {"a": 1}}}, "targets.b.codebases: expected a list"),
        ({"b": {"template": "x", "codebases": [None]}}, "targets.b.codebases: expected a name"),
        ({"b": {"template": "x", "codebases": ["a b"]}}, "targets.b.codebases: Invalid name"),
        (
            {"b": {"template": "x", "codebases": [f"c{i}" for i in range(MAX_CODEBASES + 1)]}},
            f"at most {MAX_CODEBASES}",
        ),
        ({"bad name": {"template": "x"}}, "targets: target name: Invalid name 'bad name'"),
        ({7: {"template": "x"}}, "targets: target name: expected a name, got int"),
        ({"x" * 65: {"template": "x"}}, "targets: target name: Invalid name"),
        ({f"t{i}": {"template": "x"} for i in range(MAX_TARGETS + 1)}, f"at most {MAX_TARGETS}"),
    ],
)
def test_a_bad_target_is_refused_naming_the_key(config: Any, error: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_targets(config)
    assert error in str(caught.value)


def test_the_server_reads_targets_from_its_config_file(tmp_path: Path) -> None:
    assert paths.targets(tmp_path) == {}
    (tmp_path / "config.yaml").write_text(
        "targets:\n  builder: {template: aider, max_concurrent: 2, codebases: [api]}\n"
    )
    assert paths.targets(tmp_path)["builder"].max_concurrent == 2
    (tmp_path / "config.yaml").write_text("targets:\n  builder: {template: aider, limit: 2}\n")
    with pytest.raises(DockyardError) as caught:
        paths.targets(tmp_path)
    assert "config.yaml: targets.builder: unknown key 'limit'" in str(caught.value)


def test_a_named_target_wins_and_an_unknown_one_is_refused() -> None:
    targets = parse_targets(CONFIG)
    assert route(targets, "reviewer", "api-server") == Route(targets["reviewer"])
    with pytest.raises(ParameterError) as caught:
        route(targets, "nope", None)
    assert "Unknown target 'nope' (targets: builder, plain, reviewer)" in str(caught.value)
    with pytest.raises(ParameterError) as caught:
        route({}, "nope", None)
    assert "none are configured" in str(caught.value)
    assert route(targets, None, None) == Route()


def test_a_codebase_goes_to_the_least_loaded_target_serving_it() -> None:
    targets = parse_targets(CONFIG)
    assert route(targets, None, "api-server").target == targets["builder"]
    assert route(targets, None, "web").target == targets["reviewer"]
    # global is served by the targets registered global: first in config order on a tie
    assert route(targets, None, "global").target == targets["builder"]
    assert (
        route(targets, None, "global", {"builder": 3, "reviewer": 1}).target
        == (targets["reviewer"])
    )
    # no fallback to global targets: a codebase nobody serves waits
    assert route(targets, None, "mobile") == Route(unserved=True)
    assert route({}, None, "global") == Route(unserved=True)


def test_an_explicit_template_and_preset_override_the_targets() -> None:
    builder = Route(parse_targets(CONFIG)["builder"])
    assert template_and_preset(builder, None, None) == ("aider", "default")
    assert template_and_preset(builder, None, "fast") == ("aider", "fast")
    # the target's preset belongs to the target's template: not carried to another
    assert template_and_preset(builder, "scripted", None) == ("scripted", None)
    assert template_and_preset(Route(), None, None) == (None, None)
    assert template_and_preset(Route(unserved=True), "scripted", "p") == ("scripted", "p")
