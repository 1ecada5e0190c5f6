// Dashboard: sign in, list the cameras you may watch, play them over WHEP (one RTCPeerConnection per tile).
// No framework, no build step. The token lives in sessionStorage only (gone when the tab closes).
"use strict";

const state = { token: sessionStorage.getItem("cctv_token"), user: null, cameras: [], tiles: new Map() };
const $ = (sel, root = document) => root.querySelector(sel);

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401 && path !== "/api/auth/login") signOut("Your sign-in expired; please sign in again.");
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

// --- sign in -------------------------------------------------------------------------------------
async function signIn(event) {
  event.preventDefault();
  const error = $("#sign-in-error");
  error.textContent = "";
  const body = JSON.stringify({ username: $("#username").value, password: $("#password").value });
  const response = await api("/api/auth/login", { method: "POST", headers: { "Content-Type": "application/json" }, body });
  if (!response.ok) { error.textContent = await reason(response); return; }
  const data = await response.json();
  state.token = data.access_token;
  sessionStorage.setItem("cctv_token", state.token);
  $("#password").value = "";
  await start();
}

function signOut(message) {
  for (const id of [...state.tiles.keys()]) closeTile(id);
  state.token = null;
  sessionStorage.removeItem("cctv_token");
  state.user = null;
  state.cameras = [];
  $("#cameras").replaceChildren();
  $("#raw-requests tbody").replaceChildren();
  $("#raw-panel").hidden = true;
  $("#whoami").hidden = true;
  $("#cameras-panel").hidden = true;
  $("#sign-in-panel").hidden = false;
  $("#sign-in-error").textContent = typeof message === "string" ? message : "";
}

async function start() {
  const me = await api("/api/auth/me");
  if (!me.ok) { signOut(); return; }
  state.user = await me.json();
  $("#user-name").textContent = state.user.display_name || state.user.username;
  $("#user-roles").textContent = `(${state.user.roles.join(", ")})`;
  $("#whoami").hidden = false;
  $("#sign-in-panel").hidden = true;
  $("#cameras-panel").hidden = false;
  $("#raw-panel").hidden = !(can("request_raw") || can("approve_raw"));
  await refresh();
}

function can(permission) {
  return Boolean(state.user && state.user.permissions && state.user.permissions.includes(permission));
}

async function refresh() {
  await refreshCameras();
  if (!$("#raw-panel").hidden) await refreshRawRequests();
}

// --- camera list ---------------------------------------------------------------------------------
function healthText(h) {
  if (!h) return ["idle", "idle"];
  if (h.state === "idle") return ["idle", "idle (connects when watched)"];
  if (h.connected) return ["up", `up · ${Number(h.fps_out ?? h.fps_in ?? 0).toFixed(0)} fps`];
  return ["down", h.last_error ? `down · ${h.last_error}` : "down"];
}

function paintHealth(el, h) {
  const [cls, text] = healthText(h);
  el.className = `health ${cls}`;
  el.textContent = text;
}

async function refreshCameras() {
  if (!can("view")) {
    $("#cameras").replaceChildren();
    $("#cameras-empty").hidden = false;
    $("#cameras-empty").textContent = "Your roles include no live video.";
    return;
  }
  const response = await api("/api/live/cameras");
  const list = $("#cameras");
  if (!response.ok) {
    list.replaceChildren();
    $("#cameras-empty").hidden = false;
    $("#cameras-empty").textContent = await reason(response);
    return;
  }
  state.cameras = (await response.json()).cameras;
  $("#cameras-empty").hidden = state.cameras.length > 0;
  const rows = state.cameras.map((cam) => cameraRow(cam, list.querySelector(`[data-camera="${CSS.escape(cam.id)}"]`)));
  list.replaceChildren(...rows);
  for (const tile of state.tiles.values()) {
    const cam = state.cameras.find((c) => c.id === tile.cameraId);
    if (cam) paintHealth($(".health", tile.el), cam.health);
  }
}

function cameraRow(cam, existing) {
  // Keep a row (and the user's choices in it) while the purposes open to the user stay the same.
  const rights = JSON.stringify([cam.purposes, cam.raw_purposes]);
  if (existing && existing.dataset.rights !== rights) existing = null;
  const li = existing || $("#camera-row").content.firstElementChild.cloneNode(true);
  li.dataset.camera = cam.id;
  li.dataset.rights = rights;
  $(".camera-name", li).textContent = cam.name;
  $(".camera-where", li).textContent = [cam.district, cam.address].filter(Boolean).join(" · ");
  paintHealth($(".health", li), cam.health);
  if (!existing) {
    const purpose = $(".purpose", li);
    const mode = $(".mode", li);
    const fill = () => {
      const raw = mode.value === "raw";
      const ids = raw ? cam.raw_purposes : cam.purposes;
      purpose.replaceChildren(...ids.map((p) => new Option(p.replaceAll("_", " "), p)));
      $(".case-ref-label", li).hidden = !raw;
      $(".ask", li).hidden = !(raw && can("request_raw"));
    };
    $(".ask", li).addEventListener("click", () =>
      askApproval(li, cam, purpose.value, $(".case-ref", li).value.trim()));
    if (!cam.raw_purposes || cam.raw_purposes.length === 0) $(".mode", li).disabled = true;
    mode.addEventListener("change", fill);
    fill();
    $(".play", li).addEventListener("click", () =>
      openTile(cam, purpose.value, mode.value, $(".case-ref", li).value.trim()));
  }
  return li;
}

// --- raw view: dual control --------------------------------------------------------------------------
function rowStatus(li, text, isError) {
  const el = $(".row-status", li);
  el.hidden = !text;
  el.textContent = text || "";
  el.className = `row-status ${isError ? "error" : "muted"}`;
}

async function askApproval(li, cam, purpose, caseRef) {
  if (!caseRef) { rowStatus(li, "A raw view needs a case reference.", true); return; }
  const justification = window.prompt("Why do you need to see faces? (recorded in the access log)") || "";
  const response = await api("/api/raw-requests", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ camera_id: cam.id, purpose, case_ref: caseRef, justification }),
  });
  if (!response.ok) { rowStatus(li, `Request refused: ${await reason(response)}`, true); return; }
  rowStatus(li, "Requested: a second person with the approve right must approve it before you can play raw.");
  await refreshRawRequests();
}

function when(iso) {
  return iso ? new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
}

async function refreshRawRequests() {
  const response = await api("/api/raw-requests");
  if (!response.ok) return;
  const rows = (await response.json()).slice(-20).reverse();
  $("#raw-empty").hidden = rows.length > 0;
  $("#raw-requests").hidden = rows.length === 0;
  $("#raw-requests tbody").replaceChildren(...rows.map(rawRow));
}

function rawRow(req) {
  const tr = document.createElement("tr");
  tr.dataset.request = req.id;
  for (const text of [req.camera_id, req.purpose.replaceAll("_", " "), req.case_ref, req.requester,
                      req.status, when(req.expires_at)]) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  const actions = document.createElement("td");
  const act = (label, path, body) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.addEventListener("click", async () => {
      const r = await api(`/api/raw-requests/${encodeURIComponent(req.id)}/${path}`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body()) });
      if (!r.ok) window.alert(await reason(r));
      await refreshRawRequests();
    });
    actions.append(b);
  };
  const mine = state.user && req.requester === state.user.username;
  if (req.status === "pending" && can("approve_raw") && !mine) {
    act("Approve 30 min", "approve", () => ({ minutes: 30 }));
    act("Deny", "deny", () => ({ reason: window.prompt("Reason for denying") || "denied" }));
  }
  if (["pending", "approved"].includes(req.status) && (mine || can("approve_raw") || can("admin"))) {
    act("Revoke", "revoke", () => ({ reason: window.prompt("Reason for revoking") || "revoked" }));
  }
  tr.append(actions);
  return tr;
}

// --- tiles (WHEP) --------------------------------------------------------------------------------
function waitForIce(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") { clearTimeout(timer); resolve(); } };
    const timer = setTimeout(resolve, ms);
    pc.addEventListener("icegatheringstatechange", done);
  });
}

function tileMessage(tile, text, kind) {
  const msg = $(".message", tile.el);
  msg.hidden = !text;
  msg.textContent = text || "";
  msg.className = `overlay message ${kind || ""}`;
  if (kind) tile.el.dataset.state = kind;
}

// `replacing`: the tile of an earlier session of the same view, whose place the new tile takes.
async function openTile(cam, purpose, mode, caseRef, replacing = null) {
  const key = `${cam.id}|${purpose}|${mode}`;
  if (state.tiles.has(key) && state.tiles.get(key) !== replacing) return;
  const el = $("#tile").content.firstElementChild.cloneNode(true);
  const tile = { key, cameraId: cam.id, el, pc: null, location: null, cam, purpose, mode, caseRef,
                 reopened: replacing ? replacing.reopened + 1 : 0 };
  state.tiles.set(key, tile);
  el.dataset.camera = cam.id;
  el.dataset.state = "connecting";
  $(".tile-name", el).textContent = cam.name;
  $(".tile-purpose", el).textContent = purpose.replaceAll("_", " ");
  $(".tile-mode", el).textContent = mode;
  $(".tile-mode", el).classList.add(mode);
  paintHealth($(".health", el), cam.health);
  $(".close", el).addEventListener("click", () => closeTile(key));
  if (replacing) replacing.el.replaceWith(el); else $("#grid").append(el);
  tileMessage(tile, replacing ? "The camera was changed: reconnecting…" : "Connecting…", "");

  const pc = new RTCPeerConnection();
  tile.pc = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  const video = $("video", el);
  pc.addEventListener("track", (event) => {
    video.srcObject = event.streams[0] || new MediaStream([event.track]);
    video.play().catch(() => {});
  });
  video.addEventListener("playing", () => { tileMessage(tile, "", ""); el.dataset.state = "playing"; });
  pc.addEventListener("connectionstatechange", () => {
    if (["failed", "disconnected"].includes(pc.connectionState) && state.tiles.has(key)
        && !["denied", "ended"].includes(el.dataset.state)) {
      tileMessage(tile, "The session ended (authorization expired or revoked, or the connection dropped).", "ended");
    }
  });
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIce(pc, 2000);
    const query = new URLSearchParams({ purpose, mode });
    if (caseRef) query.set("case_ref", caseRef);
    const response = await api(`/whep/${encodeURIComponent(cam.id)}?${query}`, {
      method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp,
    });
    if (response.status !== 201) {
      const why = await reason(response);
      tileMessage(tile, response.status === 403 ? `Access denied: ${why}` : `Cannot play: ${why}`, "denied");
      pc.close();
      return;
    }
    tile.location = response.headers.get("Location");
    tile.watch = setInterval(() => watchSession(tile), 2000);
    const mode_ = response.headers.get("X-View-Mode");
    if (mode_) $(".tile-mode", el).textContent = mode_;
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  } catch (err) {
    tileMessage(tile, `Cannot play: ${err.message || err}`, "denied");
    pc.close();
  }
}

// The relay ends sessions itself when authorization expires or is revoked: say so, with its reason.
async function watchSession(tile) {
  if (!state.tiles.has(tile.key) || !tile.location) { clearInterval(tile.watch); return; }
  const response = await api(tile.location);
  if (response.status === 410 || response.status === 404) {
    clearInterval(tile.watch);
    const why = response.status === 410 ? await reason(response) : "The session ended.";
    tile.location = null;
    if (tile.pc) tile.pc.close();
    // An admin changed the camera (source or privacy masks) and its stream restarted: open the view again,
    // which asks the policy again and is logged as a new view. A few times, not in a loop.
    if (why.includes("stream stopped") && tile.reopened < 3 && state.tiles.get(tile.key) === tile) {
      openTile(tile.cam, tile.purpose, tile.mode, tile.caseRef, tile);
      return;
    }
    tileMessage(tile, why, "ended");
  }
}

async function closeTile(key) {
  const tile = state.tiles.get(key);
  if (!tile) return;
  state.tiles.delete(key);
  clearInterval(tile.watch);
  tile.el.remove();
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

document.addEventListener("DOMContentLoaded", () => {
  $("#sign-in").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", () => signOut());
  if (state.token) start();
  setInterval(() => { if (state.token && !$("#cameras-panel").hidden) refresh(); }, 5000);
});
