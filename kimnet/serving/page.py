"""The page at ``GET /``: pick a served model, drop an image, see its top-5 classes.

Plain HTML and JavaScript in one string (no build step, no CDN: it works offline).
It calls the same REST API as any client: ``GET /v1/models`` and
``/v1/models/<name>`` to list models and versions, then ``POST
/v1/models/<name>/versions/<v>:predict`` with the ``serving_bytes`` signature.
"""

HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kimnet model server</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 44rem; color: #222; }
  h1 { font-size: 1.4rem; }
  #drop { border: 2px dashed #888; border-radius: 8px; padding: 1.5rem; text-align: center; }
  #drop.over { background: #eef5ff; border-color: #36c; }
  #result { display: flex; gap: 1.5rem; margin-top: 1.5rem; align-items: flex-start; }
  #preview { max-width: 12rem; max-height: 12rem; image-rendering: pixelated; }
  #top5 { list-style: none; padding: 0; margin: 0; flex: 1; }
  #top5 li { margin: 0.3rem 0; }
  .bar { background: #36c; height: 0.8rem; border-radius: 3px; }
  .label { display: flex; justify-content: space-between; font-size: 0.95rem; }
  #error { color: #b00; white-space: pre-wrap; }
</style>
</head>
<body>
<h1>kimnet model server</h1>
<p>
  <label for="model">Model</label>
  <select id="model"></select>
  <span id="status"></span>
</p>
<div id="drop">
  Drop an image here, or <input type="file" id="file" accept="image/*">
</div>
<p id="error" role="alert"></p>
<div id="result" hidden>
  <img id="preview" alt="the image sent">
  <ol id="top5"></ol>
</div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);

async function getJson(url, options) {
  const response = await fetch(url, options);
  const body = await response.json();
  if (!response.ok) throw new Error(`HTTP ${response.status}: ${body.error}`);
  return body;
}

async function listModels() {
  const select = $("model");
  try {
    const { models } = await getJson("/v1/models");
    for (const name of models) {
      const status = await getJson(`/v1/models/${encodeURIComponent(name)}`);
      for (const entry of status.model_version_status) {
        if (entry.state !== "AVAILABLE") continue;
        const option = document.createElement("option");
        option.value = JSON.stringify([name, entry.version]);
        option.textContent = `${name}, version ${entry.version}`;
        select.append(option);
      }
    }
    $("status").textContent = select.options.length ? "" : "no model is being served";
    document.body.dataset.ready = "true";
  } catch (error) {
    $("error").textContent = String(error.message || error);
  }
}

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function showTop5(names, scores) {
  const list = $("top5");
  list.replaceChildren();
  names.forEach((name, i) => {
    const item = document.createElement("li");
    item.dataset.name = name;
    item.dataset.score = String(scores[i]);
    const label = document.createElement("div");
    label.className = "label";
    const left = document.createElement("span");
    left.textContent = name;
    const right = document.createElement("span");
    right.textContent = `${(100 * scores[i]).toFixed(1)}%`;
    label.append(left, right);
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = `${Math.max(0.5, 100 * scores[i])}%`;
    item.append(label, bar);
    list.append(item);
  });
}

async function classify(file) {
  $("error").textContent = "";
  document.body.dataset.state = "busy";
  if (!$("model").value) {
    $("error").textContent = "No model to send the image to.";
    document.body.dataset.state = "error";
    return;
  }
  const [name, version] = JSON.parse($("model").value);
  $("preview").src = URL.createObjectURL(file);
  try {
    const body = {
      signature_name: "serving_bytes",
      instances: [{ b64: await readBase64(file) }],
    };
    const url = `/v1/models/${encodeURIComponent(name)}/versions/${version}:predict`;
    const { predictions } = await getJson(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    showTop5(predictions[0].top5_names, predictions[0].top5_scores);
    $("result").hidden = false;
    document.body.dataset.state = "done";
  } catch (error) {
    $("error").textContent = String(error.message || error);
    document.body.dataset.state = "error";
  }
}

$("file").addEventListener("change", (event) => {
  if (event.target.files.length) classify(event.target.files[0]);
});
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.className = "over"; });
drop.addEventListener("dragleave", () => { drop.className = ""; });
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.className = "";
  if (event.dataTransfer.files.length) classify(event.dataTransfer.files[0]);
});
listModels();
</script>
</body>
</html>
"""
