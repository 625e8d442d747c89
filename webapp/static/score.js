// The /score page: posts the text and the gallery image name to /api/score and shows the score in words, or
// the refusal with its reason. The URL (?text=&image=) is the state, so an answer can be shared and reloaded.
// Everything from the server is put on the page as text (textContent), never as markup.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const form = $('score-form'), text = $('text'), image = $('image'), file = $('file'), status = $('status');
  const answer = $('answer'), refused = $('refused'), error = $('error');
  let latest = 0;

  function clear() {
    for (const panel of [answer, refused, error]) panel.hidden = true;
    status.textContent = '';
    status.classList.remove('loading');
  }

  let shownUpload = null;  // the object URL of the uploaded picture on show, revoked when replaced

  function showScore(body, upload) {
    const img = $('answer-img');
    if (shownUpload) { URL.revokeObjectURL(shownUpload); shownUpload = null; }
    if (upload) shownUpload = URL.createObjectURL(upload);
    img.src = upload ? shownUpload : '/images/' + encodeURIComponent(body.image);
    img.alt = upload ? upload.name : body.image;
    $('answer-title').textContent = '“' + body.text + '” against ' + body.image;
    $('answer-value').textContent = 'score ' + body.score.toFixed(3);
    const band = $('answer-band');
    band.textContent = body.band_label;
    band.className = 'band band-' + body.band;
    $('answer-meaning').textContent = body.band_label.charAt(0).toUpperCase() + body.band_label.slice(1) +
      ': ' + body.band_meaning + '.';
    answer.hidden = false;
  }

  function showRefusal(body) {
    $('refused-notice').textContent = body.notice || '';
    $('refused-reason').textContent = body.reason || 'refused';
    refused.hidden = false;
  }

  function showError(message) {
    $('error-text').textContent = message;
    error.hidden = false;
  }

  // `upload` (a File) is scored through /api/score/upload; otherwise the gallery image `name`.
  async function score(t, name, upload) {
    const mine = ++latest;
    clear();
    status.textContent = 'Scoring…';
    status.classList.add('loading');
    let response, body;
    try {
      response = upload
        ? await fetch('/api/score/upload?' + new URLSearchParams({ text: t }).toString(), {
          method: 'POST',
          headers: { 'Content-Type': upload.type || 'application/octet-stream' },
          body: upload,
        })
        : await fetch('/api/score', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ text: t, image: name }),
        });
      const raw = await response.text();  // a 413 from the size guard is plain text, not JSON
      try { body = JSON.parse(raw); } catch { body = { detail: raw.trim() || 'the server answered ' + response.status }; }
    } catch (err) {
      if (mine === latest) { clear(); showError('The server did not answer: ' + err.message); }
      return;
    }
    if (mine !== latest) return;
    clear();
    if (!response.ok) {
      const detail = typeof body.detail === 'string' ? body.detail : 'the text or the image name is not valid';
      showError(detail);
    } else if (body.refused) {
      showRefusal(body);
    } else {
      if (upload) body.image = upload.name;
      showScore(body, upload);
    }
  }

  function followUrl() {
    const params = new URLSearchParams(window.location.search);
    text.value = params.get('text') || '';
    image.value = params.get('image') || '';
    if (text.value.trim() && image.value.trim()) score(text.value.trim(), image.value.trim());
    else clear();
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const t = text.value.trim(), name = image.value.trim(), upload = file.files[0];
    if (!t) { text.focus(); return; }
    if (upload) { score(t, '', upload); return; }  // an upload is not kept, so it has no URL to share
    if (!name) { image.focus(); return; }
    const url = '/score?' + new URLSearchParams({ text: t, image: name }).toString();
    if (url !== window.location.pathname + window.location.search) history.pushState(null, '', url);
    score(t, name);
  });
  window.addEventListener('popstate', followUrl);
  followUrl();
})();
