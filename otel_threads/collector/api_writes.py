"""The API's writes: annotations (``POST /threads/{id}/annotations``,
``DELETE /annotations/{id}``).

Like every request to the API they need the token when one is set, and a web page of
another origin cannot make them (`BaseHandler.refused_by_origin`; the body must be
application/json, which no page can send to another site without asking first, and
the API answers no such question). Each is one small transaction on the collector's
store (`Reads.write`), next to ingest: it waits for derivation's refresh under way, not
for the exports.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

import duckdb

from otel_threads.annotations import AnnotationNotFoundError, add_annotation, delete_annotation

if TYPE_CHECKING:
    from otel_threads.collector.api import ApiHandler

__all__ = ["ANNOTATION_FIELDS", "annotate", "delete", "route"]

#: What ``POST /threads/{id}/annotations`` takes (name, and one of label, score, explanation).
ANNOTATION_FIELDS = ("name", "label", "score", "explanation", "turn_id", "author")


def route(method: str, path: str) -> tuple[str, str] | None:
    """(what, id) of a write this module answers, or None: ('annotate', thread id) for
    POST /threads/{id}/annotations, ('delete', annotation id) for DELETE
    /annotations/{id}."""
    if method == "POST" and path.startswith("/threads/") and path.endswith("/annotations"):
        thread = path[len("/threads/") : -len("/annotations")]
        if thread and "/" not in thread:
            return "annotate", urllib.parse.unquote(thread)
    if method == "DELETE" and path.startswith("/annotations/"):
        annotation = path[len("/annotations/") :]
        if annotation and "/" not in annotation:
            return "delete", urllib.parse.unquote(annotation)
    return None


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
    try:
        with handler.reads.write() as con:
            annotation_id = add_annotation(con, thread_id, **{"name": None, **body})
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
