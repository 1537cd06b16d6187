"""Writer keys (stored hashed), names bound per story, blocks, hidden paragraphs, idempotent adds."""

import sqlalchemy as sa
from alembic import op

revision = "m004"
down_revision = "m003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "writers",
        sa.Column("id", sa.Text, primary_key=True),  # public: the first 16 hex digits of the key's SHA-256
        sa.Column("key_sha256", sa.Text, nullable=False, unique=True),
        sa.Column("created_at", sa.Text, nullable=False),
    )
    op.create_table(
        "story_names",
        sa.Column("story_id", sa.BigInteger, sa.ForeignKey("stories.id"), primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("writer_id", sa.Text, nullable=False),
        sa.Column("bound_at", sa.Text, nullable=False),
    )
    op.create_table(
        "blocked_writers",
        sa.Column("story_id", sa.BigInteger, sa.ForeignKey("stories.id"), primary_key=True),
        sa.Column("writer_id", sa.Text, primary_key=True),
        sa.Column("blocked_at", sa.Text, nullable=False),
    )
    op.add_column("stories", sa.Column("creator_id", sa.Text))
    op.add_column("paragraphs", sa.Column("writer_id", sa.Text))
    op.add_column("paragraphs", sa.Column("client_id", sa.Text))
    op.add_column("paragraphs", sa.Column("hidden", sa.Integer, nullable=False, server_default="0"))
    op.create_index(
        "paragraphs_by_client_id", "paragraphs", ["story_id", "client_id"], unique=True,
        sqlite_where=sa.text("client_id IS NOT NULL"), postgresql_where=sa.text("client_id IS NOT NULL"),
    )
