"""The global change token, per-story change stamps, and model turns as records with a status."""

import secrets
import time

import sqlalchemy as sa
from alembic import op

revision = "m003"
down_revision = "m002"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "change_counter",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.CheckConstraint("id = 1", name="change_counter_one_row"),
    )
    op.execute("INSERT INTO change_counter (id, value) VALUES (1, 0)")
    op.add_column("stories", sa.Column("change_seq", sa.BigInteger, nullable=False, server_default="0"))
    op.create_index("stories_by_change", "stories", ["change_seq"])
    op.create_table(
        "ai_turns",
        sa.Column("n", ID, primary_key=True),
        sa.Column("id", sa.Text, nullable=False, unique=True),
        sa.Column("story_id", sa.BigInteger, sa.ForeignKey("stories.id"), nullable=False),
        sa.Column("holder", sa.Text, nullable=False),
        sa.Column("holder_id", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("draft", sa.Text, nullable=False, server_default=""),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("process", sa.Text),
        sa.Column("claimed_at", sa.Float, nullable=False),
        sa.Column("lost_to", sa.Text),
        sa.CheckConstraint(
            "status IN ('writing', 'pending', 'accepted', 'discarded', 'released', 'lost')", name="ai_turns_status"
        ),
    )
    op.create_index("ai_turns_by_story", "ai_turns", ["story_id", "n"])
    op.add_column("stories", sa.Column("ai_turn_id", sa.Text))
    # A lease held when the database is upgraded becomes a turn record (its process unknown).
    bind = op.get_bind()
    held = bind.execute(
        sa.text("SELECT id, ai_turn_holder, ai_turn_expires FROM stories WHERE ai_turn_holder IS NOT NULL")
    ).fetchall()
    for story_id, holder, expires in held:
        turn_id = secrets.token_urlsafe(12)
        bind.execute(
            sa.text(
                "INSERT INTO ai_turns (id, story_id, holder, status, draft, expires_at, claimed_at)"
                " VALUES (:id, :story, :holder, 'writing', '', :expires, :now)"
            ),
            {"id": turn_id, "story": story_id, "holder": holder, "expires": expires or 0.0, "now": time.time()},
        )
        bind.execute(sa.text("UPDATE stories SET ai_turn_id = :t WHERE id = :s"), {"t": turn_id, "s": story_id})
    # Plain ALTER TABLE ... DROP COLUMN: SQLite has it since 3.35, and no index uses these columns.
    op.execute("ALTER TABLE stories DROP COLUMN ai_turn_holder")
    op.execute("ALTER TABLE stories DROP COLUMN ai_turn_expires")
    op.add_column("candidates", sa.Column("turn_id", sa.Text))
    op.add_column("candidates", sa.Column("status", sa.Text, nullable=False, server_default="open"))
    op.execute("UPDATE candidates SET status = 'accepted' WHERE used = 1")
    op.add_column("candidates", sa.Column("writer_id", sa.Text))
    op.create_index("candidates_by_turn", "candidates", ["turn_id"])
