"""Runs a contract (a GX Core 1.x expectation suite built in code) on a DataFrame.

A failed contract raises `ContractError`, which carries the GX result and a message naming the
table, the file, the column and a few offending rows (by their physical `line` in the file). Data Docs
are built from an HTML-escaped copy of each result, because the offending values come from input files.
"""

from __future__ import annotations

import copy
import html
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

MAX_ROWS_SHOWN = 5
MAX_VALUE_SHOWN = 120  # characters of one offending value in a message or a Data Docs cell
DOCS_SITE = "imgsearch"
_lock = threading.Lock()
_state: dict[str, Any] = {}


def quiet_telemetry() -> None:
    """GX and Prefect phone home unless told not to; this machine has no internet."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def why(expectation: Any, reason: str) -> Any:
    """Attach the reason an expectation exists (`meta.why`); failure messages and Data Docs show it."""
    expectation.meta = {"why": reason}
    return expectation


@dataclass(frozen=True)
class Contract:
    """A named suite: `build()` returns the expectations; `index` names the columns that locate a row."""

    name: str
    build: Callable[[], list[Any]]
    index: tuple[str, ...] = ("line",)


@dataclass(frozen=True)
class Failure:
    expectation: str
    column: str | None
    why: str
    unexpected_count: int | None
    examples: list[str] = field(default_factory=list)

    def describe(self) -> str:
        where = f"column '{self.column}'" if self.column else "table"
        count = (
            f"{self.unexpected_count} bad row(s)" + (", e.g." if self.examples else "")
            if self.unexpected_count
            else "failed"
        )
        rows = "".join(f"\n      {example}" for example in self.examples)
        return f"{where}: {self.expectation} ({self.why}) — {count}{rows}"


@dataclass(frozen=True)
class ContractResult:
    contract: str
    source: str
    rows: int
    evaluated: int
    failures: list[Failure]
    gx_result: Any = field(repr=False, default=None)

    @property
    def success(self) -> bool:
        return not self.failures


class ContractError(Exception):
    """A contract failed: nothing downstream may run on this data."""

    def __init__(self, result: ContractResult):
        self.result = result
        lines = [
            f"contract '{result.contract}' failed for {result.source}: "
            f"{len(result.failures)} of {result.evaluated} checks failed on {result.rows} rows"
        ]
        lines += [f"  - {f.describe()}" for f in result.failures]
        super().__init__("\n".join(lines))


def _context():
    """One ephemeral GX context per process, made on first use (never at import)."""
    with _lock:
        if "context" not in _state:
            quiet_telemetry()
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            logging.getLogger("great_expectations").setLevel(logging.WARNING)
            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            _state["context"] = context
            _state["source"] = context.data_sources.add_pandas("imgsearch")
            _state["docs_dir"] = None
        return _state["context"]


def enable_data_docs(directory: Path) -> None:
    """Write Data Docs HTML for every later validation into `directory`."""
    context = _context()
    directory = Path(directory)
    with _lock:
        if _state.get("docs_dir") == directory:
            return
        for site in list(context.get_site_names()):
            context.delete_data_docs_site(site)
        context.add_data_docs_site(
            site_name=DOCS_SITE,
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(directory)},
                # no "how to" footer of links to GX's tutorials on every page
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder", "show_how_to_buttons": False},
            },
        )
        _state["docs_dir"] = directory


def escape_values(value: Any, limit: int | None = None) -> Any:
    """Every string inside `value` (nested lists, tuples and dict values) HTML-escaped, and cut to `limit`
    characters when given; other values as they are."""
    if isinstance(value, str):
        if limit is not None and len(value) > limit:
            value = f"{value[:limit]}... ({len(value):,} characters)"
        return html.escape(value, quote=True)
    if isinstance(value, dict):
        return {k: escape_values(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(escape_values(v, limit) for v in value)
    return value


def docs_safe_result(gx_result: Any) -> Any:
    """A copy of a validation result whose values from the data are HTML-escaped, for Data Docs.

    GX escapes the parameters of its sentence templates but writes table cells raw: the unexpected values
    of a failed expectation (an image name like `<img src=x onerror=...>`) reach the page as markup. The
    values come from input tables, so they are escaped before the page is built; the expectations' own
    arguments are ours and GX escapes them itself. The original result (used for messages) is unchanged.
    """
    safe = copy.deepcopy(gx_result)
    for item in safe.results:
        item.result = escape_values(item.result or {}, MAX_VALUE_SHOWN)
        if item.exception_info:
            item.exception_info = escape_values(item.exception_info)
    return safe


def _build_docs(context: Any, key: Any, gx_result: Any, suite_name: str) -> None:
    """Store the escaped copy of the result under its key (replacing the raw one) and render its pages."""
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    from data_contracts.docs_offline import localize_site

    context.validation_results_store.set(key, docs_safe_result(gx_result))
    started = time.time()
    context.build_data_docs(
        site_names=[DOCS_SITE], resource_identifiers=[key, ExpectationSuiteIdentifier(name=suite_name)]
    )
    # Only the pages this build wrote (the index, the suite's and the validation's), not every older one.
    site = _state["docs_dir"]
    localize_site(site, [p for p in Path(site).rglob("*.html") if p.stat().st_mtime >= started - 1])


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _shown(value: Any) -> str:
    """repr of a value, cut short when long: a runaway 5 MB caption must not become a 5 MB message."""
    text = repr(value)
    if len(text) <= MAX_VALUE_SHOWN:
        return text
    size = f"{len(value):,} characters" if isinstance(value, str) else f"{len(text):,} characters as text"
    return f"{text[: MAX_VALUE_SHOWN - 20]}... ({size})"


def _example(row: Any, index: tuple[str, ...], column: str | None) -> str:
    """One offending row as 'line 7: 5' or 'table X, line 3, image Y' (flag columns are left out)."""
    if not isinstance(row, dict):
        return _shown(_plain(row))
    where = ", ".join(f"{k} {_plain(row[k])}" for k in index if k in row and row[k] not in ("", None))
    values = {k: _plain(v) for k, v in row.items() if k not in index}
    values = {k: v for k, v in values.items() if not isinstance(v, bool)}
    if not values:
        return where
    if column and column in values:
        return f"{where}: {_shown(values[column])}"
    return f"{where}: {', '.join(f'{k}={_shown(v)}' for k, v in values.items())}"


def _failures(gx_result: Any, index: tuple[str, ...]) -> list[Failure]:
    failures = []
    for item in gx_result.results:
        if item.success:
            continue
        config = item.expectation_config
        kwargs = config.kwargs
        column = kwargs.get("column") or (", ".join(kwargs["column_list"]) if "column_list" in kwargs else None)
        result = item.result or {}
        rows = result.get("unexpected_index_list") or []
        examples = [_example(r, index, kwargs.get("column")) for r in rows[:MAX_ROWS_SHOWN]]
        if not examples and result.get("observed_value") is not None:
            examples = [f"observed {_shown(result['observed_value'])}"]
        if item.exception_info and item.exception_info.get("raised_exception"):
            examples.append(str(item.exception_info.get("exception_message"))[:200])
        failures.append(
            Failure(
                expectation=config.type,
                column=column,
                why=(config.meta or {}).get("why", ""),
                unexpected_count=result.get("unexpected_count"),
                examples=examples,
            )
        )
    return failures


def run_contract(frame: pd.DataFrame, contract: Contract, source: str) -> ContractResult:
    """Validate `frame` against `contract`; the result lists each failed expectation with example rows."""
    import great_expectations as gx

    context = _context()
    with _lock:
        asset_name = f"{contract.name}-{len(_state.setdefault('assets', []))}"
        _state["assets"].append(asset_name)
        asset = _state["source"].add_dataframe_asset(asset_name)
        batch = asset.add_batch_definition_whole_dataframe("all")
        suite = gx.ExpectationSuite(name=asset_name, expectations=contract.build())
        suite = context.suites.add(suite)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=asset_name, data=batch, suite=suite)
        )
        result_format = {"result_format": "COMPLETE", "unexpected_index_column_names": list(contract.index)}
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(name=asset_name, validation_definitions=[definition], result_format=result_format)
        )
        # The GX context is shared and not thread-safe: Prefect may run contracts on several threads.
        run = checkpoint.run(batch_parameters={"dataframe": frame})
        key, gx_result = next(iter(run.run_results.items()))
        if _state.get("docs_dir"):
            _build_docs(context, key, gx_result, suite.name)
    return ContractResult(
        contract=contract.name,
        source=source,
        rows=len(frame),
        evaluated=len(gx_result.results),
        failures=_failures(gx_result, contract.index),
        gx_result=gx_result,
    )


def enforce(frame: pd.DataFrame, contract: Contract, source: str) -> ContractResult:
    """Run the contract and raise `ContractError` when it fails."""
    result = run_contract(frame, contract, source)
    if not result.success:
        raise ContractError(result)
    return result
