"""Steering: a story's memory and author's note, its story cards (lorebook), and every version of each."""

import sqlalchemy as sa
from alembic import op

revision = "m007"
down_revision = "m006"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # One row per story, made on its first edit; a story without one has no memory or note (the defaults).
    op.create_table(
        "story_steering",
        sa.Column("story_id", sa.BigInteger, sa.ForeignKey("stories.id"), primary_key=True, autoincrement=False),
        sa.Column("memory", sa.Text, nullable=False),
        sa.Column("memory_version", sa.Integer, nullable=False),
        sa.Column("memory_by", sa.Text),
        sa.Column("memory_at", sa.Text),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("note_depth", sa.Integer, nullable=False),
        sa.Column("note_version", sa.Integer, nullable=False),
        sa.Column("note_by", sa.Text),
        sa.Column("note_at", sa.Text),
        sa.Column("scan_depth", sa.Integer, nullable=False),
        sa.Column("locked", sa.Integer, nullable=False),
    )
    op.create_table(
        "story_cards",
        sa.Column("id", ID, primary_key=True),
        sa.Column("story_id", sa.BigInteger, sa.ForeignKey("stories.id"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("keys", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("always_on", sa.Integer, nullable=False),
        sa.Column("enabled", sa.Integer, nullable=False),
        sa.Column("inside_words", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("deleted", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
    )
    op.create_index("story_cards_by_story", "story_cards", ["story_id", "deleted"])
    op.create_table(
        "steering_versions",
        sa.Column("n", ID, primary_key=True),
        sa.Column("story_id", sa.BigInteger, sa.ForeignKey("stories.id"), nullable=False),
        sa.Column("block", sa.Text, nullable=False),
        sa.Column("card_id", sa.BigInteger),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("editor", sa.Text, nullable=False),
        sa.Column("editor_id", sa.Text),
        sa.Column("edited_at", sa.Text, nullable=False),
    )
    op.create_index("steering_versions_by_block", "steering_versions", ["story_id", "block", "card_id", "version"])
