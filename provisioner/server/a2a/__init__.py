"""The A2A endpoint (a2a-sdk, protocol 1.0 with 0.3 compatibility): the agent card at
/.well-known/agent-card.json and JSON-RPC at /a2a. An A2A task is a Dockyard task.

mapping (pure: Dockyard task -> A2A task, message -> prompt, skills), taskstore (the
SDK's TaskStore over Dockyard's store, owner-scoped), handler (the JSON-RPC methods over
the engine), routes (the card, the endpoint and who the caller is)."""
