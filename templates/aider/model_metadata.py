#!/opt/aider/bin/python
"""Write aider's model metadata file for one model, so aider never downloads it.

Without local metadata for its model, aider fetches litellm's price map from GitHub at
start (and again on every start once that fails). This writes the entry litellm ships for
the model (context window, prices), or sane defaults for a model litellm does not know
(a local or self-hosted one), into the file aider is pointed at with
--model-metadata-file. Usage: dockyard-aider-metadata MODEL PATH. Never fails the setup.
"""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path

# litellm ships its model list (context windows, prices) inside the package
SHIPPED = "/opt/aider/lib/python3*/site-packages/litellm/model_prices_and_context_window*.json"
DEFAULTS = {
    "max_input_tokens": 128000,
    "max_output_tokens": 8192,
    "max_tokens": 8192,
    "input_cost_per_token": 0.0,
    "output_cost_per_token": 0.0,
    "mode": "chat",
}


def shipped_entry(model: str, pattern: str = SHIPPED) -> dict | None:
    """litellm's own entry for `model` (or for its name without the provider prefix)."""
    for path in sorted(glob.glob(pattern)):
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        entry = data.get(model)
        provider, _, name = model.partition("/")
        if not entry and name:
            candidate = data.get(name)
            if isinstance(candidate, dict) and candidate.get("litellm_provider") == provider:
                entry = candidate
        if isinstance(entry, dict):
            return entry
    return None


def main(argv: list[str], pattern: str = SHIPPED) -> int:
    if len(argv) != 3:
        sys.stderr.write("usage: dockyard-aider-metadata MODEL PATH\n")
        return 2
    model, target = argv[1], Path(argv[2])
    entry = shipped_entry(model, pattern)
    if entry is None:
        provider = model.partition("/")[0] if "/" in model else "openai"
        entry = {**DEFAULTS, "litellm_provider": provider}
        tokens = DEFAULTS["max_input_tokens"]
        print(f"{model}: not in litellm's model list; assuming a {tokens}-token context")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({model: entry}, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        print(f"warning: cannot write {target}: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
