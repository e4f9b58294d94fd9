"""Model prices: what an LLM call cost (`llm_calls.cost_usd`, summed into turns and threads).

A call's cost is the producer's when its span carries one; otherwise its tokens at the
price of its provider and model, which is resolved once per (provider, model) the first
time a call names it, and kept in the store's ``model_prices`` table:

1. a user's price file (``otel-threads collect --prices FILE``, kept as
   ``price_overrides``): the first entry whose provider (if it names one) and model (``*``
   a wildcard) match;
2. else the `genai-prices <https://github.com/pydantic/genai-prices>`_ data that ships with
   the installed ``genai-prices`` package (no network), matched on provider and model,
   dated variants included (``gpt-4o-2024-08-06`` is ``gpt-4o``); a provider's
   OpenTelemetry name is mapped to its genai-prices id (`PROVIDERS`);
3. else no price: the call's cost is NULL, never 0.

When the price sources change (another price file, or none; another genai-prices
version), `reprice` resolves every kept (provider, model) anew and queues for derivation
the traces of the turns whose models' prices changed, so their turns and threads are
summed again; nothing else is re-derived.

A price file is JSON, a list of entries::

    [{"provider": "vllm", "model": "llama-3.1-70b*", "input_mtok": 0.2, "output_mtok": 0.4},
     {"model": "gpt-4o", "input_mtok": 2.0, "output_mtok": 8.0, "cache_read_mtok": 1.0}]

Prices are USD per million tokens (``input_mtok``, ``output_mtok``, ``cache_read_mtok``,
``cache_write_mtok``) and per thousand requests (``requests_kcount``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import duckdb

__all__ = [
    "PROVIDERS",
    "PriceEntry",
    "PriceFileError",
    "load_price_file",
    "price_new_models",
    "reprice",
]

#: OpenTelemetry provider names (gen_ai.provider.name, older gen_ai.system values, other
#: conventions' names) that genai-prices knows by another id.
PROVIDERS = {
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "vertex_ai": "google",
    "gemini": "google",
    "aws.bedrock": "aws",
    "bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.openai": "azure",
    "az.ai.inference": "azure",
    "azure_openai": "azure",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "x_ai": "x-ai",
    "xai": "x-ai",
}
#: The price keys a model_prices row holds (each per million tokens).
_TOKEN_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
_KEYS = (*_TOKEN_KEYS, "requests_kcount")
#: The highest price a price file may give (USD per million tokens, or per thousand
#: requests): past it a number is a mistake, and sums of it would overflow.
MAX_PRICE = 1_000_000
#: The row of otel_threads_derived that records the price sources.
_RECORD = "(prices)"


class PriceFileError(ValueError):
    """A price file that cannot be used (the message names the file and the entry)."""


@dataclass(frozen=True)
class PriceEntry:
    """One entry of a user's price file (USD per million tokens; `requests_kcount` per
    thousand requests). ``provider`` None matches any provider; ``model`` may hold ``*``."""

    model: str
    provider: str | None = None
    input_mtok: float | None = None
    output_mtok: float | None = None
    cache_read_mtok: float | None = None
    cache_write_mtok: float | None = None
    requests_kcount: float | None = None

    def matches(self, provider: str | None, model: str) -> bool:
        if self.provider is not None and self.provider != provider:
            return False
        return fnmatch.fnmatchcase(model, self.model)


def load_price_file(path: str | os.PathLike[str]) -> list[PriceEntry]:
    """The entries of a JSON price file (see the module's docstring); `PriceFileError`
    with a one-line reason for anything else."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise PriceFileError(f"cannot read the price file {str(path)!r}: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PriceFileError(f"the price file {str(path)!r} is not JSON: {e}") from None
    if not isinstance(data, list):
        raise PriceFileError(
            f"the price file {str(path)!r} must hold a JSON list of entries like "
            '{"model": "my-model", "input_mtok": 0.5, "output_mtok": 1.5}'
        )
    entries = []
    for i, item in enumerate(data):
        where = f"{str(path)!r}, entry {i + 1}"
        if not isinstance(item, dict):
            raise PriceFileError(f"price file {where}: each entry must be a JSON object")
        unknown = sorted(set(item) - {"model", "provider", *_KEYS})
        if unknown:
            raise PriceFileError(
                f"price file {where}: unknown field(s) {unknown}; known: model, provider, "
                + ", ".join(_KEYS)
            )
        model, provider = item.get("model"), item.get("provider")
        if not isinstance(model, str) or not model:
            raise PriceFileError(f"price file {where}: 'model' must be a non-empty string")
        if provider is not None and (not isinstance(provider, str) or not provider):
            raise PriceFileError(f"price file {where}: 'provider' must be a non-empty string")
        prices = {}
        for key in _KEYS:
            value = item.get(key)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 <= value <= MAX_PRICE
            ):
                raise PriceFileError(
                    f"price file {where}: {key!r} must be a number from 0 to {MAX_PRICE:,}, "
                    f"got {value!r}"
                )
            prices[key] = None if value is None else float(value)
        if prices["input_mtok"] is None and prices["output_mtok"] is None:
            raise PriceFileError(f"price file {where}: give input_mtok or output_mtok")
        entries.append(PriceEntry(model, provider and provider.lower(), **prices))
    return entries


def _genai_prices_version() -> str:
    try:
        import genai_prices
    except ImportError:  # pragma: no cover - a dependency; a broken install prices nothing
        return "none"
    return str(getattr(genai_prices, "__version__", "unknown"))


def _tiered(value: Any) -> dict[str, Any] | None:
    """A genai-prices price (a Decimal, or TieredPrices) as a model_prices price."""
    if value is None:
        return None
    if isinstance(value, Decimal | int | float):
        return {"base": float(value), "tiers": []}
    return {
        "base": float(value.base),
        "tiers": [{"start": int(t.start), "price": float(t.price)} for t in value.tiers],
    }


def _from_genai_prices(provider: str | None, model: str) -> dict[str, Any] | None:
    try:
        from genai_prices import Usage, calc_price
    except ImportError:  # pragma: no cover
        return None
    provider_id = PROVIDERS.get(provider, provider) if provider else None
    try:
        found = calc_price(Usage(input_tokens=0, output_tokens=0), model, provider_id=provider_id)
    except (LookupError, ValueError):
        return None
    price = found.model_price
    row = {key: _tiered(getattr(price, key, None)) for key in _TOKEN_KEYS}
    requests = getattr(price, "requests_kcount", None)
    row["requests_kcount"] = None if requests is None else float(requests)
    row["source"] = f"genai-prices: {found.provider.id}/{found.model.id}"
    return row


def _resolve(
    overrides: list[PriceEntry], provider: str | None, model: str
) -> dict[str, Any] | None:
    """The model_prices row of (provider, model): a user's entry, else genai-prices, else
    None."""
    for entry in overrides:
        if entry.matches(provider, model):
            row: dict[str, Any] = {key: _tiered(getattr(entry, key)) for key in _TOKEN_KEYS}
            row["requests_kcount"] = entry.requests_kcount
            row["source"] = f"price file: {entry.provider or '*'}/{entry.model}"
            return row
    return _from_genai_prices(provider, model)


def stored_overrides(con: duckdb.DuckDBPyConnection) -> list[PriceEntry]:
    """The price file entries a store keeps (what `reprice` was last given)."""
    rows = con.execute(
        f"SELECT model, provider, {', '.join(_KEYS)} FROM price_overrides ORDER BY position"
    ).fetchall()
    return [PriceEntry(*row) for row in rows]


def _insert(con: duckdb.DuckDBPyConnection, pairs: list[tuple[str | None, str]]) -> None:
    """Resolve ``pairs`` and add them to model_prices (one row each, known or not)."""
    overrides = stored_overrides(con)
    for provider, model in pairs:
        row = _resolve(overrides, provider, model) or {}
        con.execute(
            f"INSERT INTO model_prices (provider, model, source, {', '.join(_KEYS)}) "
            f"VALUES (?, ?, ?, {', '.join('?' for _ in _KEYS)})",
            [provider, model, row.get("source"), *[row.get(k) for k in _KEYS]],
        )


def price_new_models(
    con: duckdb.DuckDBPyConnection, calls: str, before_insert: Callable[[], None] | None = None
) -> bool:
    """Resolve the (provider, model) pairs that the LLM calls in table ``calls`` name and
    model_prices lacks; True when there were any (their costs were computed without).
    ``before_insert`` is called before their prices are written (derivation claims the
    table there, otel_threads.store.claims)."""
    pairs = con.execute(
        f"SELECT DISTINCT c.provider, m.model FROM {calls} c, "
        "unnest([c.request_model, c.response_model]) AS m(model) "
        "WHERE m.model IS NOT NULL AND NOT EXISTS (SELECT 1 FROM model_prices p "
        "WHERE p.provider IS NOT DISTINCT FROM c.provider AND p.model = m.model)"
    ).fetchall()
    if pairs:
        if before_insert is not None:
            before_insert()
        _insert(con, sorted(pairs, key=lambda p: (p[0] or "", p[1])))
    return bool(pairs)


def _fingerprint(overrides: list[PriceEntry]) -> str:
    digest = hashlib.sha256(_genai_prices_version().encode())
    digest.update(json.dumps([e.__dict__ for e in overrides], sort_keys=True).encode())
    return digest.hexdigest()[:16]


_KEEP: Any = object()


def reprice(con: duckdb.DuckDBPyConnection, overrides: list[PriceEntry] | None = _KEEP) -> int:
    """Make the store's prices follow its price sources: ``overrides`` (a price file's
    entries; None for none; left out: those it keeps) and the installed genai-prices.
    When they changed since the prices were resolved, every kept (provider, model) is
    resolved anew and the traces of the turns whose models' prices changed are queued for
    derivation. Returns how many traces were queued. One transaction."""
    con.execute("BEGIN TRANSACTION")
    try:
        if overrides is not _KEEP:
            con.execute("DELETE FROM price_overrides")
            for i, e in enumerate(overrides or []):
                con.execute(
                    f"INSERT INTO price_overrides (position, model, provider, {', '.join(_KEYS)}) "
                    f"VALUES (?, ?, ?, {', '.join('?' for _ in _KEYS)})",
                    [i, e.model, e.provider, *[getattr(e, k) for k in _KEYS]],
                )
        entries = stored_overrides(con)
        fingerprint = _fingerprint(entries)
        if con.execute(
            "SELECT version FROM otel_threads_derived WHERE name = ?", [_RECORD]
        ).fetchall() == [(fingerprint,)]:
            con.execute("COMMIT")
            return 0
        kept = con.execute(
            f"SELECT provider, model, source, {', '.join(_KEYS)} FROM model_prices"
        ).fetchall()
        changed, sources = [], set()
        for provider, model, *old in kept:
            row = _resolve(entries, provider, model) or {}
            new = [row.get("source") is not None, *[row.get(k) for k in _KEYS]]
            if _comparable(new) != _comparable([old[0] is not None, *old[1:]]):
                changed.append((provider, model))
                sources |= {old[0], row.get("source")} - {None}
        # a call's price may be its request model's while turns name its response model
        # (gpt-4o vs gpt-4o-2024-08-06): the names genai-prices takes for the same model
        # as a changed one are queued too
        changed += [(p, m) for p, m, source, *_ in kept if source in sources]
        con.execute("DELETE FROM model_prices")
        _insert(con, [(p, m) for p, m, *_ in kept])
        queued = 0
        if changed:
            models = sorted({m for _, m in changed})
            queued = con.execute(
                "INSERT INTO derive_queue (trace_id, thread_id) SELECT DISTINCT trace_id, "
                "thread_id FROM turns WHERE list_has_any(models, ?::VARCHAR[]) "
                "AND trace_id IS NOT NULL",
                [models],
            ).fetchall()[0][0]
        con.execute(
            "INSERT OR REPLACE INTO otel_threads_derived VALUES (?, ?)", [_RECORD, fingerprint]
        )
        con.execute("COMMIT")
        return int(queued)
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _comparable(values: list[Any]) -> str:
    """Whether a row is priced and its prices, as text that compares equal when they are
    (where a price came from does not change a cost)."""
    return json.dumps(values, sort_keys=True, default=str)
