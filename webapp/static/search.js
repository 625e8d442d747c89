// The search page: the URL (?q=&k=) is the state, so a search can be shared, reloaded and undone with Back.
// Everything from the server is put on the page as text (textContent), never as markup.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const form = $('search'), box = $('q'), kSelect = $('k');
  const status = $('status'), notice = $('notice'), results = $('results');
  const intro = $('intro'), refusal = $('refusal'), noResults = $('no-results'), summary = $('summary');
  const more = $('more'), showRest = $('show-rest'), showAll = $('show-all');
  const viewer = $('viewer');
  const DEFAULT_K = 5;
  let latest = 0; // number of the newest request: an older answer that arrives late is dropped

  function fromUrl() {
    const params = new URLSearchParams(window.location.search);
    const k = Number.parseInt(params.get('k') || '', 10);
    return { q: (params.get('q') || '').trim(), k: Number.isInteger(k) && k >= 1 && k <= 100 ? k : DEFAULT_K };
  }

  function urlFor(q, k) {
    const params = new URLSearchParams({ q });
    if (k !== DEFAULT_K) params.set('k', String(k));
    return '/?' + params.toString();
  }

  function setK(k) {
    if (![...kSelect.options].some((o) => o.value === String(k))) {
      const option = new Option(k + ' images', String(k));
      kSelect.add(option);
    }
    kSelect.value = String(k);
  }

  function clear() {
    if (viewer.open) viewer.close(); // Back while a picture is enlarged: the picture belongs to the old search
    notice.textContent = '';
    status.textContent = '';
    status.classList.remove('loading');
    results.replaceChildren();
    results.removeAttribute('aria-busy');
    for (const el of [refusal, noResults, summary, more, showAll]) el.hidden = true;
  }

  function showEmptyState() {
    clear();
    intro.hidden = false;
    document.title = 'imgsearch';
  }

  function card(hit) {
    const item = document.createElement('li');
    item.className = 'hit band-' + hit.band;
    item.dataset.image = hit.image;
    const thumb = document.createElement('button');
    thumb.type = 'button';
    thumb.className = 'thumb';
    thumb.setAttribute('aria-label', 'Enlarge result ' + hit.rank + ': ' + hit.image);
    const img = document.createElement('img');
    img.src = hit.url;
    img.alt = hit.captions.length ? hit.captions[0] : hit.image;
    img.loading = 'lazy';
    thumb.append(img);
    thumb.addEventListener('click', () => enlarge(hit));
    const meta = document.createElement('p');
    meta.className = 'meta';
    const rank = document.createElement('span');
    rank.className = 'rank';
    rank.textContent = '#' + hit.rank;
    const band = document.createElement('span');
    band.className = 'band band-' + hit.band;
    band.textContent = hit.band_label;
    const score = document.createElement('span');
    score.className = 'score';
    score.textContent = 'score ' + hit.score.toFixed(3);
    meta.append(rank, band, score);
    const name = document.createElement('p');
    name.className = 'name';
    name.textContent = hit.image;
    name.title = hit.image;
    item.append(thumb, meta, name);
    return item;
  }

  function enlarge(hit) {
    const img = $('viewer-img');
    img.src = hit.url;
    img.alt = hit.captions.length ? hit.captions[0] : hit.image;
    $('viewer-title').textContent = hit.image;
    $('viewer-score').textContent =
      'Rank ' + hit.rank + ' · score ' + hit.score.toFixed(3) + ' · ' + hit.band_label;
    const list = $('viewer-captions');
    list.replaceChildren();
    for (const caption of hit.captions) {
      const li = document.createElement('li');
      li.textContent = caption;
      list.append(li);
    }
    $('viewer-why').textContent = hit.captions.length
      ? 'The model compares your words with the picture. People described this picture as:'
      : 'Nobody wrote captions for this picture, so the score comes from the picture alone.';
    $('viewer-score-link').href = '/score?' + new URLSearchParams({ text: fromUrl().q, image: hit.image });
    viewer.showModal();
    $('viewer-close').focus();
  }

  function render(body, query, showWeak) {
    const hits = body.results;
    const shown = showWeak ? hits : hits.filter((h) => h.band !== 'none');
    const hiddenCount = hits.length - shown.length;
    results.replaceChildren(...shown.map(card));
    if (!hits.length) {
      noResults.hidden = false;
      $('no-results-text').textContent = 'The gallery has no searchable images, so nothing can match “' + query + '”.';
      return;
    }
    if (!shown.length) {
      noResults.hidden = false;
      $('no-results-text').textContent =
        'No image matches “' + query + '”: the best score is ' + hits[0].score.toFixed(3) +
        '. Try other words, or fewer of them.';
      showAll.hidden = false;
      showAll.textContent = 'Show the ' + hits.length + ' poor matches anyway';
      showAll.onclick = () => { clear(); render(body, query, true); results.querySelector('button')?.focus(); };
      return;
    }
    summary.hidden = false;
    summary.textContent = shown.length + ' image' + (shown.length === 1 ? '' : 's') + ' for “' + query + '”, best first';
    if (hiddenCount) {
      more.hidden = false;
      showRest.textContent = 'Show ' + hiddenCount + ' more with no match';
      showRest.onclick = () => { more.hidden = true; results.append(...hits.slice(shown.length).map(card)); };
    }
  }

  async function search(q, k) {
    const mine = ++latest;
    clear();
    intro.hidden = true;
    box.value = q;
    setK(k);
    document.title = q + ' · imgsearch';
    status.textContent = 'Searching…';
    status.classList.add('loading');
    results.setAttribute('aria-busy', 'true');
    let response, body;
    try {
      response = await fetch('/api/search?' + new URLSearchParams({ q, k: String(k) }));
      body = await response.json();
    } catch (err) {
      if (mine !== latest) return;
      clear();
      notice.textContent = 'The search service did not answer. Try again in a moment.';
      return;
    }
    if (mine !== latest) return;
    clear();
    if (!response.ok) {
      notice.textContent = typeof body.detail === 'string' ? body.detail : 'The query is not valid: ' + JSON.stringify(body.detail);
      return;
    }
    if (body.refused) {
      notice.textContent = body.notice;
      refusal.hidden = false;
      return;
    }
    render(body, q, false);
  }

  function go(q, k) {
    const url = urlFor(q, k);
    if (url !== window.location.pathname + window.location.search) history.pushState({ q, k }, '', url);
    search(q, k);
  }

  function followUrl() {
    const { q, k } = fromUrl();
    if (q) search(q, k);
    else { box.value = ''; setK(k); showEmptyState(); }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const q = box.value.trim();
    if (!q) {
      clear();
      notice.textContent = 'The query is empty: describe the picture you are looking for.';
      box.focus();
      return;
    }
    go(q, Number.parseInt(kSelect.value, 10));
  });

  for (const link of document.querySelectorAll('a.example')) {
    link.addEventListener('click', (event) => {
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return; // new tab: let it open
      event.preventDefault();
      go(link.textContent.trim(), DEFAULT_K);
      box.focus();
    });
  }

  $('home').addEventListener('click', (event) => {
    if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    if (window.location.search) history.pushState({}, '', '/');
    box.value = '';
    showEmptyState();
    box.focus();
  });

  viewer.addEventListener('click', (event) => { if (event.target === viewer) viewer.close(); }); // the backdrop
  window.addEventListener('popstate', followUrl);
  followUrl();
})();
