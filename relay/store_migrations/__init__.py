"""Alembic migrations of the story store (run by relay.store_schema.migrate when a store opens)."""
