"""Sustained load until the store is large: does the cost per span stay flat?

    python bench/soak.py [--exporters 4,32] [--spans 10000000] [--minute 60]

For each count of concurrent exporters, a fresh `python -m otel_threads.collector`
(default settings) on a new file is fed OTLP/gRPC requests of 512 spans (128 turns of
4 spans, 8 to 10 attributes each, an LLM call with messages in every turn) until it has
acknowledged ``--spans`` spans. Exporters run as threads in ``--processes`` sender
processes; each keeps 32 conversations going at once, of 10, 100 and 2,000 turns
(60/30/10 % of the threads started), has one request in flight at a time (making the
next request's turns meanwhile, as an application goes on making spans while its
batch processor exports), and retries a refused request (503 / UNAVAILABLE) with the
same bytes, as real exporters do. Trace, span and thread ids are
random (UUIDs for threads), as producers make them: ids that grow with time would spare
the store's indexes and let zone maps find a thread in a few row groups
(docs/storage.md, "Indexes and random ids").

Every ``--minute`` seconds it prints one line:
  - acknowledged spans/s over that minute, and spans/s derived (the traces acknowledged
    less the growth of the derivation queue, in spans);
  - derivation lag p50/p99: a probe appends a turn to a thread of 2,000+ turns every
    second and times from its acknowledgement until `turns` has it (read with
    ``?wait=0``); and the traces waiting to be derived (/metrics);
  - API p50/p99 while ingest runs: ``POST /threads/query?wait=0`` (the first 50) and
    ``GET /threads/{id}?wait=0`` (the probe's long thread, and a 100-turn one), a pair
    every ``--read-every`` seconds on average (a person reading, not a read load);
  - the collector's peak RSS (sampled every 0.5 s), file bytes per acknowledged span,
    and the checkpoints of the minute (reads that filter a table wait while one writes
    it): how many, and their mean duration; and derivation's refreshes of the minute:
    how many, and their mean length (under steady load the lag is about one or two of
    them); and the times the collector opened its store again that minute
    (docs/storage.md, "Opened again"), and how long that held commits and reads, on
    average; and the cores the collector's parts took that minute (its writer thread,
    derivation, the rest of its process, its decode processes: /metrics'
    otel_threads_cpu_seconds_total).
At the end: the collector's peak RSS since it started, as the kernel counts it (VmHWM,
the catch-up included); the last minute's rate over the first's; the lag and the API
latency over the whole run (p99 of all samples: a minute's p99 is about its slowest
read); the exact-count check once derivation has caught up (spans, turns and threads stored equal
those acknowledged), and the file's bytes per span then, beside the bytes per span of
the OTLP requests sent.
After the first run (unless ``--no-rebuild``): the collector is restarted on its file
with every derived table marked as derived by other SQL (an upgrade), and the rebuild
is measured: how soon the collector listens, how long deriving everything anew takes,
peak RSS (VmHWM), one exporter's acknowledged spans/s (``--rebuild-rate`` at most) and API
latency meanwhile, exact counts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import random
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
from collector_process import start_collector
from conversations import (
    SPANS_PER_TURN,
    TURNS_PER_REQUEST,
    Conversation,
    Conversations,
    Ids,
    request,
    thread_id,
    turn_spans,
)

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


# -- the senders -----------------------------------------------------------------------


def _send(stub, payload: bytes, stop_at: list[float], meanwhile=None) -> bool:
    """Send until acknowledged (True), or give up 120 s after the stop (False).
    ``meanwhile`` runs once while the request is in flight."""
    while True:
        try:
            call = stub.future(payload, timeout=120)
            if meanwhile is not None:
                meanwhile()
                meanwhile = None
            call.result()
            return True
        except grpc.RpcError as exc:
            if exc.code() not in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                grpc.StatusCode.DEADLINE_EXCEEDED,
            ):
                raise
            if stop_at[0] and time.monotonic() > stop_at[0] + 120:
                return False
            time.sleep(0.2 + random.random() * 0.3)


def exporter(
    target: str, prefix: int, counts, stop, stop_at: list[float], rate: float = 0.0
) -> None:
    """One exporter: keeps ACTIVE_THREADS conversations going until ``stop``, sending
    ``rate`` spans/s at most (0: as fast as it is acknowledged). One request at a time,
    as an SDK's batch processor exports; the next request's turns are made while it is
    in flight, as an application goes on making spans while its exporter waits."""
    channel = grpc.insecure_channel(target)
    stub = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
    conversations = Conversations(prefix)

    def turns() -> tuple[bytes, int]:
        begun = conversations.started
        spans, _ = conversations.next_turns()
        return spans, conversations.started - begun

    made = [turns()]
    due = time.monotonic()
    while not stop.is_set():
        if rate:  # paced: one request every TURNS_PER_REQUEST * SPANS_PER_TURN / rate s
            due += TURNS_PER_REQUEST * SPANS_PER_TURN / rate
            if stop.wait(max(0.0, due - time.monotonic())):
                break
        spans, threads_new = made.pop()
        body = request(spans)
        if not _send(stub, body, stop_at, meanwhile=lambda: made.append(turns())):
            break
        with counts.get_lock():
            counts[0] += TURNS_PER_REQUEST * SPANS_PER_TURN
            counts[1] += TURNS_PER_REQUEST
            counts[2] += threads_new
            if len(counts) > 3:
                counts[3] += len(body)
    channel.close()


def sender_process(target: str, first: int, n: int, counts, stop, rate: float = 0.0) -> None:
    stop_at = [0.0]
    threads = [
        threading.Thread(target=exporter, args=(target, first + i, counts, stop, stop_at, rate))
        for i in range(n)
    ]
    for t in threads:
        t.start()
    stop.wait()
    stop_at[0] = time.monotonic()
    for t in threads:
        t.join()


# -- what is measured --------------------------------------------------------------------


def http_json(url: str, body: dict | None = None) -> tuple[float, object]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as resp:
        payload = resp.read()
    return time.perf_counter() - started, json.loads(payload)


def sql(api: str, statement: str, wait: float = 0, tries: int = 3) -> list:
    """The rows of ``statement`` (POST /sql). A statement the collector stopped at its
    deadline (a count over a large store while a checkpoint writes the table) is tried
    again, ``tries`` times in all; any other refusal raises with the collector's answer."""
    for attempt in range(tries):
        try:
            return http_json(f"{api}/sql?wait={wait:g}", {"sql": statement})[1]["rows"]
        except urllib.error.HTTPError as exc:
            answer = exc.read().decode(errors="replace")
            if "ran longer" not in answer or attempt == tries - 1:
                raise RuntimeError(f"/sql {exc.code}: {answer} ({statement})") from None
            print(f"/sql stopped at its deadline, again: {statement}", flush=True)
    raise AssertionError("unreachable")


def stored_counts(api: str) -> list:
    """(spans, turns, threads) stored, derivation caught up. (The spans are counted in
    spans_raw, where the view spans joins every span with its thread: over 10M spans that
    join ran out of 640 MiB, the default then.)"""
    return sql(
        api,
        "SELECT (SELECT count(*) FROM spans_raw), (SELECT count(*) FROM turns), "
        "(SELECT count(*) FROM threads)",
        wait=2,
    )[0]


#: The collector's histograms whose minutes the soak prints: checkpoints, derivation's
#: refreshes, the store opened again.
HISTOGRAMS = (
    "otel_threads_checkpoint_seconds",
    "otel_threads_derive_refresh_seconds",
    "otel_threads_store_reopen_seconds",
)


class Deltas:
    """A histogram's count and mean over the last minute, from its totals on /metrics."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}

    def minute(self, m: dict[str, float], name: str) -> tuple[float, float]:
        now = (m[f"{name}_count"], m[f"{name}_sum"])
        count, seconds = self._last.get(name, (0.0, 0.0))
        self._last[name] = now
        n = now[0] - count
        return n, (now[1] - seconds) / max(1, n)


def metrics(api: str) -> dict[str, float]:
    """The collector's metrics, by name and labels as written (one read of /metrics)."""
    with urllib.request.urlopen(f"{api}/metrics", timeout=120) as resp:
        lines = resp.read().decode().splitlines()
    return {
        name: float(value)
        for name, _, value in (line.rpartition(" ") for line in lines)
        if name and not name.startswith("#")
    }


#: The parts of the collector's CPU the soak prints, as /metrics names them.
CPU_PARTS = [
    f'otel_threads_cpu_seconds_total{{part="{p}"}}'
    for p in ("writer", "derive", "other", "decode_workers")
]


def metric(api: str, name: str) -> float:
    try:
        return metrics(api)[name]
    except KeyError:
        raise RuntimeError(f"no {name} in /metrics") from None


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """The process's resident memory now, or with ``field="VmHWM"`` its peak so far."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    return 0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


class Probe:
    """Appends a turn to a long thread each second and times until `turns` has it."""

    def __init__(self, target: str, api: str) -> None:
        self.api = api
        self.channel = grpc.insecure_channel(target)
        self.stub = self.channel.unary_unary(
            EXPORT, request_serializer=None, response_deserializer=None
        )
        self.ids = Ids(1 << 40)
        rnd = random.Random()  # ids like the others' (no prefix that zone maps tell apart)
        self.long = Conversation(thread_id(rnd), 1 << 30)
        self.medium = Conversation(thread_id(rnd), 100)
        self.lags: list[float] = []  # this minute's
        self.all_lags: list[float] = []  # the minutes' before
        self.waiting_since: float | None = None  # an acknowledged turn not seen yet
        self.spans = self.turns = 0

    def fill(self) -> None:
        """The long thread gets 2,000 turns and the medium one 100, before the clock."""
        for conv, turns in ((self.long, 2000), (self.medium, 100)):
            for at in range(0, turns, TURNS_PER_REQUEST):
                k = min(TURNS_PER_REQUEST, turns - at)
                self._send(b"".join(turn_spans(conv, self.ids) for _ in range(k)), k)

    def derived(self) -> None:
        """Wait until both threads are derived whole (the clock starts after)."""
        want = (
            "SELECT count(*) FROM turns WHERE thread_id IN "
            f"('{self.long.thread_id}', '{self.medium.thread_id}')"
        )
        while sql(self.api, want, wait=2)[0][0] < self.turns:
            time.sleep(0.5)

    def _send(self, spans: bytes, turns: int) -> None:
        _send(self.stub, request(spans), [0.0])
        self.spans += turns * SPANS_PER_TURN
        self.turns += turns

    def once(self, done: threading.Event) -> None:
        n = self.long.turns
        self._send(turn_spans(self.long, self.ids), 1)
        acked = self.waiting_since = time.monotonic()
        # (one filter on the scan, so that DuckDB looks the thread up in its index)
        turn_sql = (
            f"SELECT count(*) FILTER (WHERE turn_index > {n}) FROM turns "
            f"WHERE thread_id = '{self.long.thread_id}'"
        )
        while sql(self.api, turn_sql)[0][0] == 0:
            if done.wait(0.05):
                return  # the run ended: a lag not seen is not counted
        self.lags.append(time.monotonic() - acked)
        self.waiting_since = None

    def lag_text(self) -> str:
        """This minute's lags as p50/p99, or how long the probe has waited so far."""
        lags, self.lags = self.lags, []
        self.all_lags += lags
        if lags:
            return f"{pct(lags, 0.5):>8.2f}/{pct(lags, 0.99):<7.2f}"
        since = self.waiting_since
        return f"{'> %.0f s' % (time.monotonic() - since) if since else '-':>16}"


def workers(args: argparse.Namespace) -> tuple[str, ...]:
    """The collector's --derive-workers, when given."""
    return () if args.derive_workers is None else ("--derive-workers", args.derive_workers)


def soak(args: argparse.Namespace, exporters: int) -> dict:
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        db = Path(tmp) / "soak.duckdb"
        log = (Path(tmp) / "collector.log").open("w")
        proc, note = start_collector(db, log, "--grpc", "127.0.0.1:0", *workers(args))
        target = note["grpc"].split("://")[-1]
        api = note["api"]
        try:
            probe = Probe(target, api)
            probe.fill()
            probe.derived()
            # spans, turns, threads acknowledged, and the OTLP bytes of their requests
            counts = mp.Array("q", 4)
            stop = mp.Event()
            per = [
                exporters // args.processes + (i < exporters % args.processes)
                for i in range(args.processes)
            ]
            ctx = mp.get_context("fork")
            senders = [
                ctx.Process(
                    target=sender_process,
                    args=(target, 1000 * (i + 1), n, counts, stop, args.rate / exporters),
                )
                for i, n in enumerate(per)
                if n
            ]
            for p in senders:
                p.start()
            done = threading.Event()
            lat: dict[str, list[float]] = {"query": [], "thread": []}
            peak = [0]
            errors: list[str] = []

            def reader() -> None:
                ids = (probe.long.thread_id, probe.medium.thread_id)
                i = 0
                while not done.is_set():
                    done.wait(args.read_every * random.random() * 2)  # (a person, paced)
                    try:
                        took, _ = http_json(f"{api}/threads/query?wait=0", {"limit": 50})
                        lat["query"].append(took)
                        took, _ = http_json(f"{api}/threads/{ids[i % 2]}?wait=0")
                        lat["thread"].append(took)
                    except OSError as exc:  # counted, and said at the end
                        errors.append(f"{type(exc).__name__}: {exc}")
                        time.sleep(0.5)
                    i += 1

            def prober() -> None:
                while not done.is_set():
                    probe.once(done)
                    done.wait(1.0)

            def rss() -> None:
                while not done.is_set():
                    peak[0] = max(peak[0], rss_bytes(proc.pid))
                    done.wait(0.5)

            helpers = [threading.Thread(target=f, daemon=True) for f in (reader, prober, rss)]
            for t in helpers:
                t.start()
            print(f"\n{exporters} exporters ({len(senders)} processes), to {args.spans:,} spans")
            print(
                f"{'min':>4}{'spans':>12}{'acked/s':>10}{'derived/s':>10}{'lag p50/p99 s':>16}"
                f"{'queued':>11}"
                f"{'query p50/p99 ms':>19}{'thread p50/p99 ms':>20}{'RSS MiB':>9}{'B/span':>8}"
                f"{'ckpt n/mean ms':>16}{'refresh n/mean s':>17}{'reopen n/mean s':>16}"
                f"{'cores w/d/o/p':>21}"
            )
            started = time.monotonic()
            minute, last_spans, rates = 0, 0, []
            last_turns, last_queued = 0, metric(api, "otel_threads_derive_queue_traces")
            histograms = Deltas()
            last_cpu = metrics(api)
            whole: dict[str, list[float]] = {"query": [], "thread": []}
            while counts[0] < args.spans and minute < args.max_minutes:
                time.sleep(args.minute)
                minute += 1
                spans, turns = counts[0], counts[1]
                rate = (spans - last_spans) / args.minute
                rates.append(rate)
                last_spans = spans
                # traces derived: those acknowledged (a turn is a trace) less the growth of
                # the queue, in spans (SPANS_PER_TURN a trace), to compare with acked/s
                m = metrics(api)  # (one read for the minute's figures)
                queued = m["otel_threads_derive_queue_traces"]
                derived = (turns - last_turns - (queued - last_queued)) * SPANS_PER_TURN
                last_turns, last_queued = turns, queued
                q, lat["query"] = lat["query"], []
                th, lat["thread"] = lat["thread"], []
                whole["query"] += q
                whole["thread"] += th
                size = sum(os.path.getsize(p) for p in (db, Path(f"{db}.wal")) if os.path.exists(p))
                # the minute's checkpoints, refreshes and reopens: how many, mean seconds
                (n_ckpt, ckpt_s), (n_refresh, refresh_s), (n_reopen, reopen_s) = (
                    histograms.minute(m, name) for name in HISTOGRAMS
                )
                ckpt_ms = ckpt_s * 1e3
                # the cores the collector's parts took this minute: writer, derivation, the
                # rest of its process, its decode processes
                cores = "/".join(
                    f"{(m.get(p, 0.0) - last_cpu.get(p, 0.0)) / args.minute:.2f}" for p in CPU_PARTS
                )
                last_cpu = m
                print(
                    f"{minute:>4}{spans:>12,}{rate:>10,.0f}{derived / args.minute:>10,.0f}"
                    f"{probe.lag_text()}"
                    f"{queued:>11,.0f}"
                    f"{pct(q, 0.5) * 1e3:>10.0f}/{pct(q, 0.99) * 1e3:<8.0f}"
                    f"{pct(th, 0.5) * 1e3:>11.0f}/{pct(th, 0.99) * 1e3:<8.0f}"
                    f"{peak[0] / (1 << 20):>9,.0f}{size / max(1, spans + probe.spans):>8.0f}"
                    f"{n_ckpt:>9.0f}/{ckpt_ms:<6.0f}{n_refresh:>9.0f}/{refresh_s:<6.2f}"
                    f"{n_reopen:>9.0f}/{reopen_s:<6.2f}{cores:>21}",
                    flush=True,
                )
                peak[0] = 0
            stop.set()
            for p in senders:
                p.join()
            elapsed = time.monotonic() - started
            done.set()
            for t in helpers:
                t.join()
            spans, turns, threads = counts[0], counts[1], counts[2]
            caught = time.monotonic()
            while metric(api, "otel_threads_derive_queue_traces") > 0:
                time.sleep(1)
            stored = stored_counts(api)
            expected = [spans + probe.spans, turns + probe.turns, threads + 2]
            ok = stored == expected
            print(
                f"acknowledged {spans:,} spans in {elapsed:.0f}s ({spans / elapsed:,.0f}/s); "
                f"derivation caught up {time.monotonic() - caught:.0f}s after the stop; "
                f"the collector's peak RSS since it started (VmHWM) "
                f"{rss_bytes(proc.pid, 'VmHWM') / (1 << 20):,.0f} MiB"
            )
            if errors:
                print(f"{len(errors)} API reads failed while ingest ran, e.g. {errors[0]}")
            if len(rates) >= 2:
                print(f"last minute / first minute: {rates[-1] / rates[0]:.2f}")
            # (a minute's p99 of ~60 reads is about its slowest one; over the run, 1 in 100)
            print(
                "over the run: "
                + ", ".join(
                    f"{name} p50/p99 {pct(xs, 0.5) * k:.{d}f}/{pct(xs, 0.99) * k:.{d}f} {unit} "
                    f"({len(xs)})"
                    for name, xs, k, d, unit in (
                        ("lag", probe.all_lags, 1, 2, "s"),
                        ("query", whole["query"], 1e3, 0, "ms"),
                        ("thread", whole["thread"], 1e3, 0, "ms"),
                    )
                )
            )
            print(
                f"exact counts (spans, turns, threads): stored {stored}, acknowledged "
                f"{expected}: {'OK' if ok else 'MISMATCH'}"
            )
            time.sleep(3)  # the idle writer folds the WAL (after 1 s idle)
            size = sum(os.path.getsize(p) for p in (db, Path(f"{db}.wal")) if os.path.exists(p))
            print(
                f"on disk with everything derived: {size / stored[0]:.0f} B/span (file and "
                f"WAL, {size / 2**30:.2f} GiB); the same spans as OTLP protobuf requests: "
                f"{counts[3] / spans:.0f} B/span"
            )
            if args.rebuild and exporters == int(args.exporters.split(",")[0]):
                proc = rebuild(
                    db, log, proc, expected, args.rebuild_rate, probe.long.thread_id, workers(args)
                )
                ok = ok and proc.returncode is None  # (rebuild printed its own check)
            return {"rates": rates, "ok": ok}
        finally:
            proc.terminate()
            proc.wait()


def rebuild(
    db: Path,
    log,
    proc,
    expected: list[int],
    rate: float,
    long_thread: str,
    flags: tuple[str, ...] = (),
) -> subprocess.Popen:
    """Stop the collector, mark every derived table as derived by other SQL (an upgrade
    that changes the derivation), and start it again on the same file: it must open at
    once and derive everything anew behind ingest and reads. One exporter sends meanwhile,
    ``rate`` spans/s at most (0: as fast as acknowledged, which on a small machine leaves
    the rebuild too little to finish). Prints how long it took, the peak RSS, what the
    exporter got acknowledged, the API latency, and the exact counts at the end. Returns
    the running collector (killed when the counts are wrong)."""
    import duckdb

    proc.terminate()
    proc.wait()
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE otel_threads_derived SET version = 'other' WHERE name LIKE '%_mat'")
    started = time.monotonic()
    proc, note = start_collector(db, log, "--grpc", "127.0.0.1:0", *flags)
    opened = time.monotonic() - started
    target, api = note["grpc"].split("://")[-1], note["api"]
    queued = metric(api, "otel_threads_derive_queue_traces")
    # what the rebuild queued: the stored spans' traces (the exporter's come after them)
    last_seq = sql(api, "SELECT max(ingest_seq) FROM spans_raw")[0][0]
    counts, stop = mp.Array("q", 3), mp.Event()
    sender = mp.get_context("fork").Process(
        target=sender_process, args=(target, 90_000, 1, counts, stop, rate)
    )
    sender.start()
    done, lat = threading.Event(), {"query": [], "thread": []}

    def watch() -> None:
        while not done.is_set():
            for kind, url, body in (
                ("query", f"{api}/threads/query?wait=0", {"limit": 50}),
                ("thread", f"{api}/threads/{long_thread}?wait=0", None),
            ):
                with contextlib.suppress(OSError):  # not derived yet: 404
                    lat[kind].append(http_json(url, body)[0])
            done.wait(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    # done when the rebuild's traces are (the exporter's own keep a few queued meanwhile)
    while sql(api, f"SELECT count(*) FROM derive_queue WHERE first_seq <= {last_seq}")[0][0]:
        time.sleep(1)
    took = time.monotonic() - started
    # (the collector's peak since it started, its open included: the RSS sampled between
    # the reads above said 1,004 MiB for a rebuild of 10.5M spans that peaked at 1,382)
    peak = rss_bytes(proc.pid, "VmHWM")
    stop.set()
    sender.join()
    done.set()
    watcher.join()
    while metric(api, "otel_threads_derive_queue_traces") > 0:  # the sender's last turns
        time.sleep(0.5)
    stored = stored_counts(api)
    want = [expected[0] + counts[0], expected[1] + counts[1], expected[2] + counts[2]]
    print(
        f"rebuild of every derived table: opened in {opened:.1f}s, {queued:,.0f} traces "
        f"derived anew in {took:.0f}s ({queued / took:,.0f}/s), peak RSS "
        f"{peak / (1 << 20):,.0f} MiB; meanwhile one exporter got {counts[0] / took:,.0f} "
        f"spans/s acknowledged, API p50/p99 {pct(lat['query'], 0.5) * 1e3:.0f}/"
        f"{pct(lat['query'], 0.99) * 1e3:.0f} ms (list), {pct(lat['thread'], 0.5) * 1e3:.0f}/"
        f"{pct(lat['thread'], 0.99) * 1e3:.0f} ms (thread)"
    )
    ok = stored == want
    print(
        f"exact counts after the rebuild (spans, turns, threads): stored {stored}, "
        f"acknowledged {want}: {'OK' if ok else 'MISMATCH'}"
    )
    if not ok:
        proc.kill()
        proc.wait()
    return proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exporters", default="4,32", help="comma-separated counts, one run each")
    ap.add_argument("--spans", type=int, default=10_000_000)
    ap.add_argument("--minute", type=float, default=60.0, help="seconds per printed line")
    ap.add_argument("--max-minutes", type=int, default=120)
    ap.add_argument("--processes", type=int, default=2, help="sender processes")
    ap.add_argument("--dir", default=None, help="where the store goes (default: the temp dir)")
    ap.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="spans/s all exporters send together at most (0: as fast as acknowledged); "
        "a rate the derivation keeps up with shows the lag it keeps",
    )
    ap.add_argument(
        "--read-every",
        type=float,
        default=1.0,
        help="mean seconds between the API reads of one list query and one thread (0: back "
        "to back, a read load of its own)",
    )
    ap.add_argument(
        "--rebuild",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after the first run, derive every derived table anew (an upgrade) and measure",
    )
    ap.add_argument(
        "--rebuild-rate",
        type=float,
        default=2000.0,
        help="spans/s the one exporter sends at most during the rebuild (0: as fast as "
        "acknowledged)",
    )
    ap.add_argument(
        "--derive-workers",
        default=None,
        help="the collector's --derive-workers (default: its own, auto)",
    )
    args = ap.parse_args()
    results = [soak(args, int(n)) for n in args.exporters.split(",")]
    raise SystemExit(0 if all(r["ok"] for r in results) else 1)


if __name__ == "__main__":
    main()
