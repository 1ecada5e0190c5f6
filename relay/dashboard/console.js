// The consoles: cameras and their privacy masks, purposes/roles/rules and the policy file, users and role
// grants (policy administrators); raw-view approvals (approvers); the access log (auditors). Each tab shows
// only when the signed-in person's rights reach it; the APIs refuse the rest whatever a page sends. Same
// sign-in (sessionStorage token), language switch and catalogues as the live view. No framework, no build.
"use strict";

const state = {
  token: sessionStorage.getItem("cctv_token"), user: null, catalog: { purposes: {}, roles: {} },
  config: null, cameras: [], purposes: [], roles: [], rules: [], users: [], editing: null, masks: null,
  camMap: null, camMarker: null, auditOffset: 0, auditTotal: 0, tab: null,
};
const AUDIT_PAGE = 50;
const $ = (sel, root = document) => root.querySelector(sel);
const t = (key, params) => I18N.t(key, params);
const list = (text) => String(text || "").split(",").map((s) => s.trim()).filter(Boolean);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options = Object.assign({}, options, { body: JSON.stringify(options.json) });
  }
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401 && path !== "/api/auth/login") signOut(t("dash.expired"));
  return response;
}

// A refusal as lines: a 422's problems by field, the policy checker's `file:line: field: problem` lines, or
// the reason the server gives (translated where the live view's patterns know it, the server's words kept).
async function problems(response) {
  let body = null;
  try { body = await response.json(); } catch { return [`${response.status} ${response.statusText}`]; }
  const detail = body && body.detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => t("con.field_problem", { field: (d.loc || []).filter((p) => p !== "body").join("."), problem: d.msg }));
  }
  if (typeof detail === "string") {
    return detail.split("; ").map((line) => {
      const { message } = I18N.reason(line);
      return message ? t("common.reason_with_detail", { message, detail: line }) : line;
    });
  }
  return [JSON.stringify(body)];
}

function showProblems(target, lines) {
  target.replaceChildren(...lines.map((line) => el("div", {}, line)));
}

const purposeName = (id) => I18N.label(state.catalog.purposes[id], id.replaceAll("_", " "));
const roleName = (name) => I18N.label(state.catalog.roles[name], name.replaceAll("_", " "));
const can = (permission) => Boolean(state.user && (state.user.permissions || []).includes(permission));
const when = (iso) => (iso ? new Date(iso).toLocaleString(I18N.lang) : "—");

// --- sign in ---------------------------------------------------------------------------------------
async function signIn(event) {
  event.preventDefault();
  $("#sign-in-error").textContent = "";
  const response = await api("/api/auth/login", { method: "POST", json: { username: $("#username").value, password: $("#password").value } });
  if (!response.ok) { $("#sign-in-error").textContent = (await problems(response)).join(" "); return; }
  state.token = (await response.json()).access_token;
  sessionStorage.setItem("cctv_token", state.token);
  $("#password").value = "";
  await start();
}

function signOut(message) {
  state.token = null; state.user = null;
  sessionStorage.removeItem("cctv_token");
  for (const p of document.querySelectorAll(".tab-panel")) p.hidden = true;
  $("#tabs").hidden = true; $("#whoami").hidden = true; $("#no-console").hidden = true;
  $("#sign-in-panel").hidden = false;
  $("#sign-in-error").textContent = typeof message === "string" ? message : "";
}

async function start() {
  const me = await api("/api/auth/me");
  if (!me.ok) { signOut(); return; }
  state.user = await me.json();
  const catalog = await api("/api/live/catalog");
  if (catalog.ok) state.catalog = await catalog.json();
  $("#sign-in-panel").hidden = true;
  $("#whoami").hidden = false;
  paintWhoami();
  const tabs = [...document.querySelectorAll("#tabs .tab")];
  for (const b of tabs) b.hidden = !b.dataset.needs.split(" ").some(can);
  const open = tabs.filter((b) => !b.hidden);
  $("#tabs").hidden = open.length === 0;
  $("#no-console").hidden = open.length > 0;
  const wanted = open.find((b) => b.dataset.tab === location.hash.slice(1)) || open[0];
  if (wanted) await showTab(wanted.dataset.tab);
}

function paintWhoami() {
  if (!state.user) return;
  $("#user-name").textContent = state.user.display_name || state.user.username;
  $("#user-roles").textContent = `(${state.user.roles.map(roleName).join(t("common.list_separator"))})`;
}

async function showTab(name) {
  state.tab = name;
  for (const b of document.querySelectorAll("#tabs .tab")) b.setAttribute("aria-selected", String(b.dataset.tab === name));
  for (const p of document.querySelectorAll(".tab-panel")) p.hidden = p.id !== `tab-${name}`;
  history.replaceState(null, "", `#${name}`);
  if (name === "cameras") await loadCameras();
  if (name === "policy") await loadPolicy();
  if (name === "users") await loadUsers();
  if (name === "approvals") await loadApprovals();
  if (name === "audit") await loadAudit();
}

// --- cameras ---------------------------------------------------------------------------------------
async function loadLists() {
  const [purposes, roles] = await Promise.all([api("/api/purposes"), api("/api/roles")]);
  if (purposes.ok) state.purposes = await purposes.json();
  if (roles.ok) state.roles = await roles.json();
}

async function loadCameras() {
  const response = await api("/api/cameras");
  if (!response.ok) return;
  state.cameras = await response.json();
  if (!state.purposes.length) await loadLists();
  paintCameras();
}

function stateBadge(on) {
  return el("span", { class: `badge ${on ? "anonymized" : ""}` }, t(on ? "con.enabled" : "con.disabled"));
}

function paintCameras() {
  const q = $("#cam-search").value.trim().toLowerCase();
  const rows = state.cameras.filter((c) => !q || [c.id, c.name, c.address, c.district, ...(c.tags || [])]
    .some((x) => String(x || "").toLowerCase().includes(q)));
  $("#cam-table tbody").replaceChildren(...rows.map((cam) => el("tr", { dataset: { camera: cam.id } },
    el("td", {}, cam.id), el("td", {}, cam.name), el("td", {}, cam.district || ""),
    el("td", {}, cam.purposes.map(purposeName).join(t("common.list_separator"))),
    el("td", {}, String(cam.privacy_masks.length)), el("td", {}, stateBadge(cam.enabled)),
    el("td", {},
      el("button", { type: "button", class: "edit", onclick: () => editCamera(cam) }, t("con.edit")),
      el("button", { type: "button", class: "toggle secondary", onclick: () => toggleCamera(cam) },
        t(cam.enabled ? "con.disable" : "con.enable"))))));
}

function checks(box, name, options, chosen) {
  box.replaceChildren(...options.map(([value, text]) => el("label", { class: "check" },
    el("input", { type: "checkbox", name, value, checked: chosen.includes(value) }), ` ${text}`)));
}
const checked = (box) => [...box.querySelectorAll("input:checked")].map((i) => i.value);

async function editCamera(cam) {
  if (!state.purposes.length) await loadLists(); // the purposes to choose from, before the form shows
  const form = $("#cam-form");
  state.editing = cam;
  form.hidden = false;
  $("#cam-form-title").textContent = cam ? t("con.cam_edit_title", { id: cam.id }) : t("con.cam_new");
  const c = cam || { id: "", name: "", address: "", district: "", agency: "", tags: [], purposes: [], latitude: null,
    longitude: null, signage: true, keepalive: false, enabled: true, silhouettes: "grey", privacy_masks: [], has_source: false, has_credentials: false };
  for (const k of ["id", "name", "address", "district", "agency"]) form.elements[k].value = c[k] || "";
  form.elements.id.readOnly = Boolean(cam);
  form.elements.tags.value = (c.tags || []).join(", ");
  form.elements.latitude.value = c.latitude ?? "";
  form.elements.longitude.value = c.longitude ?? "";
  for (const k of ["signage", "keepalive", "enabled"]) form.elements[k].checked = Boolean(c[k]);
  form.elements.silhouettes.value = c.silhouettes === "colour" ? "colour" : "grey";
  for (const k of ["source_url", "source_username", "source_password"]) form.elements[k].value = "";
  // Credentials are write-only: the page is told only whether they are set.
  $("#cam-secret-note").textContent = t(c.has_source ? (c.has_credentials ? "con.cam_secret_set" : "con.cam_source_set") : "con.cam_source_none");
  checks($("#cam-purposes"), "purposes", state.purposes.filter((p) => p.id !== "camera_configuration")
    .map((p) => [p.id, purposeName(p.id)]), c.purposes);
  $("#cam-errors").replaceChildren();
  $("#cam-status").textContent = "";
  $("#mask-status").textContent = "";
  $("#mask-fieldset").hidden = !cam; // a camera's picture exists once it is saved
  state.masks.setPicture(null);
  state.masks.setMasks(c.privacy_masks);
  paintMaskCount();
  placeOnMap(c.latitude, c.longitude);
  form.scrollIntoView({ block: "start" });
}

function placeOnMap(lat, lon) {
  if (typeof L === "undefined") return;
  if (!state.camMap) {
    const cfg = (state.config && state.config.map) || {};
    state.camMap = L.map("cam-map", { attributionControl: Boolean(cfg.attribution) }).setView(cfg.center || [25.0478, 121.5319], cfg.zoom || 12);
    if (cfg.tile_url) L.tileLayer(cfg.tile_url, { attribution: cfg.attribution || "", maxZoom: 19 }).addTo(state.camMap);
    else $("#cam-map").classList.add("map-plain");
    state.camMap.on("click", (e) => {
      const form = $("#cam-form");
      form.elements.latitude.value = e.latlng.lat.toFixed(6);
      form.elements.longitude.value = e.latlng.lng.toFixed(6);
      placeOnMap(e.latlng.lat, e.latlng.lng);
    });
  }
  state.camMap.invalidateSize();
  if (state.camMarker) { state.camMarker.remove(); state.camMarker = null; }
  if (lat !== null && lat !== undefined && lat !== "" && lon !== null && lon !== undefined && lon !== "") {
    state.camMarker = L.circleMarker([Number(lat), Number(lon)], { radius: 8, color: "#fff", fillColor: "#f0b429", fillOpacity: 0.9 }).addTo(state.camMap);
    state.camMap.setView([Number(lat), Number(lon)], Math.max(state.camMap.getZoom(), 15));
  }
}

function cameraBody(masks) {
  const f = $("#cam-form").elements;
  const cam = state.editing;
  const num = (v) => (v === "" ? null : Number(v));
  const body = {
    id: f.id.value.trim(), name: f.name.value.trim(), address: f.address.value.trim(), district: f.district.value.trim(),
    agency: f.agency.value.trim(), tags: list(f.tags.value), purposes: checked($("#cam-purposes")),
    latitude: num(f.latitude.value), longitude: num(f.longitude.value), signage: f.signage.checked,
    keepalive: f.keepalive.checked, enabled: f.enabled.checked, silhouettes: f.silhouettes.value, privacy_masks: masks,
  };
  // Blank keeps what is set: "***" is the placeholder the policy import already leaves untouched.
  const keep = (name, isSet) => (f[name].value ? f[name].value : (isSet ? "***" : (name === "source_url" ? "" : null)));
  body.source_url = keep("source_url", cam && cam.has_source);
  body.source_username = keep("source_username", cam && cam.has_credentials);
  body.source_password = keep("source_password", cam && cam.has_credentials);
  return body;
}

async function saveCamera(event, masksOnly = false) {
  if (event) event.preventDefault();
  const cam = state.editing;
  $("#cam-status").textContent = "";
  const masks = state.masks.value();
  const body = masksOnly && cam ? Object.assign({}, cameraRecord(cam), { privacy_masks: masks }) : cameraBody(cam ? masks : []);
  const response = await api(cam ? `/api/cameras/${encodeURIComponent(cam.id)}` : "/api/cameras",
    { method: cam ? "PUT" : "POST", json: body });
  if (!response.ok) { showProblems($("#cam-errors"), await problems(response)); return false; }
  const saved = await response.json();
  $("#cam-errors").replaceChildren();
  await loadCameras();
  await editCamera(state.cameras.find((c) => c.id === saved.id) || saved);
  // Said once the form shows the saved camera (its write-only fields blank again), not before.
  $("#cam-status").textContent = t(cam ? "con.cam_saved" : "con.cam_created", { id: saved.id });
  return true;
}

// The camera as stored, for a change of one field (the rest, credentials included, kept as they are).
function cameraRecord(cam) {
  const out = {};
  for (const k of ["id", "name", "address", "district", "agency", "tags", "purposes", "latitude", "longitude",
    "signage", "keepalive", "enabled", "silhouettes", "privacy_masks"]) out[k] = cam[k];
  out.source_url = cam.has_source ? "***" : "";
  if (cam.has_credentials) { out.source_username = "***"; out.source_password = "***"; }
  return out;
}

async function toggleCamera(cam) {
  const response = await api(`/api/cameras/${encodeURIComponent(cam.id)}`,
    { method: "PUT", json: Object.assign(cameraRecord(cam), { enabled: !cam.enabled }) });
  if (!response.ok) { showProblems($("#cam-errors"), await problems(response)); return; }
  await loadCameras();
}

async function loadStill() {
  const cam = state.editing;
  if (!cam) return;
  $("#mask-status").textContent = t("con.masks_loading");
  const response = await api(`/api/cameras/${encodeURIComponent(cam.id)}/still`);
  if (!response.ok) { $("#mask-status").textContent = (await problems(response)).join(" "); return; }
  const bitmap = await createImageBitmap(await response.blob());
  state.masks.setPicture(bitmap);
  $("#mask-canvas").dataset.still = "loaded";
  $("#mask-status").textContent = t(response.headers.get("X-Still-Masked-Whole") === "true" ? "con.masks_whole" : "con.masks_loaded");
}

function paintMaskCount() { $("#mask-count").textContent = t("con.masks_count", { n: state.masks.count }); }

// --- purposes, roles, rules, preview, the policy file -------------------------------------------------
async function loadPolicy() {
  await loadLists();
  const [rules, cams] = await Promise.all([api("/api/rules"), api("/api/cameras")]);
  if (rules.ok) state.rules = await rules.json();
  if (cams.ok) state.cameras = await cams.json();
  paintPurposesAndRoles();
  paintRules();
  const select = $("#preview-camera");
  const was = select.value;
  select.replaceChildren(el("option", { value: "" }, t("con.preview_choose")),
    ...state.cameras.map((c) => el("option", { value: c.id }, `${c.name} (${c.id})`)));
  select.value = was;
  if (was) await preview();
}

// Purposes and roles: one small form each, saved through the admin API (its 422/400/409 shown as given).
const RIGHTS = ["can_view", "can_request_raw", "can_approve_raw", "can_admin", "can_audit"];

function paintPurposesAndRoles() {
  const sep = t("common.list_separator");
  $("#purpose-table tbody").replaceChildren(...state.purposes.map((p) => el("tr", { dataset: { purpose: p.id } },
    el("td", {}, p.id), el("td", {}, (p.labels || {})["zh-TW"] || ""), el("td", {}, (p.labels || {}).en || ""),
    el("td", {}, p.allows_raw ? t("con.yes") : t("con.no")),
    el("td", {}, el("button", { type: "button", onclick: () => editRecord("purpose", p) }, t("con.edit")),
      el("button", { type: "button", class: "secondary", onclick: () => deleteRecord("purposes", p.id) }, t("con.delete"))))));
  $("#role-table tbody").replaceChildren(...state.roles.map((r) => el("tr", { dataset: { role: r.name } },
    el("td", {}, r.name), el("td", {}, (r.labels || {})["zh-TW"] || ""), el("td", {}, (r.labels || {}).en || ""),
    el("td", {}, rightsOf(r).join(sep) || t("con.right_none")),
    el("td", {}, el("button", { type: "button", onclick: () => editRecord("role", r) }, t("con.edit")),
      el("button", { type: "button", class: "secondary", onclick: () => deleteRecord("roles", r.name) }, t("con.delete"))))));
}

function editRecord(kind, record) {
  const form = $(`#${kind}-form`);
  form.hidden = false;
  form.dataset.editing = record ? (record.id || record.name) : "";
  const key = kind === "purpose" ? "id" : "name";
  form.elements[key].value = record ? record[key] : "";
  form.elements[key].readOnly = Boolean(record);
  const labels = (record && record.labels) || {};
  form.elements.label_zh.value = labels["zh-TW"] || "";
  form.elements.label_en.value = labels.en || "";
  if (kind === "purpose") {
    form.elements.label.value = record ? record.label : "";
    form.elements.allows_raw.checked = Boolean(record && record.allows_raw);
  } else {
    form.elements.description.value = record ? record.description : "";
    for (const f of RIGHTS) form.elements[f].checked = Boolean(record && record[f]);
  }
  $(".problems", form).replaceChildren();
}

async function saveRecord(event, kind) {
  event.preventDefault();
  const form = event.target;
  const f = form.elements;
  const labels = {};
  if (f.label_zh.value.trim()) labels["zh-TW"] = f.label_zh.value.trim();
  if (f.label_en.value.trim()) labels.en = f.label_en.value.trim();
  const body = kind === "purpose"
    ? { id: f.id.value.trim(), label: f.label.value.trim(), labels, allows_raw: f.allows_raw.checked }
    : Object.assign({ name: f.name.value.trim(), description: f.description.value, labels },
      Object.fromEntries(RIGHTS.map((r) => [r, f[r].checked])));
  const editing = form.dataset.editing;
  const path = `/api/${kind}s`;
  const response = await api(editing ? `${path}/${encodeURIComponent(editing)}` : path, { method: editing ? "PUT" : "POST", json: body });
  if (!response.ok) { showProblems($(".problems", form), await problems(response)); return; }
  form.hidden = true;
  await loadPolicy();
}

async function deleteRecord(section, id) {
  if (!confirm(t("con.confirm_delete", { id }))) return;
  const response = await api(`/api/${section}/${encodeURIComponent(id)}`, { method: "DELETE" });
  if (!response.ok) {
    const form = $(section === "purposes" ? "#purpose-form" : "#role-form");
    form.hidden = false;
    showProblems($(".problems", form), await problems(response));
    return;
  }
  await loadPolicy();
}

function windowsText(windows) {
  const days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
  return windows.map((w) => `${(w.days || []).map((d) => days[d]).join(",")} ${w.start}-${w.end}`).join("\n");
}

function paintRules() {
  $("#rule-table tbody").replaceChildren(...state.rules.map((r) => el("tr", { dataset: { rule: r.id } },
    el("td", {}, r.id), el("td", {}, r.roles.map(roleName).join(t("common.list_separator"))),
    el("td", {}, [...r.camera_ids, ...r.districts, ...r.tags.map((x) => `#${x}`)].join(", ")),
    el("td", {}, r.purposes.map(purposeName).join(t("common.list_separator"))),
    el("td", {}, r.modes.map((m) => t(`mode.${m}`)).join(t("common.list_separator"))),
    el("td", {}, r.time_windows.length ? windowsText(r.time_windows) : t("con.always")),
    el("td", {}, stateBadge(r.enabled)),
    el("td", {}, el("button", { type: "button", onclick: () => editRule(r) }, t("con.edit")),
      el("button", { type: "button", class: "secondary", onclick: () => deleteRule(r) }, t("con.delete"))))));
}

async function editRule(rule) {
  if (!state.roles.length) await loadLists();
  const f = $("#rule-form");
  const r = rule || { id: "", description: "", roles: [], camera_ids: [], districts: [], tags: [], purposes: [], modes: ["anonymized"],
    time_windows: [], max_session_s: 8 * 3600, enabled: true };
  state.editingRule = rule;
  f.hidden = false;
  f.elements.id.value = r.id; f.elements.id.readOnly = Boolean(rule);
  f.elements.description.value = r.description;
  f.elements.camera_ids.value = r.camera_ids.join(", ");
  f.elements.districts.value = r.districts.join(", ");
  f.elements.tags.value = r.tags.join(", ");
  f.elements.mode_anonymized.checked = r.modes.includes("anonymized");
  f.elements.mode_raw.checked = r.modes.includes("raw");
  f.elements.time_windows.value = windowsText(r.time_windows);
  f.elements.max_session_min.value = Math.round(r.max_session_s / 60);
  f.elements.enabled.checked = r.enabled;
  checks($("#rule-roles"), "roles", state.roles.map((x) => [x.name, roleName(x.name)]), r.roles);
  // "camera configuration" is the mask editor's still, never a reason to watch: no rule offers it.
  checks($("#rule-purposes"), "purposes", state.purposes.filter((p) => p.id !== "camera_configuration" || r.purposes.includes(p.id))
    .map((p) => [p.id, purposeName(p.id)]), r.purposes);
  $("#rule-errors").replaceChildren();
}

async function saveRule(event) {
  event.preventDefault();
  const f = $("#rule-form").elements;
  const windows = f.time_windows.value.split("\n").map((s) => s.trim()).filter(Boolean).map((line) => {
    const [days, span = ""] = line.split(/\s+/);
    const [start, end] = span.split("-");
    return { days: list(days), start: start || "", end: end || "" };
  });
  const body = {
    id: f.id.value.trim(), description: f.description.value, roles: checked($("#rule-roles")),
    camera_ids: list(f.camera_ids.value), districts: list(f.districts.value), tags: list(f.tags.value),
    purposes: checked($("#rule-purposes")),
    modes: [f.mode_anonymized.checked && "anonymized", f.mode_raw.checked && "raw"].filter(Boolean),
    time_windows: windows, max_session_s: Math.round(Number(f.max_session_min.value || 0) * 60), enabled: f.enabled.checked,
  };
  const rule = state.editingRule;
  const response = await api(rule ? `/api/rules/${encodeURIComponent(rule.id)}` : "/api/rules", { method: rule ? "PUT" : "POST", json: body });
  if (!response.ok) { showProblems($("#rule-errors"), await problems(response)); return; }
  $("#rule-form").hidden = true;
  await loadPolicy();
}

async function deleteRule(rule) {
  if (!confirm(t("con.confirm_delete", { id: rule.id }))) return;
  const response = await api(`/api/rules/${encodeURIComponent(rule.id)}`, { method: "DELETE" });
  if (!response.ok) showProblems($("#rule-errors"), await problems(response));
  await loadPolicy();
}

async function preview() {
  const id = $("#preview-camera").value;
  const box = $("#preview");
  if (!id) { box.replaceChildren(); return; }
  const response = await api(`/api/console/cameras/${encodeURIComponent(id)}/preview`);
  if (!response.ok) { showProblems(box, await problems(response)); return; }
  const data = await response.json();
  if (!data.rules.length) { box.replaceChildren(el("p", { class: "muted" }, t("con.preview_nobody"))); return; }
  const sep = t("common.list_separator");
  box.replaceChildren(el("table", { id: "preview-table" },
    el("thead", {}, el("tr", {}, ...["con.rule_id", "con.rule_roles", "con.preview_people", "con.rule_purposes", "con.rule_modes", "con.rule_when"]
      .map((k) => el("th", {}, t(k))))),
    el("tbody", {}, ...data.rules.map((r) => el("tr", { class: r.enabled ? "" : "muted" },
      el("td", {}, r.enabled ? r.rule_id : t("con.preview_disabled", { id: r.rule_id })),
      el("td", {}, r.roles.map((x) => (x.can_view ? roleName(x.name) : t("con.preview_no_view", { role: roleName(x.name) }))).join(sep)),
      el("td", {}, r.roles.flatMap((x) => x.users).join(", ") || "—"),
      el("td", {}, r.purposes.length ? r.purposes.map(purposeName).join(sep) : t("con.preview_no_purpose"),
        r.not_approved_here.length ? el("div", { class: "muted small" }, t("con.preview_not_approved", { purposes: r.not_approved_here.map(purposeName).join(sep) })) : null),
      el("td", {}, r.modes.map((m) => t(`mode.${m}`)).join(sep),
        r.raw_purposes.length ? el("div", { class: "muted small" }, t("con.preview_raw_needs")) : null),
      el("td", {}, (r.when.length ? r.when.join("; ") : t("con.always")) + " · " + t("con.preview_max", { min: Math.round(r.max_session_s / 60) })))))));
}

async function exportPolicy() {
  const response = await api("/api/console/policy");
  if (!response.ok) { $("#file-status").textContent = (await problems(response)).join(" "); return; }
  $("#policy-text").value = await response.text();
  $("#file-status").textContent = t("con.file_exported");
}

async function checkPolicy(doImport) {
  const yaml = $("#policy-text").value;
  $("#file-status").textContent = "";
  $("#file-problems").replaceChildren();
  const response = await api(doImport ? "/api/console/policy/import" : "/api/console/policy/check", { method: "POST", json: { yaml } });
  if (!response.ok) {
    $("#file-problems").replaceChildren(...(await problems(response)).map((p) => el("li", {}, p)));
    return;
  }
  const data = await response.json();
  if (!doImport && !data.ok) { $("#file-problems").replaceChildren(...data.problems.map((p) => el("li", {}, p))); return; }
  const counts = data.counts;
  $("#file-status").textContent = doImport
    ? t("con.file_imported", { n: data.changes.length })
    : t("con.file_ok", { purposes: counts.purposes, roles: counts.roles, cameras: counts.cameras, rules: counts.rules });
  if (doImport) await loadPolicy();
}

// --- users and role grants -----------------------------------------------------------------------------
async function loadUsers() {
  await loadLists();
  const [response, grants] = await Promise.all([api("/api/users"), api("/api/role-grants?state=pending")]);
  if (!response.ok) return;
  state.users = await response.json();
  // Roles waiting for a second administrator: the grants, not the user record, hold them.
  for (const g of grants.ok ? await grants.json() : []) {
    const u = state.users.find((x) => x.username === g.user);
    if (u) u.pending_roles = [...new Set([...u.pending_roles, ...g.roles])];
  }
  $("#user-table tbody").replaceChildren(...state.users.map((u) => el("tr", { dataset: { user: u.username } },
    el("td", {}, u.username), el("td", {}, u.display_name),
    el("td", {}, u.roles.map(roleName).join(t("common.list_separator"))),
    el("td", {}, u.pending_roles.map(roleName).join(t("common.list_separator"))),
    el("td", {}, stateBadge(u.active)),
    el("td", {}, el("button", { type: "button", onclick: () => editUser(u) }, t("con.edit")),
      el("button", { type: "button", class: "secondary", onclick: () => patchUser(u.username, { active: !u.active }) },
        t(u.active ? "con.disable" : "con.enable"))))));
}

function rightsOf(role) {
  return ["can_view", "can_request_raw", "can_approve_raw", "can_admin", "can_audit"].filter((f) => role[f]).map((f) => t(`con.right_${f}`));
}

async function editUser(user) {
  if (!state.roles.length) await loadLists();
  const f = $("#user-form");
  state.editingUser = user;
  f.hidden = false;
  f.elements.username.value = user ? user.username : ""; f.elements.username.readOnly = Boolean(user);
  f.elements.display_name.value = user ? user.display_name : "";
  f.elements.password.value = "";
  f.elements.password.required = !user;
  f.elements.active.checked = user ? user.active : true;
  // Each role with the rights it confers, so the separation of duties can be seen before it is enforced.
  checks($("#user-roles-checks"), "roles", state.roles.map((r) => [r.name, `${roleName(r.name)} (${rightsOf(r).join(t("common.list_separator")) || t("con.right_none")})`]),
    user ? [...user.roles, ...user.pending_roles] : []);
  $("#user-errors").replaceChildren();
}

async function patchUser(username, change) {
  const response = await api(`/api/users/${encodeURIComponent(username)}`, { method: "PATCH", json: change });
  if (!response.ok) { showProblems($("#user-errors"), await problems(response)); return null; }
  const out = await response.json();
  $("#user-status").textContent = out.pending_roles.length
    ? t("con.user_pending_saved", { user: username, roles: out.pending_roles.map(roleName).join(t("common.list_separator")) })
    : t("con.user_saved", { user: username });
  await loadUsers();
  return out;
}

async function saveUser(event) {
  event.preventDefault();
  const f = $("#user-form").elements;
  const body = { display_name: f.display_name.value, roles: checked($("#user-roles-checks")), active: f.active.checked };
  if (f.password.value) body.password = f.password.value;
  const user = state.editingUser;
  if (user) { if (await patchUser(user.username, body)) $("#user-form").hidden = true; return; }
  const response = await api("/api/users", { method: "POST", json: Object.assign({ username: f.username.value.trim() }, body) });
  if (!response.ok) { showProblems($("#user-errors"), await problems(response)); return; }
  const out = await response.json();
  $("#user-form").hidden = true;
  $("#user-status").textContent = out.pending_roles.length
    ? t("con.user_pending_saved", { user: out.username, roles: out.pending_roles.map(roleName).join(t("common.list_separator")) })
    : t("con.user_saved", { user: out.username });
  await loadUsers();
}

// --- approvals: role grants (admins), raw-view requests (approvers) -----------------------------------
async function loadApprovals() {
  $("#grants-box").hidden = !can("admin");
  $("#raws-box").hidden = !can("approve_raw");
  const sep = t("common.list_separator");
  if (can("admin")) {
    const response = await api("/api/role-grants?state=pending");
    const grants = response.ok ? await response.json() : [];
    $("#grants-empty").hidden = grants.length > 0;
    $("#grant-table tbody").replaceChildren(...grants.map((g) => el("tr", { dataset: { grant: g.id } },
      el("td", {}, g.user), el("td", {}, (g.roles || []).map(roleName).join(sep)), el("td", {}, g.requested_by || ""),
      el("td", {}, t(`con.grant_${g.state}`)),
      el("td", {}, el("button", { type: "button", class: "approve", onclick: () => decide(`/api/role-grants/${g.id}/approve`) }, t("con.approve")),
        el("button", { type: "button", class: "deny secondary", onclick: () => decide(`/api/role-grants/${g.id}/deny`, true) }, t("con.deny"))))));
  }
  if (can("approve_raw")) {
    const response = await api("/api/raw-requests?status=pending");
    const raws = response.ok ? await response.json() : [];
    $("#raws-empty").hidden = raws.length > 0;
    $("#raw-table tbody").replaceChildren(...raws.map((r) => el("tr", { dataset: { request: r.id } },
      el("td", {}, r.camera_id), el("td", {}, purposeName(r.purpose)), el("td", {}, r.case_ref), el("td", {}, r.requester),
      el("td", {}, t(`raw.status_${r.status}`)),
      el("td", {}, el("button", { type: "button", class: "approve", onclick: () => decide(`/api/raw-requests/${r.id}/approve`) }, t("con.approve")),
        el("button", { type: "button", class: "deny secondary", onclick: () => decide(`/api/raw-requests/${r.id}/deny`, true) }, t("con.deny"))))));
  }
}

async function decide(path, needsReason = false) {
  let json;
  if (needsReason) {
    const why = prompt(t("con.deny_reason"));
    if (!why) return;
    json = { reason: why.slice(0, 500) };
  }
  const response = await api(path, { method: "POST", json });
  $("#approvals-status").textContent = response.ok ? t("con.decided") : (await problems(response)).join(" ");
  await loadApprovals();
}

// --- the auditor's access log --------------------------------------------------------------------------
function auditFilters() {
  const f = $("#audit-filters").elements;
  const q = new URLSearchParams();
  for (const k of ["actor", "camera_id", "purpose", "mode", "decision", "kind"]) if (f[k].value.trim()) q.set(k, f[k].value.trim());
  for (const k of ["since", "until"]) if (f[k].value) q.set(k, f[k].value); // local time: the relay's zone
  return q;
}

async function loadAudit() {
  const q = auditFilters();
  q.set("limit", String(AUDIT_PAGE));
  q.set("offset", String(state.auditOffset));
  const response = await api(`/api/audit/entries?${q}`);
  if (!response.ok) { $("#audit-count").textContent = (await problems(response)).join(" "); return; }
  const data = await response.json();
  state.auditTotal = data.total;
  const entries = data.entries;
  $("#audit-count").textContent = t("con.audit_count", { from: data.total ? data.offset + 1 : 0, to: data.offset + data.entries.length, total: data.total });
  $("#audit-table tbody").replaceChildren(...entries.map((e) => el("tr", { dataset: { seq: String(e.seq) }, class: e.decision === "deny" ? "deny" : "" },
    el("td", {}, String(e.seq)), el("td", {}, when(e.ts)), el("td", {}, e.kind),
    el("td", {}, el("button", { type: "button", class: "link", onclick: () => history_("actor", e.actor) }, e.actor)),
    el("td", {}, e.camera_id ? el("button", { type: "button", class: "link", onclick: () => history_("camera_id", e.camera_id) }, e.camera_id) : ""),
    el("td", {}, e.purpose ? purposeName(e.purpose) : ""), el("td", {}, e.mode ? t(`mode.${e.mode}`) : ""),
    el("td", {}, e.decision ? t(`con.decision_${e.decision}`) : ""), el("td", { class: "small" }, e.reason || ""))));
  $("#audit-prev").disabled = state.auditOffset === 0;
  $("#audit-next").disabled = state.auditOffset + AUDIT_PAGE >= data.total;
  await loadDenials();
}

// A user's or a camera's history: the log filtered to them alone.
function history_(field, value) {
  const f = $("#audit-filters").elements;
  for (const k of ["actor", "camera_id", "purpose", "kind"]) f[k].value = "";
  f[field].value = value;
  state.auditOffset = 0;
  loadAudit();
}

async function loadDenials() {
  const q = auditFilters();
  const window = new URLSearchParams();
  for (const k of ["since", "until"]) if (q.get(k)) window.set(k, q.get(k));
  const response = await api(`/api/audit/stats?${window}`);
  if (!response.ok) return;
  const data = await response.json();
  const rows = [];
  for (const row of data.denials || []) rows.push(row);
  $("#denials-table tbody").replaceChildren(...rows.map((r) => el("tr", {},
    el("td", {}, r.month || ""), el("td", {}, r.kind || ""), el("td", {}, r.camera_id || "—"),
    el("td", {}, r.purpose ? purposeName(r.purpose) : "—"), el("td", {}, String(r.count)))));
}

async function verifyLog() {
  const box = $("#audit-verify-result");
  const response = await api("/api/audit/verify");
  if (!response.ok) { box.textContent = (await problems(response)).join(" "); return; }
  const v = await response.json();
  box.className = v.ok ? "verify ok" : "verify bad";
  box.replaceChildren(el("strong", {}, t(v.ok ? "con.verify_ok" : "con.verify_bad")),
    " ", t("con.verify_detail", { checked: v.checked, last: v.last_seq ?? "—", hash: String(v.last_hash || "").slice(0, 16) }),
    ...(v.problems || []).map((p) => el("div", { class: "error" }, typeof p === "string" ? p : JSON.stringify(p))));
}

async function exportLog(format) {
  const q = auditFilters();
  q.set("format", format);
  const response = await api(`/api/audit/export?${q}`);
  if (!response.ok) { $("#audit-count").textContent = (await problems(response)).join(" "); return; }
  const blob = await response.blob();
  const name = (/filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "") || [])[1] || `access-log.${format}`;
  const a = el("a", { href: URL.createObjectURL(blob), download: name });
  document.body.append(a);
  a.click();
  a.remove();
}

async function runReview() {
  const response = await api("/api/console/access-review");
  if (!response.ok) return;
  const data = await response.json();
  const table = $("#review-table");
  table.hidden = false;
  const sep = t("common.list_separator");
  $("tbody", table).replaceChildren(...data.users.map((u) => el("tr", { dataset: { user: u.username }, class: u.inactive || u.conflict ? "flag" : "" },
    el("td", {}, u.username), el("td", {}, u.roles.map(roleName).join(sep)),
    el("td", {}, u.rights.map((r) => t(`con.right_can_${r}`)).join(sep), u.conflict ? el("div", { class: "error small" }, t("con.review_conflict", { why: u.conflict })) : null),
    el("td", {}, u.last_sign_in ? when(u.last_sign_in) : t("con.review_never")),
    el("td", {}, !u.active ? t("con.disabled") : (u.inactive ? t("con.review_inactive", { days: data.inactive_days }) : t("con.enabled"))))));
}

// --- wiring ------------------------------------------------------------------------------------------
function relabel() {
  paintWhoami();
  if (!state.user || !state.tab) return;
  showTab(state.tab);
}

document.addEventListener("DOMContentLoaded", async () => {
  // Before anything is awaited: a sign-in submitted while the catalogues load must not leave as a form.
  $("#sign-in").addEventListener("submit", signIn);
  await I18N.init();
  state.config = await (await fetch("/ui/config.json")).json();
  document.addEventListener("i18n:change", relabel);
  state.masks = MaskEditor.create($("#mask-canvas"), { onChange: paintMaskCount });
  $("#sign-out").addEventListener("click", () => signOut());
  for (const b of document.querySelectorAll("#tabs .tab")) b.addEventListener("click", () => showTab(b.dataset.tab));
  $("#cam-search").addEventListener("input", paintCameras);
  $("#cam-new").addEventListener("click", () => editCamera(null));
  $("#cam-form").addEventListener("submit", (e) => saveCamera(e));
  $("#cam-cancel").addEventListener("click", () => { $("#cam-form").hidden = true; state.editing = null; });
  $("#mask-load").addEventListener("click", loadStill);
  $("#mask-draw").addEventListener("click", () => state.masks.startDrawing());
  $("#mask-finish").addEventListener("click", () => state.masks.finish());
  $("#mask-delete").addEventListener("click", () => state.masks.remove());
  for (const kind of ["purpose", "role"]) {
    $(`#${kind}-new`).addEventListener("click", () => editRecord(kind, null));
    $(`#${kind}-form`).addEventListener("submit", (e) => saveRecord(e, kind));
    $(`#${kind}-form .cancel`).addEventListener("click", () => { $(`#${kind}-form`).hidden = true; });
  }
  $("#rule-new").addEventListener("click", () => editRule(null));
  $("#rule-form").addEventListener("submit", saveRule);
  $("#rule-cancel").addEventListener("click", () => { $("#rule-form").hidden = true; });
  $("#preview-camera").addEventListener("change", preview);
  $("#file-export").addEventListener("click", exportPolicy);
  $("#file-check").addEventListener("click", () => checkPolicy(false));
  $("#file-import").addEventListener("click", () => checkPolicy(true));
  $("#file-open").addEventListener("change", async () => {
    const file = $("#file-open").files[0];
    if (file) $("#policy-text").value = await file.text();
  });
  $("#user-new").addEventListener("click", () => editUser(null));
  $("#user-form").addEventListener("submit", saveUser);
  $("#user-cancel").addEventListener("click", () => { $("#user-form").hidden = true; });
  $("#audit-filters").addEventListener("submit", (e) => { e.preventDefault(); state.auditOffset = 0; loadAudit(); });
  $("#audit-clear").addEventListener("click", () => { $("#audit-filters").reset(); state.auditOffset = 0; loadAudit(); });
  $("#audit-prev").addEventListener("click", () => { state.auditOffset = Math.max(0, state.auditOffset - AUDIT_PAGE); loadAudit(); });
  $("#audit-next").addEventListener("click", () => { state.auditOffset += AUDIT_PAGE; loadAudit(); });
  $("#audit-verify").addEventListener("click", verifyLog);
  $("#audit-export-csv").addEventListener("click", () => exportLog("csv"));
  $("#audit-export-json").addEventListener("click", () => exportLog("json"));
  $("#review-run").addEventListener("click", runReview);
  document.body.dataset.ready = "true";
  if (state.token) start();
});
