"""The per-story AI-turn lease and server-generated candidate paragraphs (`m002_...`)."""

import sqlalchemy as sa
from alembic import op

revision = "m002"
down_revision = "m001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("stories", sa.Column("ai_turn_holder", sa.Text))
    op.add_column("stories", sa.Column("ai_turn_expires", sa.Float))
    op.create_table(
        "candidates",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("story_id", sa.BigInteger, sa.ForeignKey("stories.id"), nullable=False),
        sa.Column("author", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("meta", sa.Text, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("created_unix", sa.Float, nullable=False),
        sa.Column("used", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("candidates_by_age", "candidates", ["created_unix"])
