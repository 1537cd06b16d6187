"""Stories and their paragraphs (the schema of the first Relay, `m001_initial`)."""

import sqlalchemy as sa
from alembic import op

revision = "m001"
down_revision = None
branch_labels = None
depends_on = None

# INTEGER on SQLite keeps "id INTEGER PRIMARY KEY" a rowid alias; BIGSERIAL on PostgreSQL.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "stories",
        sa.Column("id", ID, primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("turn_rule", sa.Text, nullable=False),
        sa.Column("settings", sa.Text, nullable=False, server_default="{}"),
        # Not foreign keys: an imported fork keeps ids from the database it came from.
        sa.Column("forked_from_story", sa.BigInteger),
        sa.Column("forked_from_paragraph", sa.BigInteger),
        sa.Column("paragraph_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_activity", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
        sa.CheckConstraint("turn_rule IN ('alternate', 'free')", name="stories_turn_rule"),
    )
    op.create_table(
        "paragraphs",
        sa.Column("id", ID, primary_key=True),
        sa.Column("story_id", sa.BigInteger, sa.ForeignKey("stories.id"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("author", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("edited", sa.Integer, nullable=False, server_default="0"),
        sa.Column("meta", sa.Text, nullable=False, server_default="{}"),
        sa.Column("deleted", sa.Integer, nullable=False, server_default="0"),
        sa.CheckConstraint("seq >= 1", name="paragraphs_seq"),
        sa.CheckConstraint("kind IN ('human', 'ai')", name="paragraphs_kind"),
    )
    # Undone paragraphs keep their seq, which the next paragraph then reuses: seq is unique
    # only among live paragraphs, and this index also serves head() and timeline().
    op.create_index(
        "paragraphs_live_seq", "paragraphs", ["story_id", "seq"], unique=True,
        sqlite_where=sa.text("deleted = 0"), postgresql_where=sa.text("deleted = 0"),
    )
    op.create_index("paragraphs_all_seq", "paragraphs", ["story_id", "seq", "id"])
    op.create_index("stories_by_activity", "stories", [sa.text("last_activity DESC"), sa.text("id DESC")])
