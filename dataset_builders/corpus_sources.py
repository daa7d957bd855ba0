"""Where a corpus comes from: OPTIMADE providers (one HTTP page at a time) and bulk files, each as resumable pages.

A source yields :class:`Page` objects. A page holds its entries as :class:`CorpusItem` tuples and the *cursor* that
resumes right after it (the provider's ``links.next`` URL, or the number of records read from a file), so the
corpus store can commit a page and its cursor in one transaction: a run killed at any moment restarts at the first
page it had not committed, and no entry is lost or counted twice.

* :class:`OptimadeSource`: one provider base URL, an OPTIMADE filter and a page size, fetched with the official
  client (``optimade.client.OptimadeClient``, one page per call, following ``links.next``). ``optimade`` is imported
  only here, only when a provider is fetched.
* :class:`FileSource`: Materials Project and Alexandria bulk dumps (``ComputedStructureEntry`` dicts or summary
  documents with a ``structure``; ``.json``/``.jsonl``, optionally ``.gz``, ``.bz2`` or ``.xz``), and everything the
  ``encode`` command reads (CIF, POSCAR, extxyz, CSV/Parquet tables, folders).
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from tokenization.optimade_structure import RESPONSE_FIELDS
from tokenization.scope_errors import StructureParseError
from tokenization.structure_files import jsonl_records

#: The OPTIMADE API major version the client speaks (``{base_url}/v1/structures``).
OPTIMADE_VERSION_PREFIX = "v1"
_COMPRESSIONS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
#: Keys that name an entry in MP / Alexandria documents, in order of preference (``data.*`` for computed entries).
_ID_KEYS = ("material_id", "entry_id", "task_id", "mat_id", "id")


class CorpusFetchError(RuntimeError):
    """A provider could not be read (unreachable, an HTTP error, a refused filter). Names the URL.

    The run stops with its state saved; running the same command again resumes at the page that failed.
    """

    def __init__(self, message: str, url: str):
        self.url = url
        super().__init__(f"{url}: {message}")


class CorpusItem(NamedTuple):
    """One entry to encode.

    ``key`` is ``"<provider>:<id>"`` (the ``sources`` value); ``kind`` is ``"optimade"`` (``payload`` an OPTIMADE
    resource) or ``"structure"`` (``payload`` anything ``tokenization.load_structure`` reads, or the ``ScopeError``
    that reading it gave).
    """

    key: str
    provider: str
    entry_id: str
    url: str
    kind: str
    payload: Any


@dataclass
class Page:
    """Entries and the cursor after them; ``done`` when the source has nothing more. ``http_seconds``: fetch time."""

    items: list[CorpusItem]
    cursor: dict
    done: bool
    http_seconds: float = 0.0


@dataclass
class ProviderInfo:
    """What a provider says about itself at ``/info`` (``license``, ``available_licenses``) and in ``meta``."""

    name: str | None = None
    license_url: str | None = None
    available_licenses: list[str] = field(default_factory=list)


def normalize_base_url(url: str) -> str:
    """``https://host/optimade/`` -> ``https://host/optimade`` (and a trailing ``/v1`` is dropped)."""
    url = url.strip().rstrip("/")
    return url.removesuffix(f"/{OPTIMADE_VERSION_PREFIX}")


def check_filter(filter_text: str | None) -> None:
    """Parse an OPTIMADE filter with the package's grammar; a bad filter is a ``ValueError`` naming it."""
    if not filter_text:
        return
    from optimade.exceptions import BadRequest
    from optimade.filterparser import LarkParser

    try:
        LarkParser().parse(filter_text)
    except BadRequest as error:
        raise ValueError(f"not an OPTIMADE filter: {filter_text!r} ({error.detail})") from error


def resolve_providers(names: list[str]) -> list[str]:
    """Provider ids of the OPTIMADE providers list (``mp``, ``alexandria``, ``oqmd``, ...) -> their databases' base URLs.

    Arguments that are already URLs are returned as they are. Looking a name up needs the network
    (providers.optimade.org, then each provider's index meta-database), through ``optimade.utils.get_all_databases``.

    Raises:
        ValueError: a name that the providers list does not know, or whose provider lists no database.
    """
    urls = []
    for name in names:
        if "://" in name:
            urls.append(normalize_base_url(name))
            continue
        from optimade.utils import get_all_databases

        found = [normalize_base_url(url) for url in get_all_databases(include_providers={name})]
        if not found:
            raise ValueError(
                f"OPTIMADE provider {name!r}: not in the providers list, or its index lists no database "
                "(give the base URL instead)"
            )
        urls.extend(found)
    return list(dict.fromkeys(urls))


def _client(base_url: str):
    from optimade.client import OptimadeClient

    return OptimadeClient(base_urls=[base_url], use_async=False, silent=True, max_results_per_provider=0)


def provider_info(base_url: str) -> ProviderInfo:
    """``GET {base_url}/v1/info``: the provider's licence as it states it (never guessed). Unreachable -> empty."""
    client = _client(base_url)
    results = client.get_one("info", "", base_url, paginate=False)[base_url]
    data = results.data if isinstance(results.data, dict) else {}
    attributes = data.get("attributes") or {}
    license_link = attributes.get("license") or {}
    provider = (results.meta or {}).get("provider") or {}
    return ProviderInfo(
        name=provider.get("name"),
        license_url=license_link.get("href") if isinstance(license_link, dict) else str(license_link),
        available_licenses=list(attributes.get("available_licenses") or []),
    )


class OptimadeSource:
    """One OPTIMADE database, paged with the official client.

    Args:
        base_url (`str`): the database's base URL (the part before ``/v1/structures``).
        filter (`str`, *optional*): an OPTIMADE filter, e.g. ``'elements HAS "O" AND nsites<=40'``.
        page_size (`int`): entries per request (``page_limit``); providers cap it (often at 100-1,000).
        limit (`int`, *optional*): stop after this many entries (a sample of a large provider).
    """

    kind = "optimade"

    def __init__(
        self, base_url: str, filter: str | None = None, page_size: int = 100, limit: int | None = None
    ):  # noqa: A002
        self.base_url = normalize_base_url(base_url)
        self.label = self.base_url
        self.filter = filter or ""
        self.page_size = page_size
        self.limit = limit

    def pages(self, cursor: dict | None) -> Iterator[Page]:
        """Pages from ``cursor`` on (``None``: from the start): ``{"next": url or None, "entries": n}``."""
        client = _client(self.base_url)
        seen = int((cursor or {}).get("entries", 0))
        next_url = (cursor or {}).get("next")
        while True:
            start = time.perf_counter()
            results = client.get_one(
                "structures",
                self.filter,
                self.base_url,
                response_fields=list(RESPONSE_FIELDS),
                page_limit=self.page_size,
                paginate=False,
                override_url=next_url,
            )[self.base_url]
            elapsed = time.perf_counter() - start
            if results.errors and not results.data:
                raise CorpusFetchError("; ".join(map(str, results.errors)), next_url or self.base_url)
            entries = list(results.data or [])
            if self.limit is not None:
                entries = entries[: max(0, self.limit - seen)]
            seen += len(entries)
            link = (results.links or {}).get("next")
            next_url = link.get("href") if isinstance(link, dict) else link
            done = not next_url or not entries or (self.limit is not None and seen >= self.limit)
            items = [
                CorpusItem(
                    key=f"{self.label}:{entry.get('id')}",
                    provider=self.label,
                    entry_id=str(entry.get("id")),
                    url=f"{self.base_url}/{OPTIMADE_VERSION_PREFIX}/structures/{entry.get('id')}",
                    kind=self.kind,
                    payload=entry,
                )
                for entry in entries
            ]
            yield Page(items, {"next": None if done else next_url, "entries": seen}, done, elapsed)
            if done:
                return


# -- files --------------------------------------------------------------------------------------------------------
def _compression(path: Path):
    return _COMPRESSIONS.get(path.suffix.lower())


def is_dump_file(path: Path) -> bool:
    """``.json``/``.jsonl``, optionally compressed (``.gz``, ``.bz2``, ``.xz``): read as MP/Alexandria dumps."""
    inner = path.with_suffix("") if _compression(path) else path
    return inner.suffix.lower() in (".json", ".jsonl")


def _open_text(path: Path):
    opener = _compression(path)
    return opener(path, "rt", encoding="utf-8") if opener else open(path, encoding="utf-8")  # noqa: SIM115


def _record_id(record: dict, fallback: str) -> str:
    data = record.get("data") if isinstance(record.get("data"), dict) else {}
    for key in _ID_KEYS:
        for holder in (record, data):
            value = holder.get(key)
            if isinstance(value, (str, int)) and str(value):
                return str(value)
    return fallback


def dump_record(record: Any, fallback_id: str, source: str) -> tuple[str, Any]:
    """One dump record -> ``(id, structure input or error)``.

    Takes a Materials Project summary document (``material_id``, ``structure``), a pymatgen
    ``ComputedStructureEntry`` dict (``entry_id`` or ``data.material_id``/``data.mat_id`` as in Alexandria,
    ``structure``), a bare ``Structure.as_dict()``, or CIF/POSCAR text.
    """
    if isinstance(record, str):
        return fallback_id, record
    if not isinstance(record, dict):
        return fallback_id, StructureParseError(f"a record of type {type(record).__name__}", source)
    if "lattice" in record and "sites" in record:
        return _record_id(record.get("properties") or {}, fallback_id), record
    entry_id = _record_id(record, fallback_id)
    structure = record.get("structure")
    if structure is None:
        kind = record.get("@class", "record")
        return entry_id, StructureParseError(
            f"{kind} without a 'structure' (a ComputedEntry holds only a composition)", source
        )
    return entry_id, structure


def iter_dump(path: Path) -> Iterator[tuple[str, str, Any]]:
    """``(source, id, structure input or error)`` for every record of one dump file, in file order.

    JSON files may hold a list of records, ``{"entries": [...]}`` (Alexandria, pymatgen's serialised entry lists),
    ``{"data": [...]}`` (an MP API response) or one record; JSONL holds one record per line. A whole JSON file is
    parsed at once (the stdlib has no streaming JSON parser): split very large dumps into files or use JSONL.
    """
    name = str(path)
    inner = path.with_suffix("") if _compression(path) else path
    try:
        if inner.suffix.lower() == ".jsonl":
            with _open_text(path) as handle:
                for number, source, record in jsonl_records(handle, name):
                    if isinstance(record, StructureParseError):
                        yield source, f"line{number}", record
                        continue
                    entry_id, item = dump_record(record, f"line{number}", source)
                    yield source, entry_id, item
            return
        with _open_text(path) as handle:
            data = json.load(handle)
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError, lzma.LZMAError) as error:
        yield name, path.name, StructureParseError(f"unreadable dump ({type(error).__name__}: {error})", name)
        return
    if isinstance(data, dict) and isinstance(data.get("entries"), list):
        records = data["entries"]
    elif isinstance(data, dict) and isinstance(data.get("data"), list):
        records = data["data"]
    elif isinstance(data, list):
        records = data
    else:
        records = [data]
    for index, record in enumerate(records):
        source = f"{name}#{index}"
        entry_id, item = dump_record(record, f"#{index}", source)
        yield source, entry_id, item


class FileSource:
    """Structures from files: MP/Alexandria dumps and whatever ``cloud-crystal encode`` reads.

    Args:
        path (`str` or `Path`): a dump (``.json``/``.jsonl``, optionally ``.gz``/``.bz2``/``.xz``), a structure file,
            a CSV/Parquet table with a ``structure`` column, or a folder of such files.
        page_size (`int`): records per committed page (the unit of resuming).
        limit (`int`, *optional*): stop after this many records.

    The ``sources`` value of an entry is ``"<path>:<id>"`` with the record's ``material_id`` / ``entry_id`` /
    ``data.mat_id``, or its position when it has none.
    """

    kind = "structure"

    def __init__(self, path: str | Path, page_size: int = 1000, limit: int | None = None):
        self.path = Path(path)
        self.label = str(path)
        self.base_url = self.label
        self.page_size = page_size
        self.limit = limit

    def _records(self) -> Iterator[tuple[str, str, str, Any]]:
        """``(provider label, id, source, item)``: a dump's records under the dump's path with their own ids;
        other files under the argument with ``relative/path[#row|:line|@frame]`` as the id."""
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such file or folder")
        from tokenization.structure_files import is_structure_file, iter_structure_inputs

        folder = self.path.is_dir()
        files = sorted(p for p in self.path.rglob("*") if p.is_file()) if folder else [self.path]
        base = self.path if folder else self.path.parent
        for file in files:
            if is_dump_file(file):
                for source, entry_id, item in iter_dump(file):
                    yield str(file), entry_id, source, item
            elif not folder or is_structure_file(file) or file.suffix.lower() in (".csv", ".parquet"):
                relative = str(file.relative_to(base))
                for source, item in iter_structure_inputs([file]):
                    if isinstance(item, dict) and "scope" in item and "lattice" not in item:
                        item = StructureParseError(
                            "holds a SCOPE string, not a structure; a corpus is built from structures", source
                        )
                    suffix = source[len(str(file)) :] if source.startswith(str(file)) else f"#{source}"
                    yield self.label, relative + suffix, source, item

    def pages(self, cursor: dict | None) -> Iterator[Page]:
        """Pages of ``page_size`` records from ``cursor`` on (``{"position": records already committed}``)."""
        position = int((cursor or {}).get("position", 0))
        batch: list[CorpusItem] = []
        read = position
        for index, (provider, entry_id, source, item) in enumerate(self._records()):
            if index < position:
                continue
            if self.limit is not None and index >= self.limit:
                break
            batch.append(CorpusItem(f"{provider}:{entry_id}", provider, entry_id, source, self.kind, item))
            read = index + 1
            if len(batch) == self.page_size:
                yield Page(batch, {"position": read}, False)
                batch = []
        yield Page(batch, {"position": read}, True)
