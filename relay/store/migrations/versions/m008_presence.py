"""Presence: which writers have a tab open on a story, per app process (relay/store/presence.py)."""

import sqlalchemy as sa
from alembic import op

revision = "m008"
down_revision = "m007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "presence",
        sa.Column("story_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("writer_id", sa.Text, primary_key=True),
        sa.Column("process", sa.Text, primary_key=True),
        sa.Column("tabs", sa.Integer, nullable=False),
        sa.Column("seen_at", sa.Float, nullable=False),
    )
    op.create_index("presence_by_process", "presence", ["process"])


def downgrade() -> None:
    op.drop_index("presence_by_process", "presence")
    op.drop_table("presence")
