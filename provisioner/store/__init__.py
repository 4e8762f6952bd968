"""The task store: SQLAlchemy Core over SQLite (embedded default) or PostgreSQL."""
