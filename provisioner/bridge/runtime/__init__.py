"""Code that runs inside the workspace container: stdlib and pyte only, relative imports."""
