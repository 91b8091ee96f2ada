"""SQLite: content_signal ids are never reused (AUTOINCREMENT), as PostgreSQL's never are.

Retroaction's rings copy content signals in id order past a cursor. SQLite gave a row
inserted after the newest one was deleted that same id again, so a resubmitted content's new
hash sat under an id the rings had passed and was never matched retroactively. Rebuilding
the table copies it once (minutes for tens of millions of rows); PostgreSQL is untouched.

Revision ID: 0019
Revises: 0014
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "content_signal", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
