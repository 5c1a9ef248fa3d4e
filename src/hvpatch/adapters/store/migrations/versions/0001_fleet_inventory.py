"""fleet inventory

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('inventory_imports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inventory_imports'))
    )
    op.create_table('rings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rings')),
    sa.UniqueConstraint('name', name=op.f('uq_rings_name'))
    )
    op.create_table('sites',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sites')),
    sa.UniqueConstraint('name', name=op.f('uq_sites_name'))
    )
    op.create_table('tenants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tenants')),
    sa.UniqueConstraint('name', name=op.f('uq_tenants_name'))
    )
    op.create_table('clusters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('family', sa.String(length=16), nullable=False),
    sa.Column('ring', sa.String(length=64), nullable=False),
    sa.Column('memory_overcommit', sa.Float(), nullable=False),
    sa.Column('cpu_overcommit', sa.Float(), nullable=False),
    sa.Column('ha_reserve_hosts', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_clusters_site_id_sites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clusters')),
    sa.UniqueConstraint('site_id', 'name', name=op.f('uq_clusters_site_id'))
    )
    with op.batch_alter_table('clusters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_clusters_site_id'), ['site_id'], unique=False)

    op.create_table('hosts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cluster_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('family', sa.String(length=16), nullable=False),
    sa.Column('software', sa.JSON(), nullable=False),
    sa.Column('label', sa.String(length=255), nullable=False),
    sa.Column('cores', sa.Integer(), nullable=False),
    sa.Column('memory_mb', sa.BigInteger(), nullable=False),
    sa.Column('exposure', sa.String(length=16), nullable=False),
    sa.Column('ring', sa.String(length=64), nullable=False),
    sa.Column('cpu_group', sa.String(length=64), nullable=False),
    sa.Column('coordinator', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['cluster_id'], ['clusters.id'], name=op.f('fk_hosts_cluster_id_clusters'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hosts')),
    sa.UniqueConstraint('name', name=op.f('uq_hosts_name'))
    )
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hosts_cluster_id'), ['cluster_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_hosts_family'), ['family'], unique=False)

    op.create_table('guests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('vcpus', sa.Integer(), nullable=False),
    sa.Column('memory_mb', sa.BigInteger(), nullable=False),
    sa.Column('criticality', sa.String(length=24), nullable=False),
    sa.Column('data_classification', sa.String(length=24), nullable=False),
    sa.Column('power_state', sa.String(length=16), nullable=False),
    sa.Column('anti_affinity', sa.JSON(), nullable=False),
    sa.Column('migration_block', sa.String(length=24), nullable=True),
    sa.Column('migration_note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_guests_host_id_hosts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_guests_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_guests')),
    sa.UniqueConstraint('name', name=op.f('uq_guests_name'))
    )
    with op.batch_alter_table('guests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_guests_host_id'), ['host_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_guests_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('host_components',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('scheme', sa.String(length=16), nullable=False),
    sa.Column('version', sa.String(length=255), nullable=False),
    sa.Column('coarse_key', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_host_components_host_id_hosts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_host_components'))
    )
    with op.batch_alter_table('host_components', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_host_components_host_id'), ['host_id'], unique=False)
        batch_op.create_index('ix_host_components_name_key', ['name', 'coarse_key'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('host_components', schema=None) as batch_op:
        batch_op.drop_index('ix_host_components_name_key')
        batch_op.drop_index(batch_op.f('ix_host_components_host_id'))

    op.drop_table('host_components')
    with op.batch_alter_table('guests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_guests_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_guests_host_id'))

    op.drop_table('guests')
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hosts_family'))
        batch_op.drop_index(batch_op.f('ix_hosts_cluster_id'))

    op.drop_table('hosts')
    with op.batch_alter_table('clusters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clusters_site_id'))

    op.drop_table('clusters')
    op.drop_table('tenants')
    op.drop_table('sites')
    op.drop_table('rings')
    op.drop_table('inventory_imports')
