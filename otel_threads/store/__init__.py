"""The DuckDB store: one file, and everything that writes it.

- `schema`: opening the file (`connect`), numbered migrations, the views;
- `holder`: the note a collector leaves beside the file it holds;
- `writer`: the one thread that commits batches (`Writer`), with `insert` (a batch into
  the raw tables), `forks` (the on-fork policy), `health` (faults and recovery) and
  `stats`;
- `derive` and `derive_worker`: keeping the derived tables behind the views current;
- `retention`: deleting old threads whole.

The names most callers need are here: ``from otel_threads.store import connect``.
"""

from otel_threads.store.holder import HolderInfo, read_holder, remove_holder, write_holder
from otel_threads.store.schema import (
    DB_ENV,
    DEFAULT_DB,
    DEMO_DB,
    NotAStoreError,
    StoreLockedError,
    apply_views,
    connect,
    default_db_path,
    migrate,
)

__all__ = [
    "DB_ENV",
    "DEFAULT_DB",
    "DEMO_DB",
    "HolderInfo",
    "NotAStoreError",
    "StoreLockedError",
    "apply_views",
    "connect",
    "default_db_path",
    "migrate",
    "read_holder",
    "remove_holder",
    "write_holder",
]
