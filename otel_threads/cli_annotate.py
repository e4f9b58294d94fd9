"""`otel-threads annotate`: record an annotation of a thread or a turn."""

from __future__ import annotations

import click

from otel_threads.cli import _client, _domain_errors, _json_out, _source

__all__ = ["annotate"]


@click.command("annotate")
@click.argument("thread_id")
@click.option("--name", required=True, help="What is judged, e.g. thumbs, correctness, note.")
@click.option("--label", help="The verdict in words, e.g. down, correct, pass.")
@click.option("--score", type=float, help="The verdict as a number, e.g. 0, 0.8.")
@click.option("--explanation", help="Why, in a sentence or a note.")
@click.option(
    "--turn", "turn_id", metavar="TURN_ID", help="A turn of the thread (else the whole thread)."
)
@click.option("--author", help="Who judged (shown beside the annotation).")
@_source
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def annotate(
    thread_id: str,
    name: str,
    label: str | None,
    score: float | None,
    explanation: str | None,
    turn_id: str | None,
    author: str | None,
    db: str | None,
    url: str | None,
    as_json: bool,
) -> None:
    """Annotate a thread, or one of its turns: a name with a label, a score and/or an
    explanation. It shows in the annotations view (source 'api'), in `show`, on the web
    page, and counts in the thread's annotation_count. When a collector holds the file,
    this goes through its API.

    \b
    Example:
        otel-threads annotate support_thread_42 --name thumbs --label down --score 0
        otel-threads annotate support_thread_42 --name note --turn 5f2c0c1e3a4b5d6e \\
            --explanation "asked for the order number twice"
    """
    client = _client(db, url)

    def run() -> str:
        try:
            return client.annotate(
                thread_id,
                name,
                label=label,
                score=score,
                explanation=explanation,
                turn_id=turn_id,
                author=author,
            )
        except KeyError as exc:  # an unknown thread or turn: one line
            raise click.ClickException(str(exc.args[0]) if exc.args else str(exc)) from None

    annotation_id = _domain_errors(run)
    if as_json:
        _json_out({"annotation_id": annotation_id, "thread_id": thread_id})
    else:
        click.echo(annotation_id)
