"""Statement readers and master-data loaders.

Readers turn statement files (bytes) into plain records and never touch a
database; storing them is the service's job.
"""

from ingest.dedupe import dedupe_key, dedupe_keys
from ingest.masterdata import (
    read_allocations,
    read_customers,
    read_invoices,
    read_orders,
)
from ingest.statements import read_statements
from ingest.tables import list_profiles

__all__ = [
    "dedupe_key",
    "dedupe_keys",
    "list_profiles",
    "read_allocations",
    "read_customers",
    "read_invoices",
    "read_orders",
    "read_statements",
]
