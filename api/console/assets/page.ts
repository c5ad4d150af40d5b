/**
 * The console's HTML: the static skeleton of the four views (so labels and landmarks exist before any
 * script runs); api/console/assets/script.ts fills them from the API.
 */
export function consoleHtml(paths: { js: string; css: string; icon: string }): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>VICReg console</title>
<link rel="icon" href="${paths.icon}" type="image/svg+xml">
<link rel="stylesheet" href="${paths.css}">
<script type="module" src="${paths.js}"></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <div class="brand"><img src="${paths.icon}" alt="" width="28" height="28"><span>VICReg console</span></div>
  <p class="model" id="model-badge" aria-live="polite">model: <span id="model-version">…</span></p>
  <nav aria-label="Views">
    <ul>
      <li><a href="#search" data-view="search">Search</a></li>
      <li><a href="#gallery" data-view="gallery">Gallery</a></li>
      <li><a href="#map" data-view="map">Map</a></li>
      <li><a href="#training" data-view="training">Training</a></li>
      <li><a href="/docs">API docs</a></li>
    </ul>
  </nav>
</header>
<main id="main" tabindex="-1">
<noscript><p class="error">The console needs JavaScript. The API itself is described at <a href="/openapi.json">/openapi.json</a>.</p></noscript>

<section id="view-search" class="view" aria-labelledby="h-search">
  <h1 id="h-search">Search by image</h1>
  <p class="lead">Give it an image: it finds the most similar images in the gallery and predicts a label, with the model version that answered.</p>
  <div id="drop" class="drop">
    <input type="file" id="pick" accept="image/*" class="vh">
    <label for="pick" class="btn primary">Choose an image…</label>
    <input type="file" id="camera" accept="image/*" capture="environment" class="vh">
    <label for="camera" class="btn">Take a photo</label>
    <span class="drop-hint">or drop an image here, or paste one (Ctrl+V / ⌘V)</span>
  </div>
  <div class="row">
    <label>Results <select id="k"><option>5</option><option selected>10</option><option>20</option><option>50</option></select></label>
    <label>Only label <input id="search-label" list="labels" placeholder="any" size="12"></label>
  </div>
  <p id="search-status" class="status" role="status" aria-live="polite"></p>
  <div id="search-out" hidden>
    <div class="answer">
      <figure class="query"><img id="query-img" alt="The query image"><figcaption>query</figcaption></figure>
      <div class="preds">
        <div><h2>kNN on the gallery</h2><ol id="pred-knn" class="bars"></ol></div>
        <div><h2>Linear probe</h2><ol id="pred-linear" class="bars"></ol></div>
        <p class="muted">answered by model <code id="answered-by"></code></p>
      </div>
    </div>
    <h2>Nearest gallery images</h2>
    <p class="muted small">Cosine similarity; select one to search from it.</p>
    <ol id="results" class="grid"></ol>
  </div>
</section>

<section id="view-gallery" class="view" aria-labelledby="h-gallery" hidden>
  <h1 id="h-gallery">Gallery</h1>
  <details class="panel" id="add-panel">
    <summary>Add images</summary>
    <form id="add-form">
      <label>Images <input type="file" id="add-files" accept="image/*" multiple required></label>
      <label>Label <input id="add-label" list="labels" maxlength="128"></label>
      <label>Id <input id="add-id" pattern="[A-Za-z0-9][A-Za-z0-9._\\-]{0,100}" placeholder="generated" aria-describedby="add-id-hint"></label>
      <p id="add-id-hint" class="muted small">Optional. With several images it is a prefix: id-1, id-2, …</p>
      <label class="wide">Metadata (JSON object) <textarea id="add-meta" rows="2" placeholder='{"sku": "A1"}'></textarea></label>
      <label>API key <input type="password" id="api-key" autocomplete="off" spellcheck="false" aria-describedby="api-key-hint"></label>
      <p id="api-key-hint" class="muted small">Only when the server has API keys on; sent with every /v1 request, kept in this page’s memory only.</p>
      <button class="btn primary" type="submit">Upload</button>
    </form>
    <p id="add-status" class="status" role="status" aria-live="polite"></p>
  </details>
  <div class="row">
    <label>Label <input id="gal-label" list="labels" placeholder="all" size="12"></label>
    <label>Per page <select id="gal-size"><option>12</option><option selected>24</option><option>48</option><option>96</option></select></label>
    <button class="btn" id="gal-refresh" type="button">Refresh</button>
  </div>
  <p id="gal-status" class="status" role="status" aria-live="polite"></p>
  <ul id="gal-grid" class="grid gallery"></ul>
  <nav class="pager" aria-label="Gallery pages">
    <button class="btn" id="gal-prev" type="button">← Previous</button>
    <span id="gal-page" aria-live="polite"></span>
    <button class="btn" id="gal-next" type="button">Next →</button>
  </nav>
</section>

<section id="view-map" class="view" aria-labelledby="h-map" hidden>
  <h1 id="h-map">Embedding map</h1>
  <p class="lead">Every gallery image placed by its embedding under the serving model (the first two principal components of the L2-normalised vectors, computed by the server). Images the model finds alike land together; colour is the label it was never trained with.</p>
  <div class="row">
    <button class="btn primary" id="map-run" type="button">Compute the map</button>
    <span id="map-status" class="status" role="status" aria-live="polite"></span>
  </div>
  <div id="map-wrap" class="map-wrap" hidden>
    <svg id="map" role="group" aria-label="Embedding map" aria-describedby="map-help"></svg>
    <div id="map-tip" class="tip" hidden></div>
  </div>
  <p id="map-help" class="muted small" hidden>Hover or focus a point for its image; select it to search from it. Arrow keys move between points.</p>
  <ul id="map-legend" class="legend" aria-label="Labels"></ul>
</section>

<section id="view-training" class="view" aria-labelledby="h-training" hidden>
  <h1 id="h-training">Training</h1>
  <form id="token-form" class="row">
    <label>Admin token <input type="password" id="admin-token" autocomplete="off" spellcheck="false" size="28"></label>
    <button class="btn" type="submit">Use token</button>
    <span id="token-status" class="status" role="status" aria-live="polite">kept in this page’s memory only</span>
  </form>
  <div class="cols">
    <form id="retrain-form" class="panel">
      <h2>Start a retrain</h2>
      <label>Dataset <select id="rt-kind"><option value="fashion-mnist">Fashion-MNIST</option><option value="gallery">the gallery</option><option value="folder">a folder on the worker</option></select></label>
      <label id="rt-path-wrap" hidden>Folder path <input id="rt-path"></label>
      <label>Image limit <input id="rt-limit" type="number" min="1" placeholder="all"></label>
      <label>Epochs <input id="rt-epochs" type="number" min="1" max="1000" value="1"></label>
      <label>Max steps <input id="rt-steps" type="number" min="1" placeholder="none"></label>
      <label>Batch size <input id="rt-batch" type="number" min="2" max="8192" placeholder="256"></label>
      <label>Seed <input id="rt-seed" type="number" min="0" placeholder="0"></label>
      <label>Recipe <select id="rt-recipe"><option value="">small (default)</option><option value="official">official</option></select></label>
      <label>Start from <select id="rt-init"><option value="">a fresh network</option><option value="latest">the latest model (same network)</option></select></label>
      <label>Backbone widths <input id="rt-widths" placeholder="16,32,64,128"></label>
      <label>Blocks per stage <input id="rt-blocks" placeholder="1,1,1,1"></label>
      <label>Expander <input id="rt-expander" placeholder="512-512-512"></label>
      <label class="check"><input type="checkbox" id="rt-force"> Publish even if it evaluates worse</label>
      <button class="btn primary" type="submit">Start</button>
      <p id="rt-status" class="status" role="status" aria-live="polite"></p>
    </form>
    <div class="panel" id="job-panel">
      <h2>Job <code id="job-id">—</code></h2>
      <p><span id="job-state" class="state">no job selected</span> <button class="btn danger" id="job-cancel" type="button" hidden>Cancel</button></p>
      <progress id="job-progress" max="1" value="0" aria-label="Training progress" hidden></progress>
      <dl id="job-stats" class="stats"></dl>
      <svg id="job-loss" class="loss" viewBox="0 0 300 90" role="img" aria-label="Loss curve" hidden></svg>
      <p id="job-result"></p>
      <details><summary>Log</summary><pre id="job-log"></pre></details>
    </div>
  </div>
  <div class="panel">
    <h2>Jobs <button class="btn small" id="jobs-refresh" type="button">Refresh</button></h2>
    <div class="scroll"><table id="jobs"><thead><tr><th scope="col">Job</th><th scope="col">State</th><th scope="col">Created</th><th scope="col">Dataset</th><th scope="col">Result</th></tr></thead><tbody></tbody></table></div>
  </div>
  <div class="panel">
    <h2>Model versions <button class="btn small" id="models-refresh" type="button">Refresh</button></h2>
    <p class="muted small">Top-1 accuracy on held-out images, beside the raw-pixel baselines; best of each column in bold. Activate promotes a version or rolls back to it.</p>
    <div class="scroll"><table id="models"><thead><tr><th scope="col">Version</th><th scope="col">State</th><th scope="col">kNN</th><th scope="col">Linear</th><th scope="col">Raw kNN</th><th scope="col">Raw linear</th><th scope="col">Std</th><th scope="col">Rank</th><th scope="col">Parent</th><th scope="col"><span class="vh">Action</span></th></tr></thead><tbody></tbody></table></div>
    <p id="models-status" class="status" role="status" aria-live="polite"></p>
  </div>
</section>
</main>
<datalist id="labels"></datalist>
</body>
</html>
`;
}
