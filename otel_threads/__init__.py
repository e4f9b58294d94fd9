"""otel-threads: multi-turn conversations (threads) from OpenTelemetry traces.

Public names are re-exported here; modules are internal.
"""

from otel_threads.context import (
    CONVERSATION_ID_KEY,
    ThreadContext,
    current_thread_id,
    current_turn_id,
    thread,
)
from otel_threads.processor import ThreadSpanProcessor

__all__ = [
    "CONVERSATION_ID_KEY",
    "ThreadContext",
    "ThreadSpanProcessor",
    "current_thread_id",
    "current_turn_id",
    "thread",
]
__version__ = "0.1.0"
