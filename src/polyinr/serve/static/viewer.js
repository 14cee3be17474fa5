// polyinr viewer: a deep-zoom canvas over the continuous image plane, one or two panes panned together.
// Plain script, no build step, no network access beyond this server.
//
// The view is a centre (cy, cx) in frame units (the training frame is [0, 1]²) and a zoom z: the screen shows
// TILE·2^z CSS pixels per frame unit. Tiles of level L = round(z) are TILE-pixel windows of 2^-L frame units
// (continuous models), requested for the visible area first and for level L+1 next; tiles that leave the
// screen are aborted, which cancels them on the server. Frame-only models show their native frame with
// translate / rotate controls instead. The view and the controls live in the URL's hash.
"use strict";

const TILE = 256;
const MAX_IN_FLIGHT = 6; // a browser opens at most six connections to one host
const MAX_KEPT = 600; // decoded tiles kept per pane

const state = { cy: 0.5, cx: 0.5, z: 0, split: false };
let models = [];
const panes = [];
const queue = new Map(); // url -> {pane, key, priority}
let inFlight = 0;
let drawPending = false;

const $ = (sel, root = document) => root.querySelector(sel);
const errorBox = $("#error");

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = false;
}

function clearError() {
  errorBox.hidden = true;
  errorBox.textContent = "";
}

// ---------------------------------------------------------------------------- panes

class Pane {
  constructor(index) {
    this.index = index;
    this.canvas = $(`canvas.view[data-pane="${index}"]`);
    this.form = $(`fieldset[data-pane="${index}"]`);
    this.tiles = new Map(); // key -> {img, status: loading|ok|error, ctrl}
    this.frame = null; // frame-only models: {key, img, status}
  }

  field(name) {
    return this.form.elements[name];
  }

  get model() {
    return models[Number(this.field("model").value) || 0];
  }

  get visible() {
    return this.index === 0 || state.split;
  }

  // The source of this pane's picture as query parameters (values sent as typed; the server checks them).
  // Per-model inputs (InfinityGAN's style-fusion points, placed by clicking) belong here and in the server's
  // parse_source.
  sourceParams() {
    const p = new URLSearchParams();
    p.set("model", this.field("model").value);
    const latent = this.field("latent").value;
    if (latent !== "") {
      p.set("latent", latent);
      return p;
    }
    p.set("seed", this.field("seed").value.trim());
    if (this.model && this.model.num_classes > 0) p.set("class", this.field("class").value);
    const psi = this.field("psi").value.trim();
    if (psi !== "1") p.set("psi", psi);
    const seed2 = this.field("seed2").value.trim();
    if (seed2 !== "") {
      p.set("seed2", seed2);
      p.set("t", this.field("t").value);
    }
    return p;
  }

  resetTiles() {
    for (const tile of this.tiles.values()) if (tile.ctrl) tile.ctrl.abort();
    this.tiles.clear();
    this.frame = null;
  }

  tileUrl(level, row, col) {
    const p = this.sourceParams();
    p.set("level", level);
    p.set("row", row);
    p.set("col", col);
    p.set("size", TILE);
    return `api/tile?${p}`;
  }

  // Frame units covered by one tile of `level`.
  tileSpan(level) {
    const m = this.model;
    return m.support === "canvas" ? TILE / (m.img_resolution - 1) : 2 ** -level;
  }

  level() {
    const [lo, hi] = this.model.levels;
    return Math.min(hi, Math.max(lo, Math.round(state.z)));
  }

  // Tiles of `level` covering the screen: [{row, col}], centre first.
  visibleTiles(level) {
    const { width, height } = this.canvas;
    const ppu = TILE * 2 ** state.z;
    const span = this.tileSpan(level);
    const top = state.cy - height / 2 / ppu, bottom = state.cy + height / 2 / ppu;
    const left = state.cx - width / 2 / ppu, right = state.cx + width / 2 / ppu;
    const out = [];
    for (let r = Math.floor(top / span); r < bottom / span; r++)
      for (let c = Math.floor(left / span); c < right / span; c++) out.push({ row: r, col: c });
    const mr = state.cy / span - 0.5, mc = state.cx / span - 0.5;
    out.sort((a, b) => Math.hypot(a.row - mr, a.col - mc) - Math.hypot(b.row - mr, b.col - mc));
    return out;
  }

  // Which tiles this view needs, in order of priority (visible level first, then the next level).
  wanted() {
    const m = this.model;
    if (!this.visible || !m || m.levels === null) return [];
    const level = this.level();
    const out = this.visibleTiles(level).map((t) => ({ ...t, level, priority: 0 }));
    if (level < m.levels[1])
      for (const t of this.visibleTiles(level + 1)) out.push({ ...t, level: level + 1, priority: 1 });
    return out;
  }

  draw() {
    const ctx = this.canvas.getContext("2d");
    const { width, height } = this.canvas;
    ctx.imageSmoothingEnabled = false;
    ctx.fillStyle = "#0e0e10";
    ctx.fillRect(0, 0, width, height);
    const m = this.model;
    if (!m) return;
    if (m.levels === null) return this.drawFrame(ctx);
    const level = this.level();
    const ppu = TILE * 2 ** state.z;
    const span = this.tileSpan(level);
    for (const { row, col } of this.visibleTiles(level)) {
      const x = (col * span - state.cx) * ppu + width / 2;
      const y = (row * span - state.cy) * ppu + height / 2;
      const size = span * ppu;
      const tile = this.tiles.get(this.tileUrl(level, row, col));
      if (tile && tile.status === "ok") {
        const x0 = Math.floor(x), y0 = Math.floor(y); // neighbours share their edges: no seams
        ctx.drawImage(tile.img, x0, y0, Math.floor(x + size) - x0, Math.floor(y + size) - y0);
        continue;
      }
      if (!this.drawFallback(ctx, level, row, col, x, y, size)) {
        ctx.fillStyle = "#1c1c22";
        ctx.fillRect(x + 1, y + 1, size - 2, size - 2);
      }
      ctx.fillStyle = tile && tile.status === "error" ? "#c44" : "#89a";
      ctx.font = "12px system-ui";
      ctx.fillText(tile && tile.status === "error" ? "error" : "loading…", x + 6, y + 16);
    }
    this.outlineFrame(ctx);
  }

  // The training frame [0, 1]², dashed, so the eye knows where the model learned and where it extrapolates.
  outlineFrame(ctx) {
    const { x, y, size } = this.framePlacement();
    ctx.save();
    ctx.setLineDash([4, 4]);
    ctx.strokeStyle = "rgba(255, 255, 255, 0.35)";
    ctx.strokeRect(Math.floor(x) + 0.5, Math.floor(y) + 0.5, Math.round(size), Math.round(size));
    ctx.restore();
  }

  // While a tile loads, show the part of its parent tile (one level up) that covers it, if loaded.
  drawFallback(ctx, level, row, col, x, y, size) {
    if (level - 1 < this.model.levels[0] || this.model.support === "canvas") return false;
    const parent = this.tiles.get(this.tileUrl(level - 1, Math.floor(row / 2), Math.floor(col / 2)));
    if (!parent || parent.status !== "ok") return false;
    const half = TILE / 2;
    ctx.drawImage(parent.img, (col & 1) * half, (row & 1) * half, half, half, x, y, size, size);
    return true;
  }

  framePlacement() {
    const { width, height } = this.canvas;
    const ppu = TILE * 2 ** state.z;
    return { x: (0 - state.cx) * ppu + width / 2, y: (0 - state.cy) * ppu + height / 2, size: ppu };
  }

  frameUrl() {
    const p = this.sourceParams();
    for (const name of this.model.motions ? ["dr", "dc", "angle"] : []) {
      const v = this.field(name).value.trim();
      if (v !== "0" && v !== "") p.set(name, v);
    }
    return `api/frame?${p}`;
  }

  drawFrame(ctx) {
    const url = this.frameUrl();
    if (!this.frame || this.frame.key !== url) {
      this.frame = { key: url, status: "loading", img: this.frame && this.frame.img };
      fetchImage(url, null).then(
        (img) => {
          if (this.frame.key !== url) return;
          this.frame.img = img;
          this.frame.status = "ok";
          scheduleDraw();
        },
        (err) => {
          if (this.frame.key !== url) return;
          this.frame.status = "error";
          showError(err.message);
          scheduleDraw();
        },
      );
    }
    const { x, y, size } = this.framePlacement();
    if (this.frame.img) ctx.drawImage(this.frame.img, x, y, size, size);
    if (this.frame.status !== "ok") {
      ctx.fillStyle = this.frame.status === "error" ? "#c44" : "#89a";
      ctx.fillText(this.frame.status === "error" ? "error" : "loading…", x + 6, y + 16);
    }
  }
}

// ---------------------------------------------------------------------------- fetching

async function fetchImage(url, signal) {
  const response = await fetch(url, { signal });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).error || message;
    } catch (e) {
      // not JSON: keep the status line
    }
    throw new Error(message);
  }
  return await createImageBitmap(await response.blob());
}

// Bring the queue in line with what the panes need now: abort what is no longer wanted, queue the rest.
function updateRequests() {
  const wanted = new Map();
  for (const pane of panes)
    for (const t of pane.wanted()) {
      const url = pane.tileUrl(t.level, t.row, t.col);
      if (!wanted.has(url)) wanted.set(url, { pane, priority: t.priority });
    }
  for (const pane of panes) {
    for (const [url, tile] of pane.tiles) {
      if (tile.status === "loading" && !wanted.has(url)) {
        if (tile.ctrl) tile.ctrl.abort();
        pane.tiles.delete(url);
      }
    }
    if (pane.tiles.size > MAX_KEPT) {
      for (const [url, tile] of pane.tiles) {
        if (pane.tiles.size <= MAX_KEPT) break;
        if (!wanted.has(url) && tile.status !== "loading") pane.tiles.delete(url);
      }
    }
  }
  queue.clear();
  for (const [url, w] of wanted) if (!w.pane.tiles.has(url)) queue.set(url, w);
  pump();
  updateStatus();
}

function pump() {
  const order = [...queue.entries()].sort((a, b) => a[1].priority - b[1].priority);
  for (const [url, { pane }] of order) {
    if (inFlight >= MAX_IN_FLIGHT) break;
    queue.delete(url);
    const ctrl = new AbortController();
    const tile = { status: "loading", ctrl, img: null };
    pane.tiles.set(url, tile);
    inFlight++;
    fetchImage(url, ctrl.signal)
      .then(
        (img) => {
          tile.img = img;
          tile.status = "ok";
          clearErrorIfFresh();
        },
        (err) => {
          if (err.name === "AbortError") return;
          tile.status = "error";
          showError(err.message);
        },
      )
      .finally(() => {
        tile.ctrl = null;
        inFlight--;
        pump();
        scheduleDraw();
        updateStatus();
      });
  }
}

let errorGeneration = 0;
let shownGeneration = 0;
function clearErrorIfFresh() {
  if (shownGeneration !== errorGeneration) {
    shownGeneration = errorGeneration;
    clearError();
  }
}

function updateStatus() {
  let loaded = 0, loading = 0, failed = 0;
  for (const pane of panes)
    for (const t of pane.wanted().filter((t) => t.priority === 0)) {
      const tile = pane.tiles.get(pane.tileUrl(t.level, t.row, t.col));
      if (tile && tile.status === "ok") loaded++;
      else if (tile && tile.status === "error") failed++;
      else loading++;
    }
  const level = panes[0].model && panes[0].model.levels ? `level ${panes[0].level()}` : "native frame";
  $("#status").textContent =
    `centre (${state.cy.toPrecision(8)}, ${state.cx.toPrecision(8)})  zoom ${state.z.toFixed(2)}  ${level}  ` +
    `tiles ${loaded} loaded, ${loading} loading, ${failed} failed`;
  document.body.dataset.loading = String(loading);
}

function scheduleDraw() {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => {
    drawPending = false;
    for (const pane of panes) if (pane.visible) pane.draw();
  });
}

// A change of view: redraw, re-plan the requests, write the URL.
function viewChanged() {
  scheduleDraw();
  updateRequests();
  writeHash();
}

// A change of picture (seed, class, model…): forget the tiles.
function sourceChanged(pane) {
  errorGeneration++;
  pane.resetTiles();
  showPaneControls(pane);
  viewChanged();
}

// ---------------------------------------------------------------------------- the URL

const FIELDS = ["model", "seed", "latent", "class", "psi", "seed2", "t", "dr", "dc", "angle"];

function writeHash() {
  const p = new URLSearchParams();
  p.set("y", state.cy.toPrecision(12));
  p.set("x", state.cx.toPrecision(12));
  p.set("z", state.z.toFixed(3));
  if (state.split) p.set("split", "1");
  for (const pane of panes) {
    if (!pane.visible) continue;
    const prefix = pane.index === 0 ? "" : "b.";
    for (const name of FIELDS) {
      const el = pane.field(name);
      const isDefault = el instanceof HTMLInputElement && el.value === el.defaultValue;
      if (el.value !== "" && !isDefault) p.set(prefix + name, el.value);
    }
  }
  history.replaceState(null, "", `#${p}`);
}

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  const num = (name, fallback) => {
    const v = Number(p.get(name));
    return p.has(name) && Number.isFinite(v) ? v : fallback;
  };
  state.cy = num("y", state.cy);
  state.cx = num("x", state.cx);
  state.z = num("z", state.z);
  state.split = p.get("split") === "1";
  for (const pane of panes) {
    const prefix = pane.index === 0 ? "" : "b.";
    for (const name of FIELDS) if (p.has(prefix + name)) pane.field(name).value = p.get(prefix + name);
  }
}

// ---------------------------------------------------------------------------- controls

function fillSelect(select, options, keep) {
  const previous = keep ?? select.value;
  select.replaceChildren(...options.map(([value, label]) => new Option(label, value)));
  if (options.some(([value]) => String(value) === String(previous))) select.value = previous;
}

function showPaneControls(pane) {
  const m = pane.model;
  if (!m) return;
  fillSelect(pane.field("class"), m.class_names.map((name, i) => [i, name]));
  fillSelect(pane.field("latent"), [["", "seed"], ...m.latents.map((name, i) => [i, name])]);
  pane.form.querySelector(".cond-only").classList.toggle("hidden", m.num_classes === 0);
  pane.form.querySelector(".latent-only").classList.toggle("hidden", m.latents.length === 0);
  pane.form.querySelector(".frame-only").classList.toggle("hidden", !m.motions);
  pane.canvas.title = `${m.name}: ${m.model}, ${m.grids}`;
}

function setSplit(split) {
  state.split = split;
  $("#split").checked = split;
  panes[1].form.hidden = !split;
  panes[1].canvas.hidden = !split;
  resize();
}

function resize() {
  for (const pane of panes) {
    const rect = pane.canvas.getBoundingClientRect();
    pane.canvas.width = Math.max(1, Math.round(rect.width));
    pane.canvas.height = Math.max(1, Math.round(rect.height));
  }
  viewChanged();
}

function home() {
  const canvas = panes[0].canvas;
  state.cy = 0.5;
  state.cx = 0.5;
  state.z = Math.log2((0.9 * Math.min(canvas.width, canvas.height)) / TILE);
  clampZoom();
  viewChanged();
}

function clampZoom() {
  const ranges = panes.filter((p) => p.visible && p.model && p.model.levels).map((p) => p.model.levels);
  const lo = Math.min(...ranges.map((r) => r[0]), 0) - 1;
  const hi = Math.max(...ranges.map((r) => r[1]), 0) + 2;
  state.z = Math.min(hi, Math.max(lo, state.z));
}

// Zoom by 2^dz about the screen point (px, py) of `canvas`.
function zoomAt(canvas, dz, px, py) {
  const before = TILE * 2 ** state.z;
  const fy = state.cy + (py - canvas.height / 2) / before;
  const fx = state.cx + (px - canvas.width / 2) / before;
  state.z += dz;
  clampZoom();
  const after = TILE * 2 ** state.z;
  state.cy = fy - (py - canvas.height / 2) / after;
  state.cx = fx - (px - canvas.width / 2) / after;
  viewChanged();
}

function panBy(dx, dy) {
  const ppu = TILE * 2 ** state.z;
  state.cx -= dx / ppu;
  state.cy -= dy / ppu;
  viewChanged();
}

function attachInput(canvas) {
  const pointers = new Map();
  let pinch = null;
  canvas.addEventListener("pointerdown", (e) => {
    canvas.setPointerCapture(e.pointerId);
    pointers.set(e.pointerId, { x: e.offsetX, y: e.offsetY });
    canvas.classList.add("dragging");
    canvas.focus();
  });
  canvas.addEventListener("pointermove", (e) => {
    const last = pointers.get(e.pointerId);
    if (!last) return;
    if (pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      const dist = Math.hypot(a.x - b.x, a.y - b.y);
      pointers.set(e.pointerId, { x: e.offsetX, y: e.offsetY });
      const [c, d] = [...pointers.values()];
      const now = Math.hypot(c.x - d.x, c.y - d.y);
      if (pinch !== null && dist > 0 && now > 0) zoomAt(canvas, Math.log2(now / dist), (c.x + d.x) / 2, (c.y + d.y) / 2);
      pinch = now;
      return;
    }
    pointers.set(e.pointerId, { x: e.offsetX, y: e.offsetY });
    panBy(e.offsetX - last.x, e.offsetY - last.y);
  });
  const end = (e) => {
    pointers.delete(e.pointerId);
    pinch = null;
    if (pointers.size === 0) canvas.classList.remove("dragging");
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  canvas.addEventListener(
    "wheel",
    (e) => {
      e.preventDefault();
      zoomAt(canvas, -e.deltaY / 500, e.offsetX, e.offsetY);
    },
    { passive: false },
  );
  canvas.addEventListener("dblclick", (e) => zoomAt(canvas, e.shiftKey ? -1 : 1, e.offsetX, e.offsetY));
}

function onKey(e) {
  if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
  const step = 64;
  const canvas = panes[0].canvas;
  const actions = {
    ArrowLeft: () => panBy(step, 0),
    ArrowRight: () => panBy(-step, 0),
    ArrowUp: () => panBy(0, step),
    ArrowDown: () => panBy(0, -step),
    "+": () => zoomAt(canvas, 0.5, canvas.width / 2, canvas.height / 2),
    "=": () => zoomAt(canvas, 0.5, canvas.width / 2, canvas.height / 2),
    "-": () => zoomAt(canvas, -0.5, canvas.width / 2, canvas.height / 2),
    0: home,
  };
  if (actions[e.key]) {
    e.preventDefault();
    actions[e.key]();
  }
}

// ---------------------------------------------------------------------------- export

async function exportView() {
  const pane = panes[0];
  const size = $("#export-size").value.trim().toLowerCase();
  const { width, height } = pane.canvas;
  const ppu = TILE * 2 ** state.z;
  const window_ = [
    state.cy - height / 2 / ppu,
    state.cx - width / 2 / ppu,
    state.cy + height / 2 / ppu,
    state.cx + width / 2 / ppu,
  ];
  const job = Math.random().toString(36).slice(2, 12);
  const p = pane.sourceParams();
  p.set("window", window_.map((v) => v.toPrecision(12)).join(","));
  p.set("size", size);
  p.set("job", job);
  const url = `api/export?${p}`;
  // Check first: a bad value answers 4xx at once, before anything renders.
  const check = await fetch(`${url}&check=1`);
  if (!check.ok) {
    showError((await check.json().catch(() => ({}))).error || `${check.status}`);
    return;
  }
  const link = document.createElement("a");
  link.href = url;
  link.download = "";
  document.body.appendChild(link);
  link.click();
  link.remove();
  const progress = $("#export-progress");
  const poll = setInterval(async () => {
    const r = await fetch(`api/progress?job=${job}`);
    if (!r.ok) return;
    const { done, total } = await r.json();
    progress.textContent = `${done}/${total} tiles`;
    if (done >= total) {
      clearInterval(poll);
      progress.textContent = `done (${total} tiles)`;
    }
  }, 500);
}

// ---------------------------------------------------------------------------- start

async function start() {
  panes.push(new Pane(0), new Pane(1));
  const response = await fetch("api/models");
  if (!response.ok) {
    showError((await response.json().catch(() => ({}))).error || `${response.status}`);
    return;
  }
  models = (await response.json()).models;
  for (const pane of panes) {
    fillSelect(pane.field("model"), models.map((m) => [m.id, `${m.name} (${m.model})`]), 0);
    if (pane.index === 1 && models.length > 1) pane.field("model").value = "1";
  }
  const hadView = location.hash.length > 1;
  readHash();
  for (const pane of panes) {
    showPaneControls(pane);
    readHash(); // the class / latent options exist now
    attachInput(pane.canvas);
    pane.form.addEventListener("change", () => sourceChanged(pane));
    pane.form.addEventListener("input", (e) => {
      if (e.target.name === "t") sourceChanged(pane);
    });
  }
  $("#split").addEventListener("change", (e) => setSplit(e.target.checked));
  $("#home").addEventListener("click", home);
  $("#export").addEventListener("click", exportView);
  document.addEventListener("keydown", onKey);
  window.addEventListener("resize", resize);
  window.addEventListener("hashchange", () => {
    readHash();
    for (const pane of panes) pane.resetTiles();
    setSplit(state.split);
  });
  setSplit(state.split);
  if (!hadView) home();
}

window.polyinrViewer = { state, panes, zoomAt, panBy, home };
start();
