"""risk decisions and exceptions

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('risk_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('policy', sa.JSON(), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_risk_runs'))
    )
    op.create_table('host_risks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('decision', sa.String(length=24), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('exposure_score', sa.Float(), nullable=False),
    sa.Column('patch_score', sa.Float(), nullable=False),
    sa.Column('candidate', sa.String(length=255), nullable=False),
    sa.Column('deadline', sa.Date(), nullable=True),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('patch_factors', sa.JSON(), nullable=False),
    sa.Column('mitigation', sa.Text(), nullable=False),
    sa.Column('suggest_defer', sa.Boolean(), nullable=False),
    sa.Column('defer_until', sa.Date(), nullable=True),
    sa.Column('open_findings', sa.Integer(), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('prev_decision', sa.String(length=24), nullable=True),
    sa.Column('prev_outcome', sa.String(length=16), nullable=True),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_host_risks_host_id_hosts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_host_risks')),
    sa.UniqueConstraint('host_id', name=op.f('uq_host_risks_host_id'))
    )
    op.create_table('risk_exceptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('cve_id', sa.String(length=32), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('compensating_control', sa.Text(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=False),
    sa.Column('requested_by', sa.String(length=128), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('approved_by', sa.String(length=128), nullable=True),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('closed_by', sa.String(length=128), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_risk_exceptions_host_id_hosts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_risk_exceptions'))
    )
    with op.batch_alter_table('risk_exceptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_risk_exceptions_host_id'), ['host_id'], unique=False)

    op.create_table('finding_risks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('finding_id', sa.Integer(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('impact_class', sa.String(length=24), nullable=False),
    sa.Column('deadline', sa.Date(), nullable=False),
    sa.Column('deadline_reason', sa.Text(), nullable=False),
    sa.Column('deferred_by', sa.Integer(), nullable=True),
    sa.Column('factors', sa.JSON(), nullable=False),
    sa.Column('ssvc', sa.JSON(), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('prev_score', sa.Float(), nullable=True),
    sa.Column('prev_outcome', sa.String(length=16), nullable=True),
    sa.ForeignKeyConstraint(['finding_id'], ['findings.id'], name=op.f('fk_finding_risks_finding_id_findings'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_finding_risks')),
    sa.UniqueConstraint('finding_id', name=op.f('uq_finding_risks_finding_id'))
    )


def downgrade() -> None:
    op.drop_table('finding_risks')
    with op.batch_alter_table('risk_exceptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_risk_exceptions_host_id'))

    op.drop_table('risk_exceptions')
    op.drop_table('host_risks')
    op.drop_table('risk_runs')
