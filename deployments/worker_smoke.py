"""Smoke test of the worker path: deploy `prefect.yaml` to a process work pool and run a backfill through a worker.

    .venv/bin/python deployments/worker_smoke.py [--timeout 900] [--keep] [--real-encoders]   (or: make worker-smoke)

Everything is temporary and private to this run: a Prefect server on a free local port with its own
PREFECT_HOME (SQLite, no UI, no scheduler), a workspace with the embedded sample dataset (`samples/seed-0`, as
deployments/serve.py makes it), the work pool `imgsearch` of type `process`, `prefect deploy --all` from the
repository root, and one `prefect worker start --pool imgsearch` process. It then runs `backfill/backfill` on the
sample (fake encoders and ridge only, unless `--real-encoders`), waits until the flow run is final, checks that
the worker ran it in the workspace (a champion model exists), runs `imgsearch-index/index` on the sample's test
images (the gallery the backfill indexed) through the same worker, stops the worker and the server and deletes the
folder (`--keep` keeps it; it is kept anyway on failure, with the logs). Exit code 0 when both runs COMPLETED.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POOL = "imgsearch"
DEPLOYMENT = "backfill/backfill"
INDEX_DEPLOYMENT = "imgsearch-index/index"
FAST_PARAMETERS = {"text_encoder": "fake-text", "image_encoder": "fake-image", "training": {"models": ["ridge"]}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prefect_cli() -> str:
    """The `prefect` command of this interpreter's environment."""
    return str(Path(sys.executable).with_name("prefect"))


def smoke_env(root: Path, port: int) -> dict[str, str]:
    """The environment of the server, the CLI calls, the worker and so of its flow runs."""
    env = dict(os.environ)
    for key in [k for k in env if k.startswith("PREFECT_")]:  # nothing from the caller's Prefect profile
        del env[key]
    env.update(
        {
            "PREFECT_HOME": str(root / "prefect"),
            "PREFECT_PROFILES_PATH": str(root / "prefect" / "profiles.toml"),
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            # only the runs this script starts: no scheduled ingest-ratings runs every minute meanwhile
            "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
            "GX_ANALYTICS_ENABLED": "False",
            "DO_NOT_TRACK": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "IMGSEARCH_HOME": str(root / "workspace"),
            "IMGSEARCH_CODE_DIR": str(REPO),  # the pull step of prefect.yaml: where a run finds the flows
        }
    )
    return env


@contextlib.contextmanager
def background(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A child process in its own process group, logged to `log`, stopped (the whole group) on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def run_cli(args: list[str], env: dict[str, str], log: Path) -> None:
    with log.open("ab") as out:
        out.write(f"$ prefect {' '.join(args)}\n".encode())
        out.flush()
        done = subprocess.run(
            [prefect_cli(), "--no-prompt", *args], check=False, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
        )
    if done.returncode != 0:
        raise SmokeError(f"`prefect {' '.join(args)}` exited {done.returncode}; see {log}")


class SmokeError(RuntimeError):
    pass


def require_completed(flow_run) -> None:
    state = flow_run.state.name if flow_run.state else "none"
    if not (flow_run.state and flow_run.state.is_completed()):
        message = flow_run.state.message if flow_run.state else ""
        raise SmokeError(f"flow run {flow_run.name} ({flow_run.id}) ended {state}: {message}")
    if flow_run.work_pool_name != POOL:
        raise SmokeError(f"flow run {flow_run.id} ran in pool {flow_run.work_pool_name!r}, not {POOL!r}")


def wait_for_server(url: str, server: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SmokeError(f"the Prefect server exited with code {server.returncode}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        time.sleep(1)
    raise SmokeError(f"the Prefect server did not answer {url}/health within {timeout:.0f} s")


def check_deployments() -> None:
    """The server holds the five deployments of prefect.yaml in the pool, one run at a time, and the retrain trigger."""
    from prefect.client.orchestration import get_client

    want = {
        "retrain/train",
        "ingest-ratings/ingest-ratings",
        "retrain/retrain",
        "backfill/backfill",
        "imgsearch-index/index",
    }
    with get_client(sync_client=True) as client:
        for name in sorted(want):
            deployment = client.read_deployment_by_name(name)
            if deployment.work_pool_name != POOL:
                raise SmokeError(f"deployment {name} is in pool {deployment.work_pool_name!r}, not {POOL!r}")
        automations = client.read_automations()
        if not any(a.name == "retrain on merged ratings" and a.enabled for a in automations):
            raise SmokeError(f"no enabled 'retrain on merged ratings' automation: {[a.name for a in automations]}")


def run_and_wait(deployment: str, parameters: dict, timeout: float, worker: subprocess.Popen):
    """Start `deployment` and poll its flow run until it is final; returns the flow run."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    flow_run = run_deployment(deployment, parameters=parameters, timeout=0)
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            flow_run = client.read_flow_run(flow_run.id)
            if flow_run.state is not None and flow_run.state.is_final():
                return flow_run
            if worker.poll() is not None:
                raise SmokeError(f"the worker exited with code {worker.returncode} before the run finished")
            if time.monotonic() > deadline:
                state = flow_run.state.name if flow_run.state else "none"
                raise SmokeError(f"flow run {flow_run.id} still {state} after {timeout:.0f} s")
            time.sleep(2)


def smoke(root: Path, timeout: float, real_encoders: bool) -> dict[str, float]:
    """The whole sequence in `root`; returns seconds per step. Raises SmokeError on any failure."""
    port = free_port()
    env = smoke_env(root, port)
    os.environ.update(env)  # this process is a Prefect client too (run_deployment): set before prefect loads
    for key in [k for k in os.environ if k.startswith("PREFECT_") and k not in env]:
        del os.environ[key]
    (root / "prefect").mkdir(parents=True, exist_ok=True)
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    times: dict[str, float] = {}

    started = time.monotonic()
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from deployments.serve import sample_data_dir

    env["IMGSEARCH_DATA_DIR"] = str(sample_data_dir(root / "workspace"))  # read by `prefect deploy`
    env["IMGSEARCH_GALLERY_DIR"] = str(Path(env["IMGSEARCH_DATA_DIR"]) / "test_images")
    times["sample"] = time.monotonic() - started

    server_cmd = [prefect_cli(), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with background(server_cmd, env, logs / "server.log") as server:
        mark = time.monotonic()
        wait_for_server(env["PREFECT_API_URL"], server, timeout=180)
        times["server start"] = time.monotonic() - mark

        mark = time.monotonic()
        run_cli(["work-pool", "create", POOL, "--type", "process"], env, logs / "cli.log")
        run_cli(["deploy", "--all", "--prefect-file", str(REPO / "prefect.yaml")], env, logs / "cli.log")
        check_deployments()
        times["pool + deploy"] = time.monotonic() - mark

        worker_cmd = [prefect_cli(), "worker", "start", "--pool", POOL, "--name", "smoke", "--install-policy", "never"]
        with background(worker_cmd, env, logs / "worker.log") as worker:
            mark = time.monotonic()
            flow_run = run_and_wait(DEPLOYMENT, {} if real_encoders else FAST_PARAMETERS, timeout, worker)
            times["backfill run"] = time.monotonic() - mark
            require_completed(flow_run)
            # then the index deployment on the gallery folder the backfill indexed: nothing new, an update
            mark = time.monotonic()
            index_run = run_and_wait(INDEX_DEPLOYMENT, {}, timeout, worker)
            times["index run"] = time.monotonic() - mark
            require_completed(index_run)

    from tasks.training.registry import ModelRegistry
    from tasks.workspace import Workspace

    champion = ModelRegistry(Workspace(root / "workspace")).champion()
    if champion is None:
        raise SmokeError("the run completed but the smoke workspace has no champion model: it ran elsewhere")
    times["total"] = time.monotonic() - started
    print(  # noqa: T201 - command-line output
        f"worker smoke: {DEPLOYMENT} flow run {flow_run.name} COMPLETED through work pool {POOL!r} "
        f"(champion {champion.version}), then {INDEX_DEPLOYMENT} flow run {index_run.name} COMPLETED; "
        + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in times.items())
    )
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=900, help="Seconds to wait for the flow run (default 900)")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary folder (server DB, logs, workspace)")
    parser.add_argument(
        "--real-encoders", action="store_true", help="Use the deployment's own encoders and models (slow)"
    )
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="imgsearch-worker-smoke-"))
    try:
        smoke(root, args.timeout, args.real_encoders)
    except SmokeError as err:
        sys.stderr.write(f"worker smoke failed: {err}\n")
        for log in sorted((root / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-25:]
            sys.stderr.write(f"--- last lines of {log}\n" + "\n".join(tail) + "\n")
        sys.stderr.write(f"kept {root}\n")
        return 1
    if args.keep:
        print(f"kept {root}")  # noqa: T201
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
