"""Screenshots of the search page, the /score page, the API docs, the Data Docs index, the training report and the
EDA report for the README (`make screenshots`):
docs/screenshots/*.png.

Builds a sample workspace once (the embedded sample, the pipeline under Prefect's test harness, with the demo's
encoders MiniLM and Lite0; `--text-encoder fake-text --image-encoder fake-image` is faster, but the fake colour
features make a child detector too weak for pictures anyone should publish), serves it on 127.0.0.1 and drives
headless Chromium through selenium, because two of the states (the enlarged image, a refusal) need a click or a
wait for the answer.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

OUT = Path(__file__).parent / "screenshots"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WIDE, NARROW = (1200, 900), (400, 860)
MAX_PNG_BYTES = 100_000
REPORT = (1100, 1400)


def build_workspace(root: Path, text_encoder: str, image_encoder: str) -> Path:
    """A trained workspace on the embedded sample (kept in `root`, so a second run only takes the pictures)."""
    from tasks.workspace import Workspace

    workspace = Workspace(root / "workspace")
    if (workspace.index_dir("gallery") / "index.json").is_file():
        return workspace.root
    from prefect.testing.utilities import prefect_test_harness

    from flows.pipeline import RunParams, run_pipeline
    from tasks.ingest.sample import generate_sample
    from tasks.training.inputs import TrainParams

    data = root / "data"
    if not data.is_dir():
        generate_sample(data, seed=0, n_train=120, n_test=40)
    with prefect_test_harness(server_startup_timeout=90):
        run_pipeline(
            RunParams(
                data_dir=data,
                workspace=workspace.root,
                text_encoder=text_encoder,
                image_encoder=image_encoder,
                training=TrainParams(models=["ridge", "two_tower"], force_promote=True),
            )
        )
    return workspace.root


def serve(workspace_root: Path):
    import uvicorn

    from tasks.search.serving import ServingStates
    from tasks.workspace import Workspace
    from webapp.app import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    states = ServingStates.for_workspace(Workspace(workspace_root), "gallery", 1.0)
    server = uvicorn.Server(uvicorn.Config(create_app(states=states), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def browser(profile: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def shoot(driver, url: str, name: str, size: tuple[int, int], ready: str, then: str = "") -> Path:
    """Open `url` at `size`, wait until the script `ready` is true (then run `then`), save docs/screenshots/NAME.png."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.set_window_size(*size)
    driver.get(url)
    wait = WebDriverWait(driver, 30)
    wait.until(lambda d: d.execute_script(ready))
    if then:
        driver.execute_script(then)
        time.sleep(0.3)
    wait.until(
        lambda d: d.execute_script("return Array.from(document.images).every(i => !i.src || i.complete)"),
    )
    path = OUT / f"{name}.png"
    driver.save_screenshot(str(path))
    return shrink(path)


def shrink(path: Path) -> Path:
    """Fewer colours (a page of flat panels and small photos survives 128 colours well), under MAX_PNG_BYTES."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    for colours in (256, 128, 64, 32):
        image.quantize(colours, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        if path.stat().st_size < MAX_PNG_BYTES:
            break
    return path


def first_image(base: str) -> str:
    """The best image for the screenshots' query, from the running server."""
    import json
    from urllib.request import urlopen

    with urlopen(base + "/api/search?" + urlencode({"q": "a dog runs on the grass", "k": 1})) as answer:  # noqa: S310 - our own server
        return json.load(answer)["results"][0]["image"]


def latest_eda_report(workspace_root: Path) -> Path:
    return max((workspace_root / "reports" / "eda").glob("*/report.html"), key=lambda p: p.stat().st_mtime)


HITS_LOADED = (
    "return document.querySelectorAll('#results .hit').length > 0 && "
    "Array.from(document.querySelectorAll('#results img')).every(i => i.complete && i.naturalWidth > 0)"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "imgsearch-screenshots")
    parser.add_argument("--text-encoder", default="minilm-l6")
    parser.add_argument("--image-encoder", default="efficientnet-lite0")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    workspace_root = build_workspace(args.root, args.text_encoder, args.image_encoder)
    OUT.mkdir(parents=True, exist_ok=True)
    server, thread, base = serve(workspace_root)
    profile = tempfile.mkdtemp(prefix="imgsearch-chromium-")
    driver = browser(profile)
    query = "/?q=" + "a+dog+runs+on+the+grass&k=10"
    try:
        shots = [
            shoot(driver, base + "/", "empty-state", WIDE, "return document.readyState === 'complete'"),
            shoot(driver, base + query, "results", WIDE, HITS_LOADED),
            shoot(
                driver,
                base + query,
                "enlarged",
                WIDE,
                HITS_LOADED,
                then="document.querySelector('#results .thumb').click()",
            ),
            shoot(
                driver,
                base + "/?q=children+playing+in+the+park",
                "refusal",
                WIDE,
                "return document.getElementById('notice').textContent.length > 0",
            ),
            shoot(driver, base + query, "results-400px", NARROW, HITS_LOADED),
            shoot(
                driver,
                base + "/score?" + urlencode({"text": "a dog runs on the grass", "image": first_image(base)}),
                "score",
                WIDE,
                "return !document.getElementById('answer').hidden",
            ),
            shoot(
                driver,
                base + "/docs",
                "api-docs",
                WIDE,
                "return document.querySelectorAll('.swagger-ui .opblock').length > 0",
            ),
            shoot(
                driver,
                (workspace_root / "reports" / "data_docs" / "index.html").as_uri(),
                "data-docs",
                WIDE,
                "return document.querySelectorAll('.bootstrap-table tbody tr').length > 0",
            ),
            shoot(
                driver,
                (workspace_root / "reports" / "training" / "latest.html").as_uri(),
                "training-report",
                REPORT,
                "return document.readyState === 'complete'",
            ),
            shoot(
                driver,
                latest_eda_report(workspace_root).as_uri(),
                "eda-report",
                REPORT,
                "return document.readyState === 'complete'",
            ),
        ]
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        server.should_exit = True
        thread.join(timeout=10)
    for path in shots:
        print(f"{path} {path.stat().st_size // 1024} KiB")  # noqa: T201 - a script's report


if __name__ == "__main__":
    main()
