"""The API's writes: annotations (``POST /threads/{id}/annotations``,
``DELETE /annotations/{id}``) and evaluators' results (``POST /evaluations/pending``:
what an evaluator has yet to judge; ``POST /evaluations``: what it found, see
otel_threads.evaluations).

Like every request to the API they need the token when one is set, and a web page of
another origin cannot make them (`BaseHandler.refused_by_origin`; the body must be
application/json, which no page can send to another site without asking first, and
the API answers no such question). Each is one small transaction on the collector's
store (`Reads.write`), next to ingest: it waits for derivation's refresh under way, not
for the exports.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from typing import TYPE_CHECKING, Any

import duckdb

from otel_threads.annotations import AnnotationNotFoundError, add_annotation, delete_annotation
from otel_threads.evaluations import pending_threads, record_evaluation

if TYPE_CHECKING:
    from otel_threads.collector.api import ApiHandler

__all__ = [
    "ANNOTATION_FIELDS",
    "EVALUATION_FIELDS",
    "PENDING_FIELDS",
    "annotate",
    "delete",
    "evaluation",
    "handle",
    "pending",
    "route",
]

#: What ``POST /threads/{id}/annotations`` takes (name, and one of label, score, explanation).
ANNOTATION_FIELDS = ("name", "label", "score", "explanation", "turn_id", "author")
#: What ``POST /evaluations/pending`` takes (evaluator and quiet_for_s; limit, default 100).
PENDING_FIELDS = ("evaluator", "quiet_for_s", "limit")
#: What ``POST /evaluations`` takes (all of them; error null unless the evaluator failed).
EVALUATION_FIELDS = ("evaluator", "thread_id", "last_turn_id", "results", "error")


#: Longest an annotation of a thread (or turn) not found waits for derivation to catch up
#: with what was acknowledged before it is a 404 (as long as a read waits by default).
WRITE_SYNC_S = 2.0


def route(method: str, path: str) -> tuple[str, str] | None:
    """(what, id) of a write this module answers, or None: ('annotate', thread id) for
    POST /threads/{id}/annotations, ('delete', annotation id) for DELETE
    /annotations/{id}, ('pending', '') and ('evaluation', '') for POST
    /evaluations/pending and POST /evaluations."""
    if method == "POST" and path in ("/evaluations/pending", "/evaluations"):
        return ("pending" if path.endswith("/pending") else "evaluation"), ""
    if method == "POST" and path.startswith("/threads/") and path.endswith("/annotations"):
        thread = path[len("/threads/") : -len("/annotations")]
        if thread and "/" not in thread:
            return "annotate", urllib.parse.unquote(thread)
    if method == "DELETE" and path.startswith("/annotations/"):
        annotation = path[len("/annotations/") :]
        if annotation and "/" not in annotation:
            return "delete", urllib.parse.unquote(annotation)
    return None


def handle(handler: ApiHandler) -> None:
    """Answer a write (an authorized request): the `route` of its method and path, with
    its JSON body for a POST; 404 when it is none, 405 (saying why) when the store
    takes no writes from the API (`ReadsBackend.writes_refused`)."""
    path = handler.path.split("?", 1)[0]
    write = route(handler.command, path)
    if write is None:
        handler._send(404, {"error": f"no such endpoint {handler.command} {path}"})
        return
    refused = handler.reads.writes_refused
    if refused is not None:  # (a store the API only reads: ClickHouse)
        handler._send(405, {"error": refused})
        return
    what, key = write
    if what == "delete":
        delete(handler, key)
        return
    ok, body = handler._json_body()
    if ok:
        {"annotate": annotate, "pending": pending, "evaluation": evaluation}[what](
            handler, key, body
        )


def _fields(handler: ApiHandler, body: Any, fields: tuple[str, ...], required: int) -> bool:
    """Whether ``body`` is an object with the first ``required`` of ``fields`` and no
    other keys (else 400 saying what to send)."""
    if isinstance(body, dict):
        unknown = sorted(set(body) - set(fields))
        missing = [f for f in fields[:required] if f not in body]
        if not unknown and not missing:
            return True
        problem = f"unknown field(s) {unknown}" if unknown else f"missing {', '.join(missing)}"
    else:
        problem = "send a JSON object"
    handler._send(400, {"error": f"{problem}; send {', '.join(fields)}"})
    return False


def pending(handler: ApiHandler, _key: str, body: Any) -> None:
    """The threads an evaluator has yet to judge, quiet for ``quiet_for_s`` seconds by
    this collector's clock or ended: 200 {"threads": [{"thread_id", "last_turn_id"}]}."""
    if not _fields(handler, body, PENDING_FIELDS, 2):
        return
    quiet = body["quiet_for_s"]
    if isinstance(quiet, bool) or not isinstance(quiet, (int, float)) or not 0 <= quiet < 1e10:
        handler._send(400, {"error": f"quiet_for_s must be seconds (0 or more), got {quiet!r}"})
        return
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    try:
        with handler.reads.read() as con:
            found = pending_threads(
                con, body["evaluator"], now - dt.timedelta(seconds=quiet), body.get("limit", 100)
            )
    except ValueError as exc:
        handler._send(400, {"error": str(exc)})
    except duckdb.Error as exc:
        handler._send(503, {"error": f"the pending threads were not read: {exc}"})
    else:
        handler._send(200, {"threads": [t._asdict() for t in found]})


def evaluation(handler: ApiHandler, _key: str, body: Any) -> None:
    """Store what an evaluator found in a thread (`record_evaluation`): 201
    {"recorded": true}, or {"recorded": false} when that (evaluator, thread, last turn)
    was recorded already; 404 for an unknown thread."""
    if not _fields(handler, body, EVALUATION_FIELDS, 4):
        return
    try:
        with handler.reads.write() as con:
            recorded = record_evaluation(con, **{"error": None, **body})
    except KeyError as exc:
        handler._send(404, {"error": str(exc.args[0])})
    except (ValueError, TypeError) as exc:
        handler._send(400, {"error": str(exc)})
    except TimeoutError as exc:
        handler._send(503, {"error": str(exc)})
    except duckdb.Error as exc:
        handler._send(503, {"error": f"the evaluation was not stored: {exc}"})
    else:
        handler._send(201, {"recorded": recorded, "thread_id": body["thread_id"]})


def annotate(handler: ApiHandler, thread_id: str, body: Any) -> None:
    """Record an annotation of ``thread_id``: 201 {"annotation_id"}; 400 for a bad body,
    404 for an unknown thread or turn."""
    if not isinstance(body, dict):
        handler._send(400, {"error": 'send {"name": ..., "label"/"score"/"explanation": ...}'})
        return
    unknown = sorted(set(body) - set(ANNOTATION_FIELDS))
    if unknown:
        handler._send(
            400, {"error": f"unknown field(s) {unknown}; send {', '.join(ANNOTATION_FIELDS)}"}
        )
        return
    fields = {"name": None, **body}
    try:
        try:
            with handler.reads.write() as con:
                annotation_id = add_annotation(con, thread_id, **fields)
        except KeyError:
            # a thread or turn just acknowledged may not be derived yet: wait for
            # derivation to catch up (as reads do, `READ_SYNC_S`), then try once more
            if not handler.reads.sync(WRITE_SYNC_S):
                raise
            with handler.reads.write() as con:
                annotation_id = add_annotation(con, thread_id, **fields)
    except KeyError as exc:
        handler._send(404, {"error": str(exc.args[0])})
    except (ValueError, TypeError, TimeoutError) as exc:
        handler._send(400 if not isinstance(exc, TimeoutError) else 503, {"error": str(exc)})
    except duckdb.Error as exc:
        handler._send(503, {"error": f"the annotation was not stored: {exc}"})
    else:
        handler._send(201, {"annotation_id": annotation_id, "thread_id": thread_id})


def delete(handler: ApiHandler, annotation_id: str) -> None:
    """Delete an annotation made through the API: 200 {"deleted"}; 404 when unknown or
    when it came over OTLP."""
    try:
        with handler.reads.write() as con:
            thread_id = delete_annotation(con, annotation_id)
    except AnnotationNotFoundError as exc:
        handler._send(404, {"error": str(exc)})
    except TimeoutError as exc:
        handler._send(503, {"error": str(exc)})
    except duckdb.Error as exc:
        handler._send(503, {"error": f"the annotation was not deleted: {exc}"})
    else:
        handler._send(200, {"deleted": annotation_id, "thread_id": thread_id})
