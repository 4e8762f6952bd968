"""Git in and out of workspaces: what is checked and built here is pure (URL and ref
checks, the scripts git runs with, parsing what they print); running them is the engine's
(`engine/gitops.py`)."""
