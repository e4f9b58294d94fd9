"""For `bench/ceiling.py`'s ``ingest-only`` receiver: a collector started with this folder
on PYTHONPATH (Python imports ``sitecustomize`` at start-up, also in the process the
collector starts again with mimalloc) opens its file with no derivation: commits queue
nothing and no derive worker runs. What it then acknowledges is what ingest alone (gRPC,
decode, the writer's commits and checkpoints) takes from the machine. Not for a store
anyone reads: its spans are never derived."""

from otel_threads.store.deriving import Deriving


def _no_derivation(self, con):
    return None


Deriving._derivation = _no_derivation
