// secquant demo page: a thin view over the client app's JSON endpoints (/api/...).
// Plaintext leaves this page only towards the client app that served it (same origin, 127.0.0.1).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { models: [], servers: [], input: { kind: "canvas" }, drawn: false, running: false };
const fmt = (n) => Number(n).toLocaleString("en-US");
const kb = (n) => (n >= 1048576 ? (n / 1048576).toFixed(2) + " MB" : (n / 1024).toFixed(1) + " KB");

// ---------------------------------------------------------------- canvas
const canvas = $("canvas");
const ctx = canvas.getContext("2d", { willReadFrequently: true });

function clearCanvas() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  state.drawn = false;
}

function point(ev) {
  const r = canvas.getBoundingClientRect();
  return [(ev.clientX - r.left) * canvas.width / r.width, (ev.clientY - r.top) * canvas.height / r.height];
}

function setupCanvas() {
  clearCanvas();
  let down = false;
  canvas.addEventListener("pointerdown", (ev) => {
    down = true;
    canvas.setPointerCapture(ev.pointerId);
    const [x, y] = point(ev);
    ctx.strokeStyle = "#fff";
    ctx.fillStyle = "#fff";
    ctx.lineWidth = 20;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.arc(x, y, ctx.lineWidth / 2, 0, 2 * Math.PI);
    ctx.fill();
    ctx.beginPath();
    ctx.moveTo(x, y);
    useCanvasInput();
  });
  canvas.addEventListener("pointermove", (ev) => {
    if (!down) return;
    const [x, y] = point(ev);
    ctx.lineTo(x, y);
    ctx.stroke();
    state.drawn = true;
  });
  const up = () => { down = false; };
  canvas.addEventListener("pointerup", up);
  canvas.addEventListener("pointercancel", up);
  $("clear").addEventListener("click", () => { clearCanvas(); useCanvasInput(); });
}

function useCanvasInput() {
  state.input = { kind: "canvas" };
  document.querySelectorAll(".thumb.selected").forEach((t) => t.classList.remove("selected"));
  $("input-note").textContent = "Input: your drawing (scaled to the model's input as the training images were).";
}

function toBase64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function greyOf(c, w, h, channel) {
  const rgba = c.getContext("2d").getImageData(0, 0, w, h).data;
  const out = new Uint8Array(w * h);
  for (let i = 0; i < out.length; i++) {
    const [r, g, b, a] = [rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2], rgba[4 * i + 3]];
    // canvas: its red channel (white ink on black); files: luminance, transparency read as white paper
    out[i] = channel ? r : Math.round((0.299 * r + 0.587 * g + 0.114 * b) * a / 255 + 255 * (1 - a / 255));
  }
  return out;
}

function loadFile(file) {
  const img = new Image();
  img.onload = () => {
    const c = document.createElement("canvas");
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    c.getContext("2d").drawImage(img, 0, 0);
    state.input = { kind: "file", name: file.name, width: c.width, height: c.height,
                    pixels: toBase64(greyOf(c, c.width, c.height, false)) };
    document.querySelectorAll(".thumb.selected").forEach((t) => t.classList.remove("selected"));
    $("input-note").textContent = `Input: ${file.name} (${c.width}×${c.height} pixels).`;
    URL.revokeObjectURL(img.src);
  };
  img.onerror = () => showError({ error: "BadImage", detail: `cannot read ${file.name} as an image` });
  img.src = URL.createObjectURL(file);
}

// ---------------------------------------------------------------- drawing helpers
function paint(target, values, side, lo, hi) {
  const c = target.getContext("2d");
  const cell = target.width / side;
  for (let i = 0; i < side * side; i++) {
    const v = Math.round(255 * Math.min(1, Math.max(0, (values[i] - lo) / ((hi - lo) || 1))));
    c.fillStyle = `rgb(${v},${v},${v})`;
    c.fillRect((i % side) * cell, Math.floor(i / side) * cell, Math.ceil(cell), Math.ceil(cell));
  }
}

function currentModel() { return state.models.find((m) => m.id === $("model").value); }

function renderGallery() {
  const g = $("gallery");
  g.replaceChildren();
  const m = currentModel();
  if (!m) return;
  for (const item of m.gallery) {
    const t = document.createElement("canvas");
    t.width = t.height = m.side * 2;
    t.className = "thumb";
    t.dataset.index = item.index;
    t.dataset.label = item.label;
    t.title = `test image #${item.index}, label ${item.label}`;
    paint(t, item.pixels, m.side, 0, 1);
    t.addEventListener("click", () => {
      document.querySelectorAll(".thumb.selected").forEach((x) => x.classList.remove("selected"));
      t.classList.add("selected");
      state.input = { kind: "test", index: item.index };
      $("input-note").textContent = `Input: shipped test image #${item.index} (label ${item.label}).`;
    });
    g.appendChild(t);
  }
}

// ---------------------------------------------------------------- models, schemes, servers
function serverFor(model, scheme) {
  return state.servers.find((s) => s.model === model && s.scheme === scheme)
      || state.servers.find((s) => s.model === null);
}

function renderSchemes() {
  const sel = $("scheme");
  const keep = sel.value;
  sel.replaceChildren();
  for (const s of state.schemes) {
    const o = new Option(`${s.title} (${s.exact ? "exact" : "approximate, bounded"})`, s.id);
    o.disabled = !serverFor($("model").value, s.id);
    sel.appendChild(o);
  }
  const enabled = [...sel.options].filter((o) => !o.disabled);
  sel.value = enabled.some((o) => o.value === keep) ? keep : (enabled[0] || sel.options[0]).value;
  const m = currentModel();
  $("model-note").textContent = m ? `${m.bits}-bit weights, ${m.epochs} epochs; test accuracy ` +
    `float ${(100 * m.float_acc).toFixed(1)}%, integer ${(100 * m.int_acc).toFixed(1)}%.` : "";
  renderServerState();
}

function renderServerState() {
  const scheme = (state.schemes || []).find((x) => x.id === $("scheme").value);
  $("scheme-note").textContent = scheme ? scheme.note + "." : "";
  const s = serverFor($("model").value, $("scheme").value);
  const el = $("server-state");
  if (!s) { el.textContent = "No inference server of this run serves this pair."; return; }
  const st = s.state ? ` — ${s.state}` : "";
  el.textContent = `Inference server: ${s.url}${st}`;
}

async function getJSON(url, opts) {
  const r = await fetch(url, opts);
  let body = null;
  try { body = await r.json(); } catch (e) { body = { error: "HTTP" + r.status, detail: r.statusText }; }
  return { ok: r.ok, status: r.status, body };
}

async function loadModels() {
  const { ok, body } = await getJSON("/api/models");
  if (!ok) { showError(body); return; }
  state.models = body.models;
  state.schemes = body.schemes;
  state.servers = body.servers;
  $("privacy").textContent = body.privacy;
  const sel = $("model");
  for (const m of body.models) sel.appendChild(new Option(m.title, m.id));
  sel.addEventListener("change", () => { renderSchemes(); renderGallery(); useCanvasInput(); });
  $("scheme").addEventListener("change", renderServerState);
  renderSchemes();
  renderGallery();
}

async function pollServers() {
  try {
    const { ok, body } = await getJSON("/api/status");
    if (ok) {
      for (const s of body.servers) {
        const known = state.servers[s.index];
        if (known) Object.assign(known, { state: s.state, model: s.model, scheme: s.scheme });
      }
      if (!state.running) renderServerState();
    }
  } catch (e) {
    $("server-state").textContent = "Lost contact with the client app: is `secquant demo --web` still running?";
  }
  setTimeout(pollServers, 2000);
}

// ---------------------------------------------------------------- run
function showError(err) {
  const box = $("error");
  box.replaceChildren();
  const b = document.createElement("b");
  b.textContent = err.error || "Error";
  box.append(b, document.createTextNode(err.detail || ""));
  box.dataset.code = err.error || "";
  box.hidden = false;
}

function inputPayload() {
  if (state.input.kind !== "canvas") return state.input;
  return { kind: "canvas", width: canvas.width, height: canvas.height,
           pixels: toBase64(greyOf(canvas, canvas.width, canvas.height, true)) };
}

async function run() {
  if (state.running) return;
  $("error").hidden = true;
  const payload = { model: $("model").value, scheme: $("scheme").value, input: inputPayload() };
  let answer;
  try {
    answer = await getJSON("/api/run", { method: "POST", headers: { "Content-Type": "application/json" },
                                          body: JSON.stringify(payload) });
  } catch (e) {
    showError({ error: "ClientAppUnreachable", detail: "cannot reach the local client app: is the demo running?" });
    return;
  }
  if (!answer.ok) { showError(answer.body); return; }
  $("status").dataset.job = answer.body.job;
  setRunning(true);
  poll(answer.body.job);
}

function setRunning(on) {
  state.running = on;
  $("run").disabled = on;
  $("run").textContent = on ? "Running…" : "Run encrypted";
  for (const id of ["result-panel", "sides"]) $(id).classList.toggle("stale", on);  // the previous result
  if (on) { $("status").hidden = false; $("stages").replaceChildren(); }
}

async function poll(id) {
  let job;
  try {
    job = (await getJSON(`/api/jobs/${id}`)).body;
  } catch (e) {
    setRunning(false);
    showError({ error: "ClientAppUnreachable", detail: "lost contact with the local client app while it worked" });
    return;
  }
  if (!job || !job.state) {
    setRunning(false);
    showError(job || { error: "UnknownJob", detail: "the client app forgot this job" });
    return;
  }
  renderJob(job);
  if (job.state === "done") { setRunning(false); renderResult(job.result); return; }
  if (job.state === "failed") { setRunning(false); showError(job.error); return; }
  setTimeout(() => poll(id), 250);
}

function renderJob(job) {
  const secs = job.stage_seconds != null ? ` — ${job.stage_seconds.toFixed(1)} s` : "";
  $("stage").textContent = job.state === "done" ? `done in ${job.elapsed.toFixed(1)} s` : `${job.stage}${secs}`;
  const bar = $("progress");
  if (job.progress && job.progress.total) { bar.max = job.progress.total; bar.value = job.progress.done; }
  else if (job.state === "done" || job.state === "failed") { bar.max = 1; bar.value = 1; }
  else bar.removeAttribute("value");
  $("stages").replaceChildren(...job.stages.map((s) => {
    const li = document.createElement("li");
    li.textContent = `${s.name} (${s.seconds.toFixed(2)} s)`;
    return li;
  }));
}

// ---------------------------------------------------------------- result
function setText(id, text) { $(id).textContent = text; }

function renderResult(r) {
  $("result-panel").hidden = false;
  $("sides").hidden = false;
  const label = r.source.label != null ? ` <span class="note">label ${r.source.label}</span>` : "";
  const model = state.models.find((m) => m.id === r.model);
  $("prediction").innerHTML = `<span class="digit">${r.prediction}</span>predicted by the ` +
    `${model ? model.title : r.model} under ${r.scheme.toUpperCase()}${label}`;
  $("prediction").dataset.value = r.prediction;
  const bars = $("bars");
  bars.replaceChildren();
  r.probabilities.forEach((p, i) => {
    const d = document.createElement("span"); d.textContent = i;
    const wrap = document.createElement("div");
    const bar = document.createElement("div");
    bar.className = "bar" + (i === r.prediction ? " top" : "");
    bar.style.width = `${Math.max(0.5, 100 * p)}%`;
    bar.title = `score ${r.scores[i]}`;
    wrap.appendChild(bar);
    const v = document.createElement("span"); v.textContent = `${(100 * p).toFixed(1)}%`; v.className = "num";
    bars.append(d, wrap, v);
  });
  const a = r.client.agreement;
  const badge = $("agreement");
  badge.className = "badge " + (a.ok ? "ok" : "bad");
  badge.dataset.ok = a.ok;
  badge.dataset.kind = a.kind;
  badge.textContent = `${a.ok ? "✔" : "✘"} ${a.label} vs qm.forward_int`;
  renderClient(r);
  renderServer(r);
  renderParams(r.parameters);
  renderWire(r.wire);
}

function rows(values, side) {
  const w = Math.max(...values.map((v) => String(v).length));
  const out = [];
  for (let i = 0; i < values.length; i += side) out.push(values.slice(i, i + side).map((v) => String(v).padStart(w)).join(" "));
  return out.join("\n");
}

function renderClient(r) {
  const c = r.client;
  paint($("preview"), c.image, c.side, 0, 1);
  const v = c.input_int.values;
  paint($("heatmap"), v, c.side, c.input_int.min, c.input_int.max);
  setText("input-range", `shape ${JSON.stringify(c.input_int.shape)}, integers ${c.input_int.min} … ${c.input_int.max}`);
  setText("input-int", rows(v, c.side));
  setText("decrypted", c.decrypted.map((d, i) => `${i}: ${d}`).join("\n"));
  setText("reference", c.reference.map((d, i) => `${i}: ${d}${d === c.decrypted[i] ? "" : "   (differs)"}`).join("\n"));
  setText("client-times", `encrypt ${c.seconds.encrypt.toFixed(3)} s · decrypt ${c.seconds.decrypt.toFixed(3)} s` +
    (c.seconds.interactive ? ` · between rounds ${c.seconds.interactive.toFixed(3)} s` : "") +
    ` · whole round trip ${c.round_trip_seconds.toFixed(2)} s`);
}

function renderServer(r) {
  const s = r.server_view;
  setText("keys-bytes", `${fmt(s.keys_bytes)} bytes (${kb(s.keys_bytes)}), ` +
    (s.keys_uploaded_now ? "uploaded for this run (first use of this server)" : "uploaded once, earlier in this session"));
  const ct = $("ct-bytes");
  ct.textContent = `${fmt(s.ciphertext_bytes)} bytes (${kb(s.ciphertext_bytes)})`;
  ct.dataset.bytes = s.ciphertext_bytes;
  setText("ct-requests", s.requests > 1 ? `in ${s.requests} requests (interactive rounds)` : "in 1 request");
  const f = s.first_request || {};
  setText("ct-head", (f.head_hex || "").replace(/(..)/g, "$1 ").trim());
  setText("ct-frame", f.frame ? JSON.stringify({ type: f.frame.type, meta: f.frame.meta }) : "(not a frame)");
  setText("ct-payload", f.frame ? f.frame.payload_hex.replace(/(..)/g, "$1 ").trim() + " …" : "");
  setText("server-time", `${s.server_seconds.toFixed(3)} s evaluating on ciphertexts`);
  setText("result-bytes", `${fmt(s.result_bytes)} bytes (${kb(s.result_bytes)})`);
}

function renderParams(p) {
  const t = $("params");
  t.replaceChildren(...p.summary.map((row) => {
    const tr = document.createElement("tr");
    const v = Array.isArray(row.value) ? row.value.join(", ") : String(row.value);
    tr.innerHTML = "<th></th><td></td>";
    tr.children[0].textContent = row.name;
    tr.children[1].textContent = v;
    return tr;
  }));
  setText("params-full", JSON.stringify(p.full, null, 1));
}

function renderWire(records) {
  const body = $("wire").tBodies[0];
  body.replaceChildren(...records.map((w) => {
    const tr = document.createElement("tr");
    const path = w.path.replace(/sessions\/([^/]{6})[^/]+/, "sessions/$1…");
    const cells = [w.seq, `${w.method} ${path}`, fmt(w.request_bytes), w.status, fmt(w.response_bytes || 0),
                   w.seconds != null ? (1000 * w.seconds).toFixed(0) : ""];
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      td.textContent = c;
      if (i !== 1) td.className = "num";
      tr.appendChild(td);
    });
    tr.dataset.path = w.path;
    tr.dataset.bytes = w.request_bytes;
    return tr;
  }));
}

// ---------------------------------------------------------------- start
setupCanvas();
$("file").addEventListener("change", (ev) => { if (ev.target.files[0]) loadFile(ev.target.files[0]); });
$("run").addEventListener("click", run);
loadModels().then(pollServers);
