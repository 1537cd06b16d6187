"""Alembic environment: migrations run on the connection (and transaction) the store hands over.

`relay.store.schema.migrate` opens the transaction and takes the migration lock first, so
several processes opening a new database at once apply each revision once.
"""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
