"""The engine: level-triggered reconcile of tasks against workspaces and bridges."""
