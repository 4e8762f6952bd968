"""Templates and presets: loading, validating and rendering them into a workspace spec."""
