"""Paragraph history: every edit's earlier text, and who undid a paragraph (for redo)."""

import sqlalchemy as sa
from alembic import op

revision = "m005"
down_revision = "m004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "paragraph_versions",
        sa.Column("paragraph_id", sa.BigInteger, sa.ForeignKey("paragraphs.id"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("editor", sa.Text, nullable=False),
        sa.Column("editor_id", sa.Text),
        sa.Column("edited_at", sa.Text, nullable=False),
    )
    op.add_column("paragraphs", sa.Column("undone_by", sa.Text))
    op.add_column("paragraphs", sa.Column("undone_by_id", sa.Text))
    op.add_column("paragraphs", sa.Column("undone_at", sa.Text))
    # The visible head right after the undo (0: the story was empty): redo needs it unchanged.
    op.add_column("paragraphs", sa.Column("head_after_undo", sa.BigInteger))
