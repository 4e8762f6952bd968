"""The vocabulary the bridge, the server and the CLI share on the wire (stdlib only: the
bridge imports it from its zipapp, the CLI without loading anything heavy).

Prompt delivery states and the bridge's states around its agent. (The bridge's config
has one wire form too: runtime.config.config_document.)
"""

from __future__ import annotations

# A prompt's delivery: queued (sent, not yet typed), delivered (typed, the agent has not
# started on it), taken (the agent took it), failed (it could not be typed whole or was
# refused; the reason says why). Taken and failed are final.
QUEUED, DELIVERED, TAKEN, FAILED = "queued", "delivered", "taken", "failed"
PROMPT_STATES = (QUEUED, DELIVERED, TAKEN, FAILED)
PROMPT_FINISHED = (TAKEN, FAILED)

# The bridge's state: the agent's (starting, working, idle, exited), and its own around
# it (the setup script before the agent, instead of it when it failed, while stopping).
STARTING, WORKING, IDLE, EXITED = "starting", "working", "idle", "exited"
SETUP, SETUP_FAILED, STOPPING = "setup", "setup_failed", "stopping"
BRIDGE_STATES = (SETUP, SETUP_FAILED, STARTING, WORKING, IDLE, EXITED, STOPPING)
