"""Where an imported story came from: who imported it, when, and the export's own title and writers."""

import sqlalchemy as sa
from alembic import op

revision = "m006"
down_revision = "m005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A JSON object (NULL for stories written here): {"imported_by", "imported_at", "title", "writers"}.
    op.add_column("stories", sa.Column("origin", sa.Text))
