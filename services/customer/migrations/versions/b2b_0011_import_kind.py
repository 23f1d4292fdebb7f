"""Import jobs of business customers beside those of members: ``import_job.kind`` (existing jobs: members).

Revision ID: b2b_0011_import_kind
"""

import sqlalchemy as sa
from alembic import op

revision = "b2b_0011_import_kind"
down_revision = "0003_imports"


def upgrade() -> None:
    # crowdpack.customer.v1.ImportKind: 1 = members, 2 = business customers.
    op.add_column("import_job", sa.Column("kind", sa.SmallInteger(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("import_job") as batch:
        batch.drop_column("kind")
