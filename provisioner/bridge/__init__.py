"""The bridge: owns the agent's terminal inside a workspace and serves an agentapi-like API."""
