"""The HTTP server: REST API over the engine (FastAPI + uvicorn)."""
