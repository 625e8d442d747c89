"""End to end in headless Chromium: the search page's states (empty, results, refusal, no match, enlarged, an
error), the URL as its state (?q=&k=, reload, Back) and a 400-px-wide window."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tasks.safety.text_screen import NOTICE

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(searcher):
    import uvicorn

    from webapp.app import create_app

    port = _free_port()
    config = uvicorn.Config(create_app(lambda: searcher), host="127.0.0.1", port=port, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(searcher):
    yield from _serve(searcher)


HITS_LOADED = (
    "return document.querySelectorAll('#results .hit').length > 0 && Array.from(document.querySelectorAll("
    "'#results .hit img')).every(i => i.complete && i.naturalWidth > 0)"
)


def _wait(browser, condition, timeout: float = 20):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(condition)


def _visible(browser, element_id: str) -> bool:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, element_id).is_displayed()


def _search(browser, server, query: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    box = browser.find_element(By.ID, "q")
    box.clear()
    box.send_keys(query)
    browser.find_element(By.ID, "go").click()


def _hits(browser) -> list[dict]:
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#results .hit')).map(h => ({image: h.dataset.image, "
        "rank: h.querySelector('.rank').textContent, band: h.querySelector('.band').textContent, "
        "score: h.querySelector('.score').textContent}))"
    )


def test_search_page_shows_loaded_images_with_scores(browser, server, search_setup):
    _search(browser, server, "a dog jumps over a fence")
    _wait(browser, lambda d: d.execute_script(HITS_LOADED))
    hits = _hits(browser)
    assert 0 < len(hits) <= 5 and all(h["image"] in search_setup.searchable for h in hits)
    scores = [float(h["score"].rsplit("score ", 1)[1]) for h in hits]
    assert all(0 <= s <= 1 for s in scores) and scores == sorted(scores, reverse=True)
    assert [h["rank"] for h in hits] == [f"#{n}" for n in range(1, len(hits) + 1)]
    assert all(h["band"].endswith("match") for h in hits)
    assert browser.find_element("id", "notice").text == "" and not _visible(browser, "intro")
    # the search is in the URL now, and the thumbnails are all the same height (object-fit, not ragged)
    assert browser.current_url.endswith("/?q=a+dog+jumps+over+a+fence")
    heights = browser.execute_script(
        "return Array.from(document.querySelectorAll('#results .thumb img')).map(i => i.getBoundingClientRect().height)"
    )
    assert max(heights) - min(heights) < 1


def test_empty_state_says_what_the_service_does(browser, server, search_setup):
    from selenium.webdriver.common.by import By

    from webapp.explain import EXAMPLE_QUERIES

    browser.get(server + "/")
    assert _visible(browser, "intro")
    text = browser.find_element(By.ID, "intro").text
    assert f"{len(search_setup.searchable)} searchable" in text and f"{len(search_setup.flagged)} more" in text
    assert NOTICE in text and "children" in text
    examples = browser.find_elements(By.CSS_SELECTOR, "a.example")
    assert [e.text for e in examples] == list(EXAMPLE_QUERIES)
    examples[0].click()  # an example runs its search and is in the URL
    _wait(browser, lambda d: d.execute_script(HITS_LOADED))
    assert browser.find_element(By.ID, "q").get_attribute("value") == EXAMPLE_QUERIES[0]
    assert "q=" in browser.current_url and not _visible(browser, "intro")


def test_url_query_restores_results_and_back_restores_the_previous_query(browser, server):
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    browser.get(server + "/?q=a+red+car&k=10")
    _wait(browser, lambda d: d.execute_script(HITS_LOADED))
    first = _hits(browser)
    assert len(first) <= 10 and browser.find_element(By.ID, "q").get_attribute("value") == "a red car"
    assert browser.find_element(By.ID, "k").get_attribute("value") == "10"
    browser.refresh()  # a reload shows the same search
    _wait(browser, lambda d: d.execute_script(HITS_LOADED))
    assert _hits(browser) == first

    box = browser.find_element(By.ID, "q")
    box.clear()
    box.send_keys("a woman on the beach")
    box.submit()
    _wait(browser, lambda d: d.find_element(By.ID, "q").get_attribute("value") == "a woman on the beach")
    _wait(browser, lambda d: d.execute_script(HITS_LOADED) and "woman" in d.current_url)
    browser.find_element(By.CSS_SELECTOR, "#results .thumb").click()  # Back with a picture enlarged closes it
    _wait(browser, lambda d: d.execute_script("return document.getElementById('viewer').open"))
    browser.back()
    _wait(browser, lambda d: d.find_element(By.ID, "q").get_attribute("value") == "a red car")
    assert not browser.execute_script("return document.getElementById('viewer').open")
    _wait(browser, lambda d: d.execute_script(HITS_LOADED) and _hits(d) == first)
    browser.back()  # back to the empty page
    _wait(browser, lambda d: _visible(d, "intro") and not d.find_elements(By.CSS_SELECTOR, "#results .hit"))


def test_enter_in_the_labelled_box_submits_and_results_are_buttons(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(server + "/")
    box = browser.find_element(By.ID, "q")
    assert browser.switch_to.active_element == box  # focus starts in the box
    label = browser.find_element(By.CSS_SELECTOR, "label[for=q]")
    assert label.text and browser.find_element(By.CSS_SELECTOR, "label[for=k]")
    box.send_keys("a man walks in the snow", Keys.ENTER)
    _wait(browser, lambda d: d.execute_script(HITS_LOADED))
    thumbs = browser.find_elements(By.CSS_SELECTOR, "#results .hit .thumb")
    assert thumbs and all(t.tag_name == "button" and t.get_attribute("aria-label") for t in thumbs)


def test_child_query_shows_only_the_notice(browser, server):
    from selenium.webdriver.common.by import By

    _search(browser, server, "a little girl playing")
    _wait(browser, lambda d: d.find_element(By.ID, "notice").text == NOTICE)
    assert _visible(browser, "refusal") and not _visible(browser, "intro")
    assert browser.find_elements(By.CSS_SELECTOR, "#results .hit") == []
    assert browser.find_elements(By.CSS_SELECTOR, "#results img") == []
    browser.get(server + "/?q=kids+on+a+slide")  # the same from a shared link
    _wait(browser, lambda d: d.find_element(By.ID, "notice").text == NOTICE)
    assert browser.find_elements(By.CSS_SELECTOR, "#results img") == []


def test_empty_query_shows_a_clear_message(browser, server):
    from selenium.webdriver.common.by import By

    _search(browser, server, "   ")
    _wait(browser, lambda d: "empty" in d.find_element(By.ID, "notice").text)
    assert browser.find_elements(By.CSS_SELECTOR, "#results .hit") == []


@pytest.fixture(scope="module")
def empty_gallery_server(search_setup, searcher):
    """A server over a gallery whose every image is hidden: every query has no results."""
    from tasks.search.gallery import index_folder
    from tasks.search.searcher import Searcher

    folder = Path(tempfile.mkdtemp(prefix="imgsearch-all-hidden-"))
    for name in search_setup.flagged["image"][:3]:
        shutil.copy2(search_setup.gallery / name, folder / name)
    assert index_folder(folder, "e2e-all-hidden", search_setup.workspace).searchable == 0
    hidden = Searcher.from_workspace(search_setup.workspace, index_name="e2e-all-hidden")
    yield from _serve(hidden)
    shutil.rmtree(folder, ignore_errors=True)


def test_a_gallery_with_nothing_to_show_gives_the_no_results_state(browser, empty_gallery_server):
    from selenium.webdriver.common.by import By

    browser.get(empty_gallery_server + "/?q=a+dog+runs+on+the+grass")
    _wait(browser, lambda d: _visible(d, "no-results"))
    assert "no searchable images" in browser.find_element(By.ID, "no-results").text
    assert browser.find_elements(By.CSS_SELECTOR, "#results .hit") == [] and not _visible(browser, "intro")
    browser.get(empty_gallery_server + "/")  # and the empty state says why
    assert "holds 0 searchable images; 3 more are hidden" in browser.find_element(By.ID, "intro").text


def test_an_answer_with_only_no_match_scores_shows_no_results_until_asked(browser, server):
    """The page hides hits below the lowest band; the server's answer is lowered in the browser, because which
    real query scores that low depends on the model."""
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    browser.execute_script(
        "const real = window.fetch;"
        "window.fetch = async (url) => {"
        "  const r = await real(url); const b = await r.json();"
        "  b.results.forEach(h => { h.score = h.score / 20; h.band = 'none'; h.band_label = 'no match'; });"
        "  return new Response(JSON.stringify(b), {status: r.status, headers: {'content-type': 'application/json'}});"
        "};"
    )
    box = browser.find_element(By.ID, "q")
    box.send_keys("a dog runs on the grass")
    box.submit()
    _wait(browser, lambda d: _visible(d, "no-results"))
    assert "No image matches" in browser.find_element(By.ID, "no-results").text
    assert browser.find_elements(By.CSS_SELECTOR, "#results .hit") == []
    browser.find_element(By.ID, "show-all").click()  # the poor matches on request
    _wait(browser, lambda d: d.execute_script(HITS_LOADED))
    assert {h["band"] for h in _hits(browser)} == {"no match"}


def test_enlarge_shows_the_image_with_its_captions_and_escape_closes(browser, server, searcher):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(server + "/?q=a+dog+runs+on+the+grass&k=10")
    _wait(browser, lambda d: d.execute_script(HITS_LOADED))
    hits = browser.find_elements(By.CSS_SELECTOR, "#results .hit")
    captions = searcher.captions_of([h.get_attribute("data-image") for h in hits])
    with_captions = next(h for h in hits if captions[h.get_attribute("data-image")])
    thumb = with_captions.find_element(By.CSS_SELECTOR, ".thumb")
    thumb.click()
    _wait(browser, lambda d: d.execute_script("return document.getElementById('viewer').open"))
    name = with_captions.get_attribute("data-image")
    assert browser.find_element(By.ID, "viewer-title").text == name
    _wait(browser, lambda d: d.execute_script("const i = document.getElementById('viewer-img'); return i.complete"))
    shown = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#viewer-captions li")]
    assert shown == captions[name]
    assert "Why this scored" in browser.find_element(By.ID, "viewer").text
    big = browser.find_element(By.ID, "viewer-img").size["width"]
    assert big > thumb.size["width"]
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    _wait(browser, lambda d: not d.execute_script("return document.getElementById('viewer').open"))
    assert browser.switch_to.active_element == thumb  # focus goes back to the card


def test_a_400px_wide_window_shows_a_two_column_grid_without_sideways_scrolling(browser, server):
    from selenium.webdriver.common.by import By

    browser.set_window_size(400, 860)
    try:
        browser.get(server + "/?q=a+dog+runs+on+the+grass&k=10")
        _wait(browser, lambda d: d.execute_script(HITS_LOADED))
        width = browser.execute_script("return document.documentElement.clientWidth")
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width
        lefts = {round(h.rect["x"]) for h in browser.find_elements(By.CSS_SELECTOR, "#results .hit")}
        assert len(lefts) == 2
        for element_id in ("q", "go", "k"):
            rect = browser.find_element(By.ID, element_id).rect
            assert rect["x"] >= 0 and rect["x"] + rect["width"] <= width, element_id
    finally:
        browser.set_window_size(1200, 900)


def test_score_page_posts_the_form_and_shows_the_score_then_a_refusal_and_an_error(browser, server, search_setup):
    from selenium.webdriver.common.by import By

    image = search_setup.searchable[0]
    browser.get(server + "/score")
    browser.find_element(By.ID, "text").send_keys("a dog runs on the grass")
    browser.find_element(By.ID, "image").send_keys(image)
    browser.find_element(By.ID, "go").click()
    _wait(browser, lambda d: _visible(d, "answer"))
    _wait(browser, lambda d: d.execute_script("const i = document.getElementById('answer-img'); return i.complete"))
    value = browser.find_element(By.ID, "answer-value").text
    assert value.startswith("score ") and 0 <= float(value.split()[1]) <= 1
    assert browser.find_element(By.ID, "answer-band").text.endswith("match")
    assert "expects" in browser.find_element(By.ID, "answer-meaning").text
    assert browser.execute_script("return document.getElementById('answer-img').naturalWidth") > 0
    assert "text=a+dog+runs+on+the+grass" in browser.current_url  # the answer can be shared
    # an enlarged search result links here with its query and image filled in
    _search(browser, server, "a dog runs on the grass")
    _wait(browser, lambda d: d.execute_script(HITS_LOADED))
    browser.find_element(By.CSS_SELECTOR, "#results .thumb").click()
    link = browser.find_element(By.ID, "viewer-score-link")
    _wait(browser, lambda d: link.is_displayed())
    link.click()
    _wait(browser, lambda d: _visible(d, "answer"))
    assert browser.find_element(By.ID, "text").get_attribute("value") == "a dog runs on the grass"
    # a text about children: no score, the notice and its reason
    browser.get(server + "/score?" + "text=two+boys+playing&image=" + image)
    _wait(browser, lambda d: _visible(d, "refused"))
    assert browser.find_element(By.ID, "refused-notice").text == NOTICE
    assert "children" in browser.find_element(By.ID, "refused-reason").text and not _visible(browser, "answer")
    # an image the gallery does not hold: the API's reason, in words
    browser.get(server + "/score?text=a+dog&image=nope.jpg")
    _wait(browser, lambda d: _visible(d, "error"))
    assert "no image 'nope.jpg' in the gallery" in browser.find_element(By.ID, "error-text").text


def test_score_page_scores_an_uploaded_picture_and_refuses_a_hidden_one(browser, server, search_setup):
    from selenium.webdriver.common.by import By

    browser.get(server + "/score")
    browser.find_element(By.ID, "text").send_keys("a dog runs on the grass")
    browser.find_element(By.ID, "file").send_keys(str(search_setup.gallery / search_setup.searchable[0]))
    browser.find_element(By.ID, "go").click()
    _wait(browser, lambda d: _visible(d, "answer"))
    _wait(browser, lambda d: d.execute_script("const i = document.getElementById('answer-img'); return i.complete"))
    value = browser.find_element(By.ID, "answer-value").text
    assert value.startswith("score ") and 0 <= float(value.split()[1]) <= 1
    assert browser.execute_script("return document.getElementById('answer-img').naturalWidth") > 0  # blob: allowed
    assert search_setup.searchable[0] in browser.find_element(By.ID, "answer-title").text
    # a copy of an image the safety decision hid: refused like the gallery image itself
    browser.get(server + "/score")
    browser.find_element(By.ID, "text").send_keys("a dog runs on the grass")
    browser.find_element(By.ID, "file").send_keys(str(search_setup.gallery / search_setup.flagged_by("captions")[0]))
    browser.find_element(By.ID, "go").click()
    _wait(browser, lambda d: _visible(d, "refused"))
    assert browser.find_element(By.ID, "refused-reason").text == "image shows a child"
    assert not _visible(browser, "answer")
