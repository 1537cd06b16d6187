"""The story store's package: `errors`, `validation` (input checks), `schema` (the database URL, the
engine, the tables, `migrate()`) and `migrations/` (Alembic). `relay.story_store` is its public entry point.
"""
