"""A pretraining corpus from OPTIMADE providers and bulk dumps: deduplicated SCOPE strings in Parquet shards.

:func:`build_corpus` (and ``cloud-crystal corpus``) runs five stages:

1. **Fetch**: pages of entries from OPTIMADE providers (the official ``optimade`` client, one page per request,
   ``--filter``, ``--page-size``) and from files (Materials Project / Alexandria JSON dumps, CIF, POSCAR, tables).
   The next page is fetched while the current one is encoded.
2. **Convert**: each entry becomes a pymatgen ``Structure`` (:mod:`tokenization.optimade_structure` for OPTIMADE
   entries; ``tokenization.load_structure`` for files). Odd entries become typed failures.
3. **Encode**: ``tokenization.structure_to_scope`` gives the canonical SCOPE v2 string (plus v1 when asked for),
   in ``num_proc`` worker processes. Its validation is the package's, so the disorder policy is ``tokenization``'s.
4. **Deduplicate**: one row per canonical v2 string, with every entry that gave it in ``sources``
   (``"<base url or file>:<id>"``, first seen first) and their number in ``count``.
5. **Write**: ``train-XXXXX-of-YYYYY.parquet`` shards of ``shard_size`` rows, ``failures.jsonl`` (one failure record
   ``{"source", "reason", "type", "message"}`` per skipped entry) and a dataset card (``README.md``); with
   ``push_to_hub`` the folder goes to a Hub dataset repository.

**Resuming.** Progress lives in ``DIR/.corpus_state.sqlite``: every page is committed with its entries, its failures
and the cursor after it in one SQLite transaction. Killed at any moment and run again with the same output folder
(and the same sources, filter, page size and SCOPE settings; anything else is a :class:`CorpusResumeError`), the
build continues at the first page that was not committed and at the first shard not written, and neither loses nor
duplicates an entry. Memory stays flat: the deduplication index is on disk, and a few pages are in memory at once.

Shard columns: ``scope`` (the requested version), ``sources`` (list of str), ``count`` (int), ``formula`` (reduced),
``n_sites`` (of the first entry's cell), ``space_group`` (ITA number, spglib at ``symprec``), ``provider``, ``id``
and ``url`` (of the first entry), and ``scope_v2`` when ``scope_version="v1"``.

Example:
    >>> import tempfile
    >>> from dataset_builders.corpus import build_corpus
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     summary = build_corpus(files=["dataset_builders/data/examples"], output_dir=folder, progress=False)
    ...     print(summary.unique_strings, summary.failed)
    10 0
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import queue
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from .corpus_sources import (
    CorpusFetchError,
    CorpusItem,
    FileSource,
    OptimadeSource,
    Page,
    check_filter,
    provider_info,
    resolve_providers,
)

logger = logging.getLogger(__name__)

STATE_FILE = ".corpus_state.sqlite"
FAILURES_FILE = "failures.jsonl"
CARD_FILE = "README.md"
SHARD_PATTERN = "train-{index:05d}-of-{total:05d}.parquet"
DEFAULT_PAGE_SIZE = 100
DEFAULT_SHARD_SIZE = 100_000
#: Stands for the repository id in a card written before the corpus is pushed.
REPO_PLACEHOLDER = "ORG/NAME"
#: Pages fetched ahead of the one being encoded.
PREFETCH_PAGES = 2

__all__ = [
    "CorpusFetchError",
    "CorpusResumeError",
    "CorpusSummary",
    "build_corpus",
    "encode_entry",
    "push_corpus",
]


class CorpusResumeError(ValueError):
    """The output folder holds a build with other settings; names the setting. Use a new folder, or the same
    settings."""


@dataclass
class CorpusSummary:
    """What a build did. Counts are over the whole build (all runs of a resumed one); seconds over this run.

    Attributes:
        output_dir (`str`): the folder with the shards, ``failures.jsonl`` and ``README.md``.
        entries (`int`): entries read from all sources (``encoded + failed + repeated``).
        encoded (`int`): entries that gave a SCOPE string.
        failed (`int`): entries left out, each with a record in ``failures.jsonl``.
        repeated (`int`): entries a source returned twice under the same id (kept once).
        unique_strings (`int`): rows of the corpus (distinct canonical v2 strings).
        failures_by_reason (`dict[str, int]`): ``failed`` split by the record's ``reason``.
        shards (`list[str]`): the Parquet file names.
        providers (`list[dict]`): per source: label, kind, entries, licence as the provider states it.
        seconds (`dict[str, float]`): this run's time per stage: ``http``, ``conversion`` and ``encoding`` (summed
            over workers), ``store`` (SQLite), ``write`` (Parquet), ``wall``.
        hub_repo (`str` or `None`): the dataset repository pushed to.
    """

    output_dir: str
    entries: int = 0
    encoded: int = 0
    failed: int = 0
    repeated: int = 0
    unique_strings: int = 0
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    shards: list[str] = field(default_factory=list)
    providers: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    hub_repo: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- encoding (runs in worker processes) ---------------------------------------------------------------------------
def encode_entry(
    item: CorpusItem, scope_version: str = "v2", symprec: float = 0.01, angle_tolerance: float = 5.0
) -> tuple:
    """Encode one entry: ``("ok", key, scope, scope_v2, formula, n_sites, space_group, t_convert, t_encode)`` or
    ``("failed", key, record, t_convert, t_encode)`` with the failure record of ``ScopeError.to_dict``.

    Times are in seconds. ``scope`` is the requested version; ``scope_v2`` the canonical key.
    """
    from tokenization import ScopeError, load_structure, structure_to_scope, typed_error
    from tokenization.optimade_structure import optimade_to_structure

    from .reporting import FailedRow

    start = time.perf_counter()
    converted = start
    try:
        if item.kind == "optimade":
            structure = optimade_to_structure(item.payload, item.key)
        elif isinstance(item.payload, ScopeError):
            raise item.payload
        else:
            structure = load_structure(item.payload, source=item.key)
        converted = time.perf_counter()
        canonical = structure_to_scope(structure, "v2", symprec, angle_tolerance, source=item.key)
        scope = (
            canonical
            if scope_version == "v2"
            else structure_to_scope(structure, scope_version, symprec, angle_tolerance, source=item.key)
        )
        formula = structure.composition.reduced_formula
        space_group = int(canonical.split(" ", 1)[0].removeprefix("SG"))
        done = time.perf_counter()
        return ("ok", item.key, scope, canonical, formula, len(structure), space_group, converted - start,
                done - converted)  # fmt: skip
    except ScopeError as error:
        record = error.to_dict(item.key)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OSError) as error:
        # Anything a reader did not type: recorded with reason "invalid_input", never dropped.
        record = FailedRow.from_exception(item.key, error).to_dict()
    except Exception as error:  # MemoryError, or a bug: typed (resource_limit, internal_error), never dropped
        record = typed_error(error, item.key).to_dict(item.key)
    now = time.perf_counter()
    return ("failed", item.key, record, converted - start, now - converted)


# -- the on-disk state ---------------------------------------------------------------------------------------------
_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (
    source TEXT PRIMARY KEY, cursor TEXT, done INTEGER NOT NULL DEFAULT 0, pages INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS strings (
    scope_v2 TEXT PRIMARY KEY, scope TEXT NOT NULL, sources TEXT NOT NULL, count INTEGER NOT NULL,
    formula TEXT, n_sites INTEGER, space_group INTEGER, provider TEXT, id TEXT, url TEXT);
CREATE TABLE IF NOT EXISTS failures (seq INTEGER PRIMARY KEY, record TEXT NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS shards (idx INTEGER PRIMARY KEY, name TEXT NOT NULL, rows INTEGER NOT NULL);
"""

_UPSERT = """
INSERT INTO strings (scope_v2, scope, sources, count, formula, n_sites, space_group, provider, id, url)
VALUES (?, ?, json_array(?), 1, ?, ?, ?, ?, ?, ?)
ON CONFLICT (scope_v2) DO UPDATE SET
    sources = json_insert(strings.sources, '$[#]', json_extract(excluded.sources, '$[0]')),
    count = strings.count + 1
"""


class CorpusStore:
    """The build's state in one SQLite file (WAL): settings, cursors, seen entries, strings, failures, shards."""

    def __init__(self, path: Path):
        self.path = path
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=NORMAL")
        self.connection.executescript(_SCHEMA)

    def close(self) -> None:
        self.connection.close()

    # settings -------------------------------------------------------------------------------------------------
    def setting(self, key: str) -> Any:
        row = self.connection.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_setting(self, key: str, value: Any) -> None:
        self.connection.execute(
            "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, json.dumps(value))
        )

    def check_settings(self, settings: dict) -> None:
        """Record ``settings`` on the first run; on a resumed one, refuse any that changed."""
        stored = self.setting("build")
        if stored is None:
            self.set_setting("build", settings)
            return
        changed = [key for key in sorted(set(stored) | set(settings)) if stored.get(key) != settings.get(key)]
        if changed:
            details = "; ".join(f"{k}: {stored.get(k)!r} before, {settings.get(k)!r} now" for k in changed)
            raise CorpusResumeError(
                f"{self.path.parent} holds a corpus build with other settings ({details}); resume it with the "
                "same settings or choose another --output-dir"
            )

    # cursors and pages ----------------------------------------------------------------------------------------
    def cursor(self, source: str) -> tuple[dict | None, bool]:
        row = self.connection.execute(
            "SELECT cursor, done FROM cursors WHERE source = ?", (source,)
        ).fetchone()
        if row is None:
            return None, False
        return (json.loads(row[0]) if row[0] else None), bool(row[1])

    def counter(self, name: str) -> int:
        row = self.connection.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _bump(self, name: str, amount: int) -> None:
        if amount:
            self.connection.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                (name, amount),
            )

    def commit_page(self, source: str, page: Page, results: Sequence[tuple]) -> None:
        """Entries, failures and the cursor after ``page``, in one transaction (all or nothing)."""
        by_key = {item.key: item for item in page.items}
        execute = self.connection.execute
        execute("BEGIN IMMEDIATE")
        try:
            encoded = failed = repeated = 0
            for result in results:
                key = result[1]
                if execute("INSERT OR IGNORE INTO entries (key) VALUES (?)", (key,)).rowcount == 0:
                    repeated += 1  # the source returned this id before: counted once
                    continue
                if result[0] == "ok":
                    _, _, scope, canonical, formula, n_sites, space_group, _, _ = result
                    item = by_key[key]
                    execute(_UPSERT, (canonical, scope, key, formula, n_sites, space_group, item.provider,
                                      item.entry_id, item.url))  # fmt: skip
                    encoded += 1
                else:
                    record = result[2]
                    execute(
                        "INSERT INTO failures (record, reason) VALUES (?, ?)",
                        (json.dumps(record), record["reason"]),
                    )
                    failed += 1
            self._bump("encoded", encoded)
            self._bump("failed", failed)
            self._bump("repeated", repeated)
            self._bump(f"entries:{source}", len(results))
            execute(
                "INSERT INTO cursors (source, cursor, done, pages) VALUES (?, ?, ?, 1) ON CONFLICT (source) DO "
                "UPDATE SET cursor = excluded.cursor, done = excluded.done, pages = cursors.pages + 1",
                (source, json.dumps(page.cursor), int(page.done)),
            )
            execute("COMMIT")
        except BaseException:
            execute("ROLLBACK")
            raise

    # results ---------------------------------------------------------------------------------------------------
    def unique_strings(self) -> int:
        return self.connection.execute("SELECT COUNT(*) FROM strings").fetchone()[0]

    def failures_by_reason(self) -> dict[str, int]:
        rows = self.connection.execute(
            "SELECT reason, COUNT(*) FROM failures GROUP BY reason ORDER BY reason"
        )
        return {reason: count for reason, count in rows}

    def iter_failures(self) -> Iterable[str]:
        for (record,) in self.connection.execute("SELECT record FROM failures ORDER BY seq"):
            yield record

    def rows(self, offset: int, limit: int) -> list[tuple]:
        return self.connection.execute(
            "SELECT scope, scope_v2, sources, count, formula, n_sites, space_group, provider, id, url "
            "FROM strings ORDER BY rowid LIMIT ? OFFSET ?",
            (limit, offset),
        ).fetchall()

    def shards_done(self) -> dict[int, str]:
        return dict(self.connection.execute("SELECT idx, name FROM shards").fetchall())

    def shard_written(self, index: int, name: str, rows: int) -> None:
        self.connection.execute(
            "INSERT OR REPLACE INTO shards (idx, name, rows) VALUES (?, ?, ?)", (index, name, rows)
        )


# -- pipeline ------------------------------------------------------------------------------------------------------
def _prefetch(sources: list, store_cursors: dict, output: queue.Queue, stop: threading.Event) -> None:
    """Fetch pages of every unfinished source into ``output``: ``(label, page)``, then ``None``; errors as values."""
    try:
        for source in sources:
            cursor, done = store_cursors[source.label]
            if done:
                continue
            for page in source.pages(cursor):
                while not stop.is_set():
                    try:
                        output.put((source.label, page), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        output.put(None)
    except BaseException as error:  # handed to the main thread, which re-raises it
        output.put(error)


def _pages(sources: list, store: CorpusStore):
    cursors = {source.label: store.cursor(source.label) for source in sources}
    pages: queue.Queue = queue.Queue(maxsize=PREFETCH_PAGES)
    stop = threading.Event()
    thread = threading.Thread(target=_prefetch, args=(sources, cursors, pages, stop), daemon=True)
    thread.start()
    try:
        while True:
            got = pages.get()
            if got is None:
                return
            if isinstance(got, BaseException):
                raise got
            yield got
    finally:
        stop.set()
        thread.join(timeout=5)


def _pool(num_proc: int):
    if num_proc <= 1:
        return None
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method).Pool(num_proc)


def _write_shards(
    store: CorpusStore, output_dir: Path, shard_size: int, scope_version: str
) -> tuple[list, float]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    total_rows = store.unique_strings()
    total = max(1, math.ceil(total_rows / shard_size))
    done = store.shards_done()
    names = []
    seconds = 0.0
    schema = [
        ("scope", pa.string()),
        ("sources", pa.list_(pa.string())),
        ("count", pa.int32()),
        ("formula", pa.string()),
        ("n_sites", pa.int32()),
        ("space_group", pa.int16()),
        ("provider", pa.string()),
        ("id", pa.string()),
        ("url", pa.string()),
    ]
    if scope_version != "v2":
        schema.insert(1, ("scope_v2", pa.string()))
    schema = pa.schema(schema)
    for index in range(total):
        name = SHARD_PATTERN.format(index=index, total=total)
        names.append(name)
        if done.get(index) == name and (output_dir / name).is_file():
            continue
        start = time.perf_counter()
        rows = store.rows(index * shard_size, shard_size)
        columns = list(zip(*rows, strict=True)) if rows else [()] * 10
        data = {
            "scope": list(columns[0]),
            "scope_v2": list(columns[1]),
            "sources": [json.loads(value) for value in columns[2]],
            "count": list(columns[3]),
            "formula": list(columns[4]),
            "n_sites": list(columns[5]),
            "space_group": list(columns[6]),
            "provider": list(columns[7]),
            "id": list(columns[8]),
            "url": list(columns[9]),
        }
        table = pa.table({name_: data[name_] for name_ in schema.names}, schema=schema)
        partial_path = output_dir / f".{name}.partial"
        pq.write_table(table, partial_path)
        os.replace(partial_path, output_dir / name)
        store.shard_written(index, name, len(rows))
        seconds += time.perf_counter() - start
    # Shards of an earlier layout (another total) are not part of this corpus.
    for stale in output_dir.glob("train-*-of-*.parquet"):
        if stale.name not in names:
            stale.unlink()
    return names, seconds


def _write_failures(store: CorpusStore, output_dir: Path) -> None:
    partial_path = output_dir / f".{FAILURES_FILE}.partial"
    with open(partial_path, "w", encoding="utf-8") as handle:
        for record in store.iter_failures():
            handle.write(record + "\n")
    os.replace(partial_path, output_dir / FAILURES_FILE)


def _license_id(info: dict) -> str | None:
    licenses = info.get("available_licenses") or []
    return licenses[0].lower() if len(licenses) == 1 else None


def dataset_card(summary: CorpusSummary, settings: dict, created: str, repo_id: str | None = None) -> str:
    """The dataset card (``README.md``): YAML metadata, then providers, filter, date, counts, licences, columns."""
    licenses = {_license_id(p) for p in summary.providers}
    license_tag = next(iter(licenses)) if len(licenses) == 1 and None not in licenses else "other"
    provider_lines = []
    for p in summary.providers:
        stated = ", ".join(p.get("available_licenses") or []) or (
            p.get("license_url") or "not stated by the provider"
        )
        provider_lines.append(
            f"| {p['label']} | {p['kind']} | {p.get('name') or ''} | {p['entries']:,} | {stated} |"
        )
    reasons = (
        "\n".join(
            f"| `{reason}` | {count:,} |" for reason, count in sorted(summary.failures_by_reason.items())
        )
        or "| (none) | 0 |"
    )
    n = summary.unique_strings
    size = "n<1K" if n < 1_000 else "1K<n<10K" if n < 10_000 else "10K<n<100K" if n < 100_000 else (
        "100K<n<1M" if n < 1_000_000 else "1M<n<10M")  # fmt: skip
    repo_id = repo_id or REPO_PLACEHOLDER
    v1_note = (
        "\n| `scope_v2` | the canonical v2 string (the deduplication key) |"
        if settings["scope_version"] != "v2"
        else ""
    )
    return f"""---
license: {license_tag}
pretty_name: SCOPE corpus
size_categories:
- {size}
tags:
- materials
- crystals
- scope
- cloud-crystal
configs:
- config_name: default
  data_files:
  - split: train
    path: "train-*.parquet"
---

# SCOPE corpus

{n:,} distinct crystals as SCOPE {settings["scope_version"]} strings, deduplicated by their canonical SCOPE v2 string,
built with `cloud-crystal corpus` on {created}.

| | |
|---|---|
| entries read | {summary.entries:,} |
| encoded | {summary.encoded:,} |
| left out (see `failures.jsonl`) | {summary.failed:,} |
| returned twice by a source (kept once) | {summary.repeated:,} |
| distinct strings (rows) | {n:,} |
| OPTIMADE filter | `{settings["filter"] or "(none)"}` |
| page size | {settings["page_size"]} |
| symprec / angle tolerance | {settings["symprec"]} Å / {settings["angle_tolerance"]}° |

## Sources and licences

Licences are given as each provider states them at its OPTIMADE `/info` endpoint (`available_licenses`, else the
`license` link); a file source carries no licence statement, so check the origin of the dump. The corpus is a
derived work of every source listed: respect each licence, and cite the providers.

| source | kind | name | entries | licence (as stated) |
|---|---|---|---|---|
{chr(10).join(provider_lines)}

## Entries left out

Every skipped entry has one record `{{"source", "reason", "type", "message"}}` in `failures.jsonl`.

| reason | entries |
|---|---|
{reasons}

## Columns

| column | meaning |
|---|---|
| `scope` | the SCOPE {settings["scope_version"]} string |{v1_note}
| `sources` | every entry that gave this string, as `"<base url or file>:<id>"`, first seen first |
| `count` | the number of those entries |
| `formula` | reduced formula |
| `n_sites` | sites in the first entry's cell |
| `space_group` | ITA space-group number |
| `provider`, `id`, `url` | the first entry |

## Use

```python
from datasets import load_dataset

corpus = load_dataset("{repo_id}", split="train", streaming=True)
```

or pretrain on it: `cloud-crystal pretrain --train hub:{repo_id} --streaming --max-steps N --output-dir run`.
"""


def push_corpus(output_dir: str | Path, repo_id: str, private: bool = False) -> str:
    """Upload the shards, ``failures.jsonl`` and the card of ``output_dir`` to the dataset repository ``repo_id``.

    Returns:
        `str`: the repository id.
    """
    from huggingface_hub import HfApi

    output_dir = Path(output_dir)
    card = output_dir / CARD_FILE
    if card.is_file():
        card.write_text(card.read_text(encoding="utf-8").replace(REPO_PLACEHOLDER, repo_id), encoding="utf-8")
    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(
        folder_path=str(output_dir),
        repo_id=repo_id,
        repo_type="dataset",
        allow_patterns=["train-*.parquet", FAILURES_FILE, CARD_FILE],
        delete_patterns=["train-*.parquet"],
        commit_message="cloud-crystal corpus",
    )
    return repo_id


def build_corpus(
    optimade: Sequence[str] = (),
    files: Sequence[str | Path] = (),
    output_dir: str | Path = "corpus",
    filter: str | None = None,  # noqa: A002  (the OPTIMADE name)
    page_size: int = DEFAULT_PAGE_SIZE,
    scope_version: str = "v2",
    num_proc: int = 1,
    shard_size: int = DEFAULT_SHARD_SIZE,
    limit: int | None = None,
    symprec: float = 0.01,
    angle_tolerance: float = 5.0,
    push_to_hub: str | None = None,
    private: bool = False,
    progress: bool = True,
) -> CorpusSummary:
    """Build (or resume) a deduplicated SCOPE corpus from OPTIMADE providers and files.

    Args:
        optimade (`list[str]`): provider base URLs (``https://optimade.materialsproject.org``) or provider ids of
            the OPTIMADE providers list (``mp``, ``alexandria``; looked up on the network).
        files (`list[str | Path]`): MP/Alexandria dumps (``.json``/``.jsonl``, ``.gz``/``.bz2``/``.xz``) and
            anything ``cloud-crystal encode`` reads (CIF, POSCAR, tables, folders).
        output_dir (`str | Path`): the folder of shards, ``failures.jsonl``, ``README.md`` and the resume state.
        filter (`str`, *optional*): an OPTIMADE filter for every provider, e.g. ``'nelements<=4'``.
        page_size (`int`): entries per OPTIMADE request and per committed page of a file.
        scope_version (`str`): ``"v2"`` (canonical) or ``"v1"`` (the authors'; ``scope_v2`` then holds the key).
        num_proc (`int`): encoding processes.
        shard_size (`int`): rows per Parquet shard.
        limit (`int`, *optional*): at most this many entries per source (a sample of a large provider).
        symprec (`float`): symmetry tolerance in Å. angle_tolerance (`float`): in degrees.
        push_to_hub (`str`, *optional*): ``org/name`` of a dataset repository to upload to.
        private (`bool`): create the repository private.
        progress (`bool`): a progress bar on stderr.

    Returns:
        [`CorpusSummary`]: counts, failures by reason, shard names, providers and seconds per stage.

    Raises:
        ValueError: no source, a bad filter or option; CorpusResumeError: ``output_dir`` holds a build with other
            settings; CorpusFetchError: a provider failed (run again to resume).
    """
    from tokenization import SCOPE_VERSIONS

    if not optimade and not files:
        raise ValueError("no source: give OPTIMADE providers (--optimade) and/or files (--dump)")
    if scope_version not in SCOPE_VERSIONS:
        raise ValueError(
            f"unknown SCOPE version {scope_version!r}; choose one of {', '.join(SCOPE_VERSIONS)}"
        )
    if page_size < 1 or shard_size < 1 or num_proc < 1 or (limit is not None and limit < 1):
        raise ValueError("page_size, shard_size, num_proc and limit must be positive")
    check_filter(filter)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    wall_start = time.perf_counter()
    store = CorpusStore(output_dir / STATE_FILE)
    try:
        base_urls = store.setting("base_urls")
        if base_urls is None or store.setting("build") is None:
            base_urls = resolve_providers(list(optimade))
        settings = {
            "optimade": base_urls,
            "files": [str(path) for path in files],
            "filter": filter or "",
            "page_size": page_size,
            "scope_version": scope_version,
            "symprec": symprec,
            "angle_tolerance": angle_tolerance,
            "shard_size": shard_size,
            "limit": limit,
        }
        store.check_settings(settings)
        store.set_setting("base_urls", base_urls)
        if store.setting("created") is None:
            store.set_setting("created", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
        sources = [OptimadeSource(url, filter, page_size, limit) for url in base_urls]
        sources += [FileSource(path, page_size, limit) for path in files]
        infos = store.setting("providers") or {}
        for source in sources:
            if isinstance(source, OptimadeSource) and source.label not in infos:
                infos[source.label] = asdict(provider_info(source.base_url))
        store.set_setting("providers", infos)

        seconds = Counter()
        encode = partial(
            encode_entry, scope_version=scope_version, symprec=symprec, angle_tolerance=angle_tolerance
        )
        pool = _pool(num_proc)
        from tqdm.auto import tqdm

        bar = tqdm(desc="corpus", unit="entry", disable=not progress, file=None)
        try:
            for label, page in _pages(sources, store):
                seconds["http"] += page.http_seconds
                if pool is None:
                    results = [encode(item) for item in page.items]
                else:
                    chunk = max(1, len(page.items) // (4 * num_proc))
                    results = pool.map(encode, page.items, chunksize=chunk)
                for result in results:
                    seconds["conversion"] += result[-2]
                    seconds["encoding"] += result[-1]
                start = time.perf_counter()
                store.commit_page(label, page, results)
                seconds["store"] += time.perf_counter() - start
                bar.update(len(page.items))
        finally:
            bar.close()
            if pool is not None:
                pool.terminate()
                pool.join()

        shards, write_seconds = _write_shards(store, output_dir, shard_size, scope_version)
        seconds["write"] += write_seconds
        start = time.perf_counter()
        _write_failures(store, output_dir)
        seconds["write"] += time.perf_counter() - start
        providers = []
        for source in sources:
            info = infos.get(source.label, {})
            providers.append({
                "label": source.label,
                "kind": "OPTIMADE" if isinstance(source, OptimadeSource) else "files",
                "name": info.get("name"),
                "entries": store.counter(f"entries:{source.label}"),
                "license_url": info.get("license_url"),
                "available_licenses": info.get("available_licenses", []),
            })  # fmt: skip
        summary = CorpusSummary(
            output_dir=str(output_dir),
            encoded=store.counter("encoded"),
            failed=store.counter("failed"),
            repeated=store.counter("repeated"),
            unique_strings=store.unique_strings(),
            failures_by_reason=store.failures_by_reason(),
            shards=shards,
            providers=providers,
        )
        summary.entries = summary.encoded + summary.failed + summary.repeated
        (output_dir / CARD_FILE).write_text(
            dataset_card(summary, settings, store.setting("created"), push_to_hub), encoding="utf-8"
        )
    finally:
        store.close()
    if push_to_hub:
        start = time.perf_counter()
        summary.hub_repo = push_corpus(output_dir, push_to_hub, private=private)
        seconds["push"] += time.perf_counter() - start
    seconds["wall"] = time.perf_counter() - wall_start
    summary.seconds = {name: round(value, 3) for name, value in seconds.items()}
    logger.info(
        "corpus: %d entries, %d distinct strings, %d left out (%s) in %s",
        summary.entries, summary.unique_strings, summary.failed, summary.failures_by_reason, output_dir,
    )  # fmt: skip
    return summary
