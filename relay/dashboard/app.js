// Operations dashboard: sign in; the cameras you may watch on a map and in a list, with search and filters;
// a layout of 1, 4, 9 or 16 tiles, each playing one camera over WHEP (one RTCPeerConnection per tile). The
// purpose (and mode) is chosen once for the layout, as far as policy allows; the layout survives a reload
// (localStorage, per user). No framework, no build step. The token lives in sessionStorage only.
"use strict";

const state = {
  token: sessionStorage.getItem("cctv_token"), user: null, cameras: [], catalog: { purposes: {}, roles: {} },
  config: null, map: null, tiles: new Map(), // slot index -> tile
  layout: { size: 4, purpose: "", mode: "anonymized", caseRef: "", slots: [] }, selected: 0,
};
const SIZES = [1, 4, 9, 16];
const $ = (sel, root = document) => root.querySelector(sel);
const t = (key, params) => I18N.t(key, params);

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401 && path !== "/api/auth/login") signOut(t("dash.expired"));
  return response;
}

async function reason(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    return JSON.stringify(body.detail ?? body);
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

// A server's reason as the reader's language has it, with the server's own words as the detail.
function explain(serverText) {
  const { message, detail } = I18N.reason(serverText);
  return message ? t("common.reason_with_detail", { message, detail }) : detail;
}

const purposeName = (id) => I18N.label(state.catalog.purposes[id], id.replaceAll("_", " "));
const roleName = (name) => I18N.label(state.catalog.roles[name], name.replaceAll("_", " "));

// --- sign in -------------------------------------------------------------------------------------
async function signIn(event) {
  event.preventDefault();
  const error = $("#sign-in-error");
  error.textContent = "";
  const body = JSON.stringify({ username: $("#username").value, password: $("#password").value });
  const response = await api("/api/auth/login", { method: "POST", headers: { "Content-Type": "application/json" }, body });
  if (!response.ok) { error.textContent = explain(await reason(response)); return; }
  const data = await response.json();
  state.token = data.access_token;
  sessionStorage.setItem("cctv_token", state.token);
  $("#password").value = "";
  await start();
}

function signOut(message) {
  for (const slot of [...state.tiles.keys()]) closeTile(slot, { keepPlace: true });
  state.token = null;
  sessionStorage.removeItem("cctv_token");
  state.user = null;
  state.cameras = [];
  state.byId = null;
  $("#cameras").replaceChildren();
  $("#grid").replaceChildren();
  $("#raw-requests tbody").replaceChildren();
  $("#raw-panel").hidden = true;
  $("#whoami").hidden = true;
  $("#to-console").hidden = true;
  $("#workspace").hidden = true;
  $("#cameras-panel").hidden = true;
  $("#layout-panel").hidden = true;
  $("#sign-in-panel").hidden = false;
  $("#sign-in-error").textContent = typeof message === "string" ? message : "";
}

async function start() {
  const me = await api("/api/auth/me");
  if (!me.ok) { signOut(); return; }
  state.user = await me.json();
  const catalog = await api("/api/live/catalog");
  if (catalog.ok) state.catalog = await catalog.json();
  paintWhoami();
  $("#whoami").hidden = false;
  $("#to-console").hidden = !hasConsole();
  $("#sign-in-panel").hidden = true;
  $("#workspace").hidden = false;
  $("#cameras-panel").hidden = false;
  const viewer = can("view");
  for (const sel of [".filters", "#map", "#layout-panel"]) $(sel).hidden = !viewer;
  $("#raw-panel").hidden = !(can("request_raw") || can("approve_raw"));
  loadLayout();
  if (viewer) ensureMap();
  if (state.map) state.map.map.invalidateSize();
  await refresh();
  if (viewer) {
    buildGrid();
    fillLayoutControls();
    restoreTiles();
  }
}

function paintWhoami() {
  if (!state.user) return;
  $("#user-name").textContent = state.user.display_name || state.user.username;
  $("#user-roles").textContent = `(${state.user.roles.map(roleName).join(t("common.list_separator"))})`;
}

// Administrators, approvers and auditors have their work on the consoles page (/console/).
function hasConsole() { return ["admin", "audit", "approve_raw"].some(can); }

function can(permission) {
  return Boolean(state.user && state.user.permissions && state.user.permissions.includes(permission));
}

async function refresh() {
  await refreshCameras();
  if (!$("#raw-panel").hidden) await refreshRawRequests();
}

// --- the layout: size, purpose, mode, which camera in which tile (saved per user) ----------------
function layoutKey() { return `cctv_layout:${state.user ? state.user.username : ""}`; }

function loadLayout() {
  let saved = null;
  try { saved = JSON.parse(localStorage.getItem(layoutKey()) || "null"); } catch { saved = null; }
  const size = saved && SIZES.includes(saved.size) ? saved.size : 4;
  state.layout = {
    size, purpose: (saved && saved.purpose) || "", mode: saved && saved.mode === "raw" ? "raw" : "anonymized",
    caseRef: (saved && saved.caseRef) || "",
    slots: Array.from({ length: 16 }, (_, i) => (saved && Array.isArray(saved.slots) && saved.slots[i]) || null),
  };
  state.selected = 0;
}

function saveLayout() {
  if (!state.user) return;
  localStorage.setItem(layoutKey(), JSON.stringify(state.layout));
}

// Purposes open to the user on at least one camera, in this mode; the layout's purpose is one of them.
function openPurposes(mode) {
  const ids = new Set();
  for (const cam of state.cameras) for (const p of (mode === "raw" ? cam.raw_purposes : cam.purposes) || []) ids.add(p);
  const order = Object.keys(state.catalog.purposes);
  return [...ids].sort((a, b) => (order.indexOf(a) - order.indexOf(b)) || a.localeCompare(b));
}

function fillLayoutControls() {
  const anyRaw = state.cameras.some((c) => (c.raw_purposes || []).length > 0);
  const modeSelect = $("#layout-mode");
  modeSelect.querySelector('option[value="raw"]').disabled = !anyRaw;
  if (!anyRaw && state.layout.mode === "raw") state.layout.mode = "anonymized";
  modeSelect.value = state.layout.mode;
  modeSelect.disabled = !anyRaw;
  const ids = openPurposes(state.layout.mode);
  if (!ids.includes(state.layout.purpose)) state.layout.purpose = ids[0] || "";
  const select = $("#layout-purpose");
  select.replaceChildren(...ids.map((p) => new Option(purposeName(p), p)));
  select.value = state.layout.purpose;
  select.disabled = ids.length === 0;
  const raw = state.layout.mode === "raw";
  $("#layout-case-ref-label").hidden = !raw;
  $("#layout-case-ref").value = state.layout.caseRef;
  for (const b of document.querySelectorAll(".layout-sizes .size")) {
    b.setAttribute("aria-pressed", String(Number(b.dataset.size) === state.layout.size));
  }
  paintRows();
  saveLayout();
}

// A new purpose, mode or case for the layout: every playing tile opens again under it (a new view,
// asked of the policy again and logged), since a view's purpose is fixed when it starts.
function changeLayout(change) {
  Object.assign(state.layout, change);
  fillLayoutControls();
  for (const [slot, tile] of [...state.tiles]) {
    if (tile.purpose !== state.layout.purpose || tile.mode !== state.layout.mode || tile.caseRef !== state.layout.caseRef) {
      const cam = tile.cam;
      closeTile(slot, { keepPlace: true });
      openTile(slot, cam);
    }
  }
}

function setSize(size) {
  state.layout.size = size;
  for (const [slot] of [...state.tiles]) if (slot >= size) closeTile(slot, { keepPlace: true });
  buildGrid();
  fillLayoutControls();
  restoreTiles();
}

function buildGrid() {
  const grid = $("#grid");
  const size = state.layout.size;
  grid.dataset.size = String(size);
  const slots = [];
  for (let i = 0; i < size; i += 1) {
    const existing = grid.querySelector(`.slot[data-slot="${i}"]`);
    const slot = existing || $("#slot").content.firstElementChild.cloneNode(true);
    if (!existing) {
      slot.dataset.slot = String(i);
      wireSlot(slot, i);
      I18N.apply(slot);
    }
    slots.push(slot);
  }
  grid.replaceChildren(...slots);
  if (state.selected >= size) state.selected = 0;
  paintSlots();
}

function paintSlots() {
  for (const slot of document.querySelectorAll("#grid .slot")) {
    const i = Number(slot.dataset.slot);
    slot.classList.toggle("selected", i === state.selected);
    slot.setAttribute("aria-label", t("layout.slot", { n: i + 1 }));
  }
}

function wireSlot(slot, i) {
  slot.addEventListener("click", (event) => {
    if (event.target.closest("button")) return;
    state.selected = i;
    paintSlots();
  });
  slot.addEventListener("dragover", (event) => { event.preventDefault(); slot.classList.add("drop"); });
  slot.addEventListener("dragleave", () => slot.classList.remove("drop"));
  slot.addEventListener("drop", (event) => {
    event.preventDefault();
    slot.classList.remove("drop");
    const id = event.dataTransfer.getData("text/x-camera") || event.dataTransfer.getData("text/plain");
    const from = event.dataTransfer.getData("text/x-slot");
    const cam = state.cameras.find((c) => c.id === id);
    if (from !== "" && Number(from) !== i) moveTile(Number(from), i);
    else if (cam) place(cam, i);
  });
  slot.addEventListener("keydown", (event) => slotKey(event, i));
}

function slotKey(event, i) {
  if (event.target !== event.currentTarget) return; // keys inside the tile's buttons are theirs
  const size = state.layout.size;
  const side = Math.sqrt(size);
  const moves = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -side, ArrowDown: side };
  if (event.key in moves) {
    const next = i + moves[event.key];
    if (next >= 0 && next < size) {
      event.preventDefault();
      state.selected = next;
      paintSlots();
      $(`#grid .slot[data-slot="${next}"]`).focus();
    }
  } else if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    state.selected = i;
    paintSlots();
    $("#search").focus(); // choose a camera for this tile
  } else if (event.key === "Delete" || event.key === "Backspace") {
    event.preventDefault();
    closeTile(i);
  } else if (event.key === "f" || event.key === "F") {
    const tile = state.tiles.get(i);
    if (tile) { event.preventDefault(); fullscreen(tile); }
  }
}

// Put a camera in a tile: the given one, else the selected one if empty, else the first empty one.
function place(cam, target = null) {
  const size = state.layout.size;
  const already = state.layout.slots.slice(0, size).indexOf(cam.id);
  if (already >= 0 && already !== target) {
    state.selected = already;
    paintSlots();
    $(`#grid .slot[data-slot="${already}"]`).focus();
    return;
  }
  let slot = target;
  if (slot === null) {
    const empty = [...Array(size).keys()].filter((i) => !state.layout.slots[i]);
    slot = !state.layout.slots[state.selected] ? state.selected : (empty[0] ?? state.selected);
  }
  if (state.tiles.has(slot)) closeTile(slot, { keepPlace: true });
  state.layout.slots[slot] = cam.id;
  saveLayout();
  openTile(slot, cam);
  const next = [...Array(size).keys()].find((i) => !state.layout.slots[i]);
  state.selected = next ?? slot;
  paintSlots();
}

function moveTile(from, to) {
  const a = state.layout.slots[from];
  const b = state.layout.slots[to];
  for (const s of [from, to]) if (state.tiles.has(s)) closeTile(s, { keepPlace: true });
  state.layout.slots[to] = a;
  state.layout.slots[from] = b;
  saveLayout();
  restoreTiles();
}

function restoreTiles() {
  for (let i = 0; i < state.layout.size; i += 1) {
    const id = state.layout.slots[i];
    if (!id || state.tiles.has(i)) continue;
    const cam = state.cameras.find((c) => c.id === id);
    if (cam) openTile(i, cam);
  }
}

// --- map, filters and the camera list ------------------------------------------------------------
function cameraById(id) {
  return state.byId ? state.byId.get(id) : state.cameras.find((c) => c.id === id);
}

function healthOf(h) {
  if (!h || h.state === "idle") return "idle";
  return h.connected ? "up" : "down";
}

function healthText(h) {
  const kind = healthOf(h);
  if (kind === "idle") return ["idle", t("health.idle_long")];
  if (kind === "up") return ["up", t("health.up_fps", { fps: Number(h.fps_out ?? h.fps_in ?? 0).toFixed(0) })];
  return ["down", h.last_error ? t("health.down_because", { error: h.last_error }) : t("health.down")];
}

function paintHealth(el, h) {
  const [cls, text] = healthText(h);
  el.className = `health ${cls}`;
  el.textContent = text;
}

const HEALTH_COLOR = { up: "#2ea043", down: "#e5534b", idle: "#8b98a5" };

function ensureMap() {
  if (state.map || !state.config) return;
  state.map = CameraMap.create($("#map"), state.config.map, {
    onSelect: (cam) => place(cam),
    tooltip: (cam) => `${cam.name}${cam.district ? ` · ${cam.district}` : ""}`,
    color: (cam) => HEALTH_COLOR[healthOf(cam.health)],
  });
}

function filters() {
  return {
    text: $("#search").value.trim().toLowerCase(), district: $("#filter-district").value,
    tag: $("#filter-tag").value, health: $("#filter-health").value,
  };
}

function matches(cam, f) {
  if (f.district && cam.district !== f.district) return false;
  if (f.tag && !(cam.tags || []).includes(f.tag)) return false;
  if (f.health && healthOf(cam.health) !== f.health) return false;
  if (f.text) {
    const hay = [cam.name, cam.id, cam.address, cam.district, ...(cam.tags || [])].join(" ").toLowerCase();
    if (!hay.includes(f.text)) return false;
  }
  return true;
}

function fillChoices(select, values, anyKey) {
  const signature = `${I18N.lang}|${values.join("\u0000")}`;
  if (select.dataset.signature === signature) return; // unchanged: leave an open list alone
  select.dataset.signature = signature;
  const current = select.value;
  select.replaceChildren(new Option(t(anyKey), ""), ...values.map((v) => new Option(v, v)));
  select.value = values.includes(current) ? current : "";
}

function applyFilters() {
  const f = filters();
  const shown = new Set();
  for (const li of document.querySelectorAll("#cameras li.camera")) {
    const cam = cameraById(li.dataset.camera);
    const visible = Boolean(cam) && matches(cam, f);
    li.hidden = !visible;
    if (visible) shown.add(cam.id);
  }
  if (state.map) state.map.setVisible(f.text || f.district || f.tag || f.health ? shown : null);
  $("#cameras-count").textContent = t("filter.count", { shown: shown.size, total: state.cameras.length });
}

async function refreshCameras() {
  if (!can("view")) {
    $("#cameras").replaceChildren();
    $("#cameras-empty").hidden = false;
    $("#cameras-empty").textContent = t(hasConsole() ? "dash.console_note" : "dash.no_live_video");
    $("#cameras-count").textContent = "";
    return;
  }
  const response = await api("/api/live/cameras");
  const list = $("#cameras");
  if (!response.ok) {
    list.replaceChildren();
    $("#cameras-empty").hidden = false;
    $("#cameras-empty").textContent = explain(await reason(response));
    return;
  }
  const before = JSON.stringify(state.cameras.map((c) => [c.id, c.latitude, c.longitude]));
  state.cameras = (await response.json()).cameras;
  state.byId = new Map(state.cameras.map((c) => [c.id, c]));
  $("#cameras-empty").hidden = state.cameras.length > 0;
  $("#cameras-empty").textContent = t("dash.no_cameras");
  const existing = new Map([...list.children].map((li) => [li.dataset.camera, li]));
  const rows = state.cameras.map((cam) => cameraRow(cam, existing.get(cam.id)));
  // Same cameras in the same order (the usual refresh): the rows were updated in place.
  if (rows.length !== list.children.length || rows.some((li, i) => list.children[i] !== li)) list.replaceChildren(...rows);
  fillChoices($("#filter-district"), [...new Set(state.cameras.map((c) => c.district).filter(Boolean))].sort(), "filter.any");
  fillChoices($("#filter-tag"), [...new Set(state.cameras.flatMap((c) => c.tags || []))].sort(), "filter.any");
  if (state.map) {
    if (JSON.stringify(state.cameras.map((c) => [c.id, c.latitude, c.longitude])) !== before) {
      const unplaced = state.map.setCameras(state.cameras);
      $("#map-note").hidden = unplaced === 0;
      $("#map-note").textContent = t("map.unplaced", { n: unplaced });
    } else {
      state.map.recolor((id) => HEALTH_COLOR[healthOf((cameraById(id) || {}).health)]);
    }
  }
  applyFilters();
  paintRows();
  for (const tile of state.tiles.values()) {
    const cam = state.cameras.find((c) => c.id === tile.cam.id);
    if (cam) paintHealth($(".health", tile.el), cam.health);
  }
}

function cameraRow(cam, existing) {
  const li = existing || $("#camera-row").content.firstElementChild.cloneNode(true);
  li.dataset.camera = cam.id;
  $(".camera-name", li).textContent = cam.name;
  $(".camera-where", li).textContent = [cam.district, cam.address].filter(Boolean).join(" · ");
  $(".camera-tags", li).replaceChildren(...(cam.tags || []).map((tag) => {
    const s = document.createElement("span");
    s.className = "tag";
    s.textContent = tag;
    return s;
  }));
  paintHealth($(".health", li), cam.health);
  if (!existing) {
    I18N.apply(li);
    li.addEventListener("dragstart", (event) => {
      event.dataTransfer.setData("text/x-camera", cam.id);
      event.dataTransfer.setData("text/plain", cam.id);
    });
    $(".ask", li).addEventListener("click", () => {
      const current = state.cameras.find((c) => c.id === li.dataset.camera) || cam;
      askApproval(li, current, state.layout.purpose, $("#layout-case-ref").value.trim());
    });
    $(".play", li).addEventListener("click", () => {
      const current = state.cameras.find((c) => c.id === li.dataset.camera) || cam;
      place(current);
    });
  }
  return li;
}

// Whether each camera may be watched for the layout's purpose and mode; the reason shows on the button.
function paintRows() {
  const raw = state.layout.mode === "raw";
  for (const li of document.querySelectorAll("#cameras li.camera")) {
    const cam = cameraById(li.dataset.camera);
    if (!cam) continue;
    const open = (raw ? cam.raw_purposes : cam.purposes) || [];
    const allowed = Boolean(state.layout.purpose) && open.includes(state.layout.purpose);
    const play = $(".play", li);
    play.disabled = !allowed;
    play.title = allowed ? "" : t("camera.not_for_purpose", { purpose: purposeName(state.layout.purpose || "-") });
    li.classList.toggle("not-allowed", !allowed);
    $(".ask", li).hidden = !(raw && can("request_raw") && allowed);
  }
}

// --- raw view: dual control --------------------------------------------------------------------------
function rowStatus(li, text, isError) {
  const el = $(".row-status", li);
  el.hidden = !text;
  el.textContent = text || "";
  el.className = `row-status ${isError ? "error" : "muted"}`;
}

async function askApproval(li, cam, purpose, caseRef) {
  if (!caseRef) { rowStatus(li, t("raw.needs_case_ref"), true); return; }
  const justification = window.prompt(t("raw.justification_prompt")) || "";
  const response = await api("/api/raw-requests", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ camera_id: cam.id, purpose, case_ref: caseRef, justification }),
  });
  if (!response.ok) { rowStatus(li, t("raw.request_refused", { reason: explain(await reason(response)) }), true); return; }
  rowStatus(li, t("raw.requested"));
  await refreshRawRequests();
}

function when(iso) {
  return iso ? new Date(iso).toLocaleTimeString(I18N.lang, { hour: "2-digit", minute: "2-digit" }) : "";
}

async function refreshRawRequests() {
  const response = await api("/api/raw-requests");
  if (!response.ok) return;
  const rows = (await response.json()).slice(-20).reverse();
  state.rawRequests = rows;
  paintRawRequests();
}

function paintRawRequests() {
  const rows = state.rawRequests || [];
  $("#raw-empty").hidden = rows.length > 0;
  $("#raw-requests").hidden = rows.length === 0;
  $("#raw-requests tbody").replaceChildren(...rows.map(rawRow));
}

function rawRow(req) {
  const tr = document.createElement("tr");
  tr.dataset.request = req.id;
  const cam = state.cameras.find((c) => c.id === req.camera_id);
  for (const text of [cam ? cam.name : req.camera_id, purposeName(req.purpose), req.case_ref, req.requester,
                      t(`raw.status_${req.status}`), when(req.expires_at)]) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  const actions = document.createElement("td");
  const act = (labelKey, path, body) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = t(labelKey);
    b.addEventListener("click", async () => {
      const r = await api(`/api/raw-requests/${encodeURIComponent(req.id)}/${path}`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body()) });
      if (!r.ok) window.alert(explain(await reason(r)));
      await refreshRawRequests();
    });
    actions.append(b);
  };
  const mine = state.user && req.requester === state.user.username;
  if (req.status === "pending" && can("approve_raw") && !mine) {
    act("raw.approve_30", "approve", () => ({ minutes: 30 }));
    act("raw.deny", "deny", () => ({ reason: window.prompt(t("raw.deny_prompt")) || "denied" }));
  }
  if (["pending", "approved"].includes(req.status) && (mine || can("approve_raw") || can("admin"))) {
    act("raw.revoke", "revoke", () => ({ reason: window.prompt(t("raw.revoke_prompt")) || "revoked" }));
  }
  tr.append(actions);
  return tr;
}

// --- tiles (WHEP) --------------------------------------------------------------------------------
// The RTCPeerConnection's ICE transport policy: "relay" (TURN only) when the relay's settings say so
// (`ice_transport_policy`) or the page's address asks for it (`?ice=relay`); the address cannot relax it.
function icePolicy() {
  const asked = new URLSearchParams(window.location.search).get("ice");
  return asked === "relay" || (state.config && state.config.ice && state.config.ice.transport_policy === "relay")
    ? "relay" : "all";
}

// The STUN/TURN servers of a WHEP answer: `Link: <turn:host:3478?transport=udp>; rel="ice-server";
// username="..."; credential="..."; credential-type="password", <stun:...>; rel="ice-server"` (RFC 8288:
// links separated by commas, parameters by semicolons, quoted strings with backslash escapes). A TURN URL
// without a credential is left out (the browser would refuse the whole configuration).
function iceServersFromLinks(header) {
  const servers = [];
  const link = /<([^>]*)>((?:\s*;\s*[^\s=;,]+(?:\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^\s",;]*))?)*)/g;
  const param = /;\s*([^\s=;,]+)(?:\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s",;]*)))?/g;
  for (const m of (header || "").matchAll(link)) {
    const params = {};
    for (const p of m[2].matchAll(param)) {
      params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : (p[3] || "");
    }
    if (!(params.rel || "").split(/\s+/).includes("ice-server")) continue;
    const server = { urls: m[1] };
    if (params.username !== undefined && params.credential !== undefined) {
      server.username = params.username;
      server.credential = params.credential;
    } else if (/^turns?:/i.test(m[1])) continue;
    servers.push(server);
  }
  return servers;
}

// A tile's message: a catalogue key with its parameters, and the server's reason to explain, kept so a
// language switch can write it again.
function tileMessage(tile, key, kind, params = {}, serverReason = null) {
  tile.msg = key ? { key, params, serverReason } : null;
  if (kind) tile.el.dataset.state = kind;
  const msg = $(".message", tile.el);
  msg.className = `overlay message ${kind || (tile.msg ? msg.className.split(" ")[2] || "" : "")}`.trim();
  paintTileMessage(tile);
}

function paintTileMessage(tile) {
  const msg = $(".message", tile.el);
  msg.hidden = !tile.msg;
  if (!tile.msg) { msg.textContent = ""; return; }
  const params = Object.assign({}, tile.msg.params);
  if (tile.msg.serverReason !== null) params.reason = explain(tile.msg.serverReason);
  msg.textContent = t(tile.msg.key, params);
}

function paintTile(tile) {
  const el = tile.el;
  $(".tile-name", el).textContent = tile.cam.name;
  $(".tile-purpose", el).textContent = purposeName(tile.purpose);
  $(".tile-purpose", el).dataset.purpose = tile.purpose;
  $(".tile-mode", el).textContent = t(`mode.${tile.shownMode || tile.mode}`);
  $(".tile-mode", el).className = `badge tile-mode ${tile.shownMode || tile.mode}`;
  paintTileMessage(tile);
  paintExpiry(tile);
}

function paintExpiry(tile) {
  const el = $(".tile-expires", tile.el);
  if (!tile.expires || (tile.shownMode || tile.mode) !== "raw") { el.hidden = true; return; }
  const left = Math.max(0, Math.round((tile.expires - Date.now()) / 1000));
  const mm = String(Math.floor(left / 60));
  const ss = String(left % 60).padStart(2, "0");
  el.hidden = false;
  el.textContent = t("tile.raw_left", { time: `${mm}:${ss}` });
  el.classList.toggle("soon", left < 120);
}

function paintFps(tile) {
  const video = $("video", tile.el);
  if (!video.getVideoPlaybackQuality || tile.el.dataset.state !== "playing") { $(".tile-fps", tile.el).textContent = ""; return; }
  const frames = video.getVideoPlaybackQuality().totalVideoFrames;
  const now = performance.now();
  if (tile.fpsMark) {
    const fps = ((frames - tile.fpsMark.frames) * 1000) / Math.max(1, now - tile.fpsMark.at);
    tile.fps = fps;
    $(".tile-fps", tile.el).textContent = t("tile.fps", { fps: fps.toFixed(0) });
  }
  tile.fpsMark = { frames, at: now };
}

function fullscreen(tile) {
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  else tile.el.requestFullscreen().catch(() => {});
}

// `replacing`: the tile of an earlier session of the same view, whose place the new tile takes.
async function openTile(slot, cam, replacing = null) {
  const slotEl = $(`#grid .slot[data-slot="${slot}"]`);
  if (!slotEl) return;
  const el = $("#tile").content.firstElementChild.cloneNode(true);
  I18N.apply(el);
  const { purpose, mode, caseRef } = state.layout;
  const tile = { slot, el, pc: null, location: null, cam, purpose, mode, caseRef, msg: null,
                 reopened: replacing ? replacing.reopened + 1 : 0 };
  state.tiles.set(slot, tile);
  el.dataset.camera = cam.id;
  el.dataset.state = "connecting";
  el.draggable = true;
  el.addEventListener("dragstart", (event) => {
    event.dataTransfer.setData("text/x-slot", String(slot));
    event.dataTransfer.setData("text/plain", cam.id);
  });
  paintTile(tile);
  paintHealth($(".health", el), cam.health);
  $(".close", el).addEventListener("click", () => closeTile(slot));
  $(".fullscreen", el).addEventListener("click", () => fullscreen(tile));
  $(".slot-empty", slotEl).hidden = true;
  const old = slotEl.querySelector(".tile");
  if (old) old.replaceWith(el); else slotEl.append(el);
  tileMessage(tile, replacing ? "tile.reconnecting" : "tile.connecting", "");
  tile.clock = setInterval(() => { paintExpiry(tile); paintFps(tile); }, 1000);
  if (!purpose) { tileMessage(tile, "tile.no_purpose", "denied"); return; }

  const iceTransportPolicy = icePolicy();
  const pc = new RTCPeerConnection({ iceTransportPolicy });
  tile.pc = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  const video = $("video", el);
  video.setAttribute("aria-label", cam.name);
  pc.addEventListener("track", (event) => {
    video.srcObject = event.streams[0] || new MediaStream([event.track]);
    video.play().catch(() => {});
  });
  video.addEventListener("playing", () => {
    tileMessage(tile, null, "");
    el.dataset.state = "playing";
    tile.reopened = 0; // playing again: a later failover gets its own rejoins
  });
  pc.addEventListener("connectionstatechange", () => {
    if (["failed", "disconnected"].includes(pc.connectionState) && state.tiles.get(slot) === tile
        && !["denied", "ended"].includes(el.dataset.state)) {
      tileMessage(tile, "tile.dropped", "ended");
      watchSession(tile); // at once: its relay may have gone (rejoin elsewhere) or ended it (say why)
    }
  });
  try {
    // The offer goes out before this side gathers: the answer names the STUN/TURN servers to gather with
    // (WHEP Link headers; TURN credentials are this session's own and short-lived), which must be set
    // first. No trickle ICE: the relay learns this side's addresses from its connectivity checks.
    const offer = await pc.createOffer();
    const query = new URLSearchParams({ purpose, mode });
    if (caseRef && mode === "raw") query.set("case_ref", caseRef);
    // Any relay answers: one that does not pull this camera answers 307 to the one that does, which fetch
    // follows with the offer; 503 (no relay can take it now) says when to ask again.
    const response = await api(`/whep/${encodeURIComponent(cam.id)}?${query}`, {
      method: "POST", headers: { "Content-Type": "application/sdp" }, body: offer.sdp,
    });
    if (state.tiles.get(slot) !== tile) { pc.close(); return; } // closed while asking
    // 502/504: the relay it was sent to is gone (killed, its lease not yet run out, so another relay still
    // names it as the owner): ask again shortly, like a 503, until the lease expires and another claims.
    if ([502, 503, 504].includes(response.status) && tile.reopened < REJOINS) {
      const wait = Math.min(10, Number(response.headers.get("Retry-After")) || 1);
      pc.close();
      tile.retry = setTimeout(() => rejoin(tile), wait * 1000);
      return;
    }
    if (response.status !== 201) {
      const why = await reason(response);
      tileMessage(tile, response.status === 403 ? "tile.denied" : "tile.cannot_play", "denied", {}, why);
      pc.close();
      return;
    }
    tile.location = response.headers.get("Location");
    tile.watch = setInterval(() => watchSession(tile), 2000);
    tile.shownMode = response.headers.get("X-View-Mode") || mode;
    const expires = response.headers.get("X-View-Expires");
    tile.expires = expires ? Date.parse(expires) : null;
    paintTile(tile);
    const answer = await response.text();
    try {
      pc.setConfiguration({ iceServers: iceServersFromLinks(response.headers.get("Link")), iceTransportPolicy });
    } catch (err) {
      console.warn("ICE servers of the answer refused:", err); // gathers with none (host candidates only)
    }
    await pc.setLocalDescription(offer);
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
  } catch (err) {
    tileMessage(tile, "tile.cannot_play", "denied", {}, String(err.message || err));
    pc.close();
  }
}

// Open the same view again in the tile's place (a new WHEP request: asked of the policy again, logged
// as a new view), after its relay died, drained or was full. A bounded number of times in a row.
const REJOINS = 8;
function rejoin(tile) {
  if (state.tiles.get(tile.slot) !== tile) return;
  clearInterval(tile.watch);
  clearInterval(tile.clock);
  openTile(tile.slot, tile.cam, tile);
}

// The relay ends sessions itself when authorization expires or is revoked: say so, with its reason.
async function watchSession(tile) {
  if (state.tiles.get(tile.slot) !== tile || !tile.location) { clearInterval(tile.watch); return; }
  // The session lives on one relay (its Location names it). That relay gone (no answer, or the ingress's
  // 502/503/504) or drained ("relay draining"): join again through any relay.
  const response = await api(tile.location).catch(() => null);
  if (state.tiles.get(tile.slot) !== tile || !tile.location) return;
  if (response === null || [502, 503, 504].includes(response.status)) {
    clearInterval(tile.watch);
    tile.location = null;
    if (tile.pc) tile.pc.close();
    if (tile.reopened < REJOINS) { rejoin(tile); return; }
    tileMessage(tile, "tile.ended", "ended", {}, "relay unreachable");
    return;
  }
  if (response.status === 410 || response.status === 404) {
    clearInterval(tile.watch);
    const why = response.status === 410 ? await reason(response) : "The session ended.";
    tile.location = null;
    if (tile.pc) tile.pc.close();
    // An admin changed the camera (source or privacy masks) and its stream restarted: open the view again,
    // which asks the policy again and is logged as a new view. A few times, not in a loop.
    if (why.includes("stream stopped") && tile.reopened < 3 && state.tiles.get(tile.slot) === tile) {
      clearInterval(tile.clock);
      openTile(tile.slot, tile.cam, tile);
      return;
    }
    // Its relay is shutting down (drained for an upgrade or a move): another relay takes the camera.
    if (why.includes("relay draining") && tile.reopened < REJOINS) { rejoin(tile); return; }
    tileMessage(tile, "tile.ended", "ended", {}, why);
  }
}

async function closeTile(slot, { keepPlace = false } = {}) {
  const tile = state.tiles.get(slot);
  if (!keepPlace) {
    state.layout.slots[slot] = null;
    saveLayout();
  }
  if (!tile) return;
  state.tiles.delete(slot);
  clearTimeout(tile.retry);
  clearInterval(tile.watch);
  clearInterval(tile.clock);
  if (document.fullscreenElement === tile.el) document.exitFullscreen().catch(() => {});
  const slotEl = tile.el.parentElement;
  tile.el.remove();
  if (slotEl && !slotEl.querySelector(".tile")) $(".slot-empty", slotEl).hidden = false;
  // End the WHEP session first, so the access log records the viewer's choice, not a dropped peer.
  if (tile.location) await api(tile.location, { method: "DELETE" }).catch(() => {});
  if (tile.pc) tile.pc.close();
}

// WHEP sessions end with a DELETE; on tab close the relay's peer watchdog ends them instead.
window.addEventListener("pagehide", () => {
  for (const tile of state.tiles.values()) {
    if (tile.location) fetch(tile.location, { method: "DELETE", keepalive: true,
      headers: { Authorization: `Bearer ${state.token}` } }).catch(() => {});
  }
});

// A new language: everything the script wrote is written again.
function relabel() {
  paintWhoami();
  if (!state.user) return;
  if (state.map) state.map.relabel();
  if (can("view")) {
    for (const li of document.querySelectorAll("#cameras li.camera")) {
      const cam = cameraById(li.dataset.camera);
      if (cam) paintHealth($(".health", li), cam.health);
    }
    fillChoices($("#filter-district"), [...new Set(state.cameras.map((c) => c.district).filter(Boolean))].sort(), "filter.any");
    fillChoices($("#filter-tag"), [...new Set(state.cameras.flatMap((c) => c.tags || []))].sort(), "filter.any");
    fillLayoutControls();
    applyFilters();
    paintSlots();
    $("#cameras-empty").textContent = t("dash.no_cameras");
    for (const tile of state.tiles.values()) { paintTile(tile); paintHealth($(".health", tile.el), tile.cam.health); }
  } else {
    $("#cameras-empty").textContent = t(hasConsole() ? "dash.console_note" : "dash.no_live_video");
  }
  paintRawRequests();
}

document.addEventListener("DOMContentLoaded", async () => {
  // Before anything is awaited: a sign-in submitted while the catalogues load must not leave as a form.
  $("#sign-in").addEventListener("submit", signIn);
  await I18N.init();
  state.config = await (await fetch("/ui/config.json")).json();
  document.addEventListener("i18n:change", relabel);
  $("#sign-out").addEventListener("click", () => signOut());
  for (const sel of ["#search", "#filter-district", "#filter-tag", "#filter-health"]) {
    $(sel).addEventListener("input", applyFilters);
  }
  $("#search").addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return; // Enter: the first camera the search shows goes to the selected tile
    const first = [...document.querySelectorAll("#cameras li.camera")].find((li) => !li.hidden && !$(".play", li).disabled);
    const cam = first && state.cameras.find((c) => c.id === first.dataset.camera);
    if (cam) { event.preventDefault(); place(cam); }
  });
  for (const b of document.querySelectorAll(".layout-sizes .size")) {
    b.addEventListener("click", () => setSize(Number(b.dataset.size)));
  }
  $("#layout-purpose").addEventListener("change", () => changeLayout({ purpose: $("#layout-purpose").value }));
  $("#layout-mode").addEventListener("change", () => changeLayout({ mode: $("#layout-mode").value }));
  $("#layout-case-ref").addEventListener("change", () => changeLayout({ caseRef: $("#layout-case-ref").value.trim() }));
  $("#layout-case-ref").addEventListener("input", () => { state.layout.caseRef = $("#layout-case-ref").value.trim(); saveLayout(); });
  $("#layout-clear").addEventListener("click", () => {
    for (let i = 0; i < 16; i += 1) closeTile(i);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "/" && !["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName)) {
      event.preventDefault();
      $("#search").focus();
    }
  });
  if (state.token) start();
  setInterval(() => { if (state.token && !$("#workspace").hidden) refresh(); }, 5000);
});
