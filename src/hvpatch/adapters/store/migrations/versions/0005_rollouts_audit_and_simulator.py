"""rollouts, audit log and simulator state

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_head'))
    )
    op.create_table('audit_log',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_subject'), ['subject'], unique=False)

    op.create_table('incidents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('opened_by', sa.String(length=128), nullable=False),
    sa.Column('opened', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incidents'))
    )
    op.create_table('sim_guests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('running', sa.Boolean(), nullable=False),
    sa.Column('memory_mb', sa.BigInteger(), nullable=False),
    sa.Column('blocked', sa.String(length=64), nullable=False),
    sa.Column('migrations', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sim_guests')),
    sa.UniqueConstraint('name', name=op.f('uq_sim_guests_name'))
    )
    with op.batch_alter_table('sim_guests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sim_guests_host'), ['host'], unique=False)

    op.create_table('sim_hosts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('cluster', sa.String(length=128), nullable=False),
    sa.Column('components', sa.JSON(), nullable=False),
    sa.Column('previous', sa.JSON(), nullable=False),
    sa.Column('staged', sa.JSON(), nullable=False),
    sa.Column('pending', sa.JSON(), nullable=False),
    sa.Column('maintenance', sa.Boolean(), nullable=False),
    sa.Column('up', sa.Boolean(), nullable=False),
    sa.Column('boot_id', sa.Integer(), nullable=False),
    sa.Column('ready_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('family', sa.String(length=16), nullable=False),
    sa.Column('capacity_mb', sa.BigInteger(), nullable=False),
    sa.Column('applies', sa.Integer(), nullable=False),
    sa.Column('rollbacks', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sim_hosts')),
    sa.UniqueConstraint('name', name=op.f('uq_sim_hosts_name'))
    )
    with op.batch_alter_table('sim_hosts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sim_hosts_cluster'), ['cluster'], unique=False)

    op.create_table('sim_state',
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_sim_state'))
    )
    op.create_table('withdrawn_releases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('component', sa.String(length=128), nullable=False),
    sa.Column('version', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_withdrawn_releases')),
    sa.UniqueConstraint('component', 'version', name=op.f('uq_withdrawn_releases_component'))
    )
    op.create_table('rollouts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('requester', sa.String(length=128), nullable=False),
    sa.Column('driver', sa.JSON(), nullable=False),
    sa.Column('policy', sa.JSON(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ring_index', sa.Integer(), nullable=False),
    sa.Column('control', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('lease_owner', sa.String(length=255), nullable=False),
    sa.Column('lease_expires', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_rollouts_plan_id_plans'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rollouts')),
    sa.UniqueConstraint('name', name=op.f('uq_rollouts_name'))
    )
    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rollouts_plan_id'), ['plan_id'], unique=False)

    op.create_table('rollout_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rollout_id', sa.Integer(), nullable=False),
    sa.Column('cluster', sa.String(length=128), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('old', sa.Text(), nullable=False),
    sa.Column('new', sa.Text(), nullable=False),
    sa.Column('restored', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['rollout_id'], ['rollouts.id'], name=op.f('fk_rollout_changes_rollout_id_rollouts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rollout_changes')),
    sa.UniqueConstraint('rollout_id', 'cluster', 'key', name=op.f('uq_rollout_changes_rollout_id'))
    )
    op.create_table('rollout_gates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rollout_id', sa.Integer(), nullable=False),
    sa.Column('ring', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('ring_done', sa.DateTime(timezone=True), nullable=True),
    sa.Column('evaluated', sa.DateTime(timezone=True), nullable=True),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('approved_by', sa.String(length=128), nullable=False),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['rollout_id'], ['rollouts.id'], name=op.f('fk_rollout_gates_rollout_id_rollouts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rollout_gates')),
    sa.UniqueConstraint('rollout_id', 'ring', 'kind', name=op.f('uq_rollout_gates_rollout_id'))
    )
    op.create_table('rollout_hosts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rollout_id', sa.Integer(), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('cluster', sa.String(length=128), nullable=False),
    sa.Column('ring', sa.String(length=64), nullable=False),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('step', sa.String(length=32), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('before', sa.JSON(), nullable=False),
    sa.Column('after', sa.JSON(), nullable=False),
    sa.Column('updated', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['rollout_id'], ['rollouts.id'], name=op.f('fk_rollout_hosts_rollout_id_rollouts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rollout_hosts')),
    sa.UniqueConstraint('rollout_id', 'host', name=op.f('uq_rollout_hosts_rollout_id'))
    )
    with op.batch_alter_table('rollout_hosts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rollout_hosts_rollout_id'), ['rollout_id'], unique=False)

    op.create_table('rollout_steps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rollout_id', sa.Integer(), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('ring', sa.String(length=64), nullable=False),
    sa.Column('step', sa.String(length=32), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('started', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['rollout_id'], ['rollouts.id'], name=op.f('fk_rollout_steps_rollout_id_rollouts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rollout_steps'))
    )
    with op.batch_alter_table('rollout_steps', schema=None) as batch_op:
        batch_op.create_index('ix_rollout_steps_lookup', ['rollout_id', 'host', 'step'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('rollout_steps', schema=None) as batch_op:
        batch_op.drop_index('ix_rollout_steps_lookup')

    op.drop_table('rollout_steps')
    with op.batch_alter_table('rollout_hosts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rollout_hosts_rollout_id'))

    op.drop_table('rollout_hosts')
    op.drop_table('rollout_gates')
    op.drop_table('rollout_changes')
    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rollouts_plan_id'))

    op.drop_table('rollouts')
    op.drop_table('withdrawn_releases')
    op.drop_table('sim_state')
    with op.batch_alter_table('sim_hosts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sim_hosts_cluster'))

    op.drop_table('sim_hosts')
    with op.batch_alter_table('sim_guests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sim_guests_host'))

    op.drop_table('sim_guests')
    op.drop_table('incidents')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_subject'))
        batch_op.drop_index(batch_op.f('ix_audit_log_action'))

    op.drop_table('audit_log')
    op.drop_table('audit_head')
