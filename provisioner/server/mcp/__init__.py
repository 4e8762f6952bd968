"""The MCP server at /mcp: Dockyard's queue as tools for agents (PyPI `mcp` 2.x,
Streamable HTTP). docs/mcp.md describes the tools; args.py checks their arguments,
actions.py carries them out, caller.py says who calls, app.py mounts it all."""
