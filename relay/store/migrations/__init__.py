"""Alembic migrations of the story store (run by relay.store.schema.migrate when a store opens)."""
