"""advisories and findings

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('assessments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('inventory_import_id', sa.Integer(), nullable=True),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assessments'))
    )
    op.create_table('epss_scores',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cve_id', sa.String(length=32), nullable=False),
    sa.Column('epss', sa.Float(), nullable=False),
    sa.Column('percentile', sa.Float(), nullable=False),
    sa.Column('score_date', sa.Date(), nullable=True),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_epss_scores')),
    sa.UniqueConstraint('cve_id', name=op.f('uq_epss_scores_cve_id'))
    )
    op.create_table('feed_imports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.Column('added', sa.Integer(), nullable=False),
    sa.Column('changed', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feed_imports'))
    )
    op.create_table('kev_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cve_id', sa.String(length=32), nullable=False),
    sa.Column('vendor_project', sa.String(length=255), nullable=False),
    sa.Column('product', sa.String(length=255), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('date_added', sa.Date(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=True),
    sa.Column('required_action', sa.Text(), nullable=False),
    sa.Column('known_ransomware', sa.Boolean(), nullable=False),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kev_entries')),
    sa.UniqueConstraint('cve_id', name=op.f('uq_kev_entries_cve_id'))
    )
    op.create_table('package_fixes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('advisory_id', sa.String(length=128), nullable=False),
    sa.Column('distro', sa.String(length=64), nullable=False),
    sa.Column('package', sa.String(length=255), nullable=False),
    sa.Column('scheme', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('fixed', sa.String(length=255), nullable=True),
    sa.Column('introduced', sa.String(length=255), nullable=True),
    sa.Column('published', sa.Date(), nullable=True),
    sa.Column('cves', sa.JSON(), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_package_fixes')),
    sa.UniqueConstraint('key', name=op.f('uq_package_fixes_key'))
    )
    with op.batch_alter_table('package_fixes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_package_fixes_changed_at'), ['changed_at'], unique=False)
        batch_op.create_index('ix_package_fixes_distro_package', ['distro', 'package'], unique=False)

    op.create_table('vulnerabilities',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cve_id', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('published', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_modified', sa.DateTime(timezone=True), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vulnerabilities')),
    sa.UniqueConstraint('cve_id', name=op.f('uq_vulnerabilities_cve_id'))
    )
    with op.batch_alter_table('vulnerabilities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vulnerabilities_changed_at'), ['changed_at'], unique=False)

    op.create_table('xen_advisories',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('cves', sa.JSON(), nullable=False),
    sa.Column('public_date', sa.Date(), nullable=True),
    sa.Column('title', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_xen_advisories')),
    sa.UniqueConstraint('number', name=op.f('uq_xen_advisories_number'))
    )
    op.create_table('vuln_products',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('vuln_id', sa.Integer(), nullable=False),
    sa.Column('vendor', sa.String(length=128), nullable=False),
    sa.Column('product', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['vuln_id'], ['vulnerabilities.id'], name=op.f('fk_vuln_products_vuln_id_vulnerabilities'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vuln_products'))
    )
    with op.batch_alter_table('vuln_products', schema=None) as batch_op:
        batch_op.create_index('ix_vuln_products_vendor_product', ['vendor', 'product'], unique=False)
        batch_op.create_index(batch_op.f('ix_vuln_products_vuln_id'), ['vuln_id'], unique=False)

    op.create_table('findings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('cve_id', sa.String(length=32), nullable=False),
    sa.Column('component', sa.String(length=255), nullable=False),
    sa.Column('installed', sa.String(length=255), nullable=False),
    sa.Column('fixed_in', sa.String(length=255), nullable=True),
    sa.Column('confidence', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_findings_host_id_hosts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_findings')),
    sa.UniqueConstraint('host_id', 'cve_id', 'component', name=op.f('uq_findings_host_id'))
    )
    with op.batch_alter_table('findings', schema=None) as batch_op:
        batch_op.create_index('ix_findings_cve_id', ['cve_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_findings_host_id'), ['host_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('findings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_findings_host_id'))
        batch_op.drop_index('ix_findings_cve_id')

    op.drop_table('findings')
    with op.batch_alter_table('vuln_products', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vuln_products_vuln_id'))
        batch_op.drop_index('ix_vuln_products_vendor_product')

    op.drop_table('vuln_products')
    op.drop_table('xen_advisories')
    with op.batch_alter_table('vulnerabilities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vulnerabilities_changed_at'))

    op.drop_table('vulnerabilities')
    with op.batch_alter_table('package_fixes', schema=None) as batch_op:
        batch_op.drop_index('ix_package_fixes_distro_package')
        batch_op.drop_index(batch_op.f('ix_package_fixes_changed_at'))

    op.drop_table('package_fixes')
    op.drop_table('kev_entries')
    op.drop_table('feed_imports')
    op.drop_table('epss_scores')
    op.drop_table('assessments')
