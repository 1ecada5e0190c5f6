// The public camera register as a page (no login): map, list, counts per district and monthly views,
// drawn from the register's own JSON (/public/*.json) and nothing else: no stream, no URL, no name of
// anyone who watched.
"use strict";

const pub = { cameras: [], districts: {}, stats: null, map: null };
const $ = (sel, root = document) => root.querySelector(sel);
const t = (key, params) => I18N.t(key, params);

function purposeNames(cam) {
  return cam.purposes.map((p) => I18N.label(p, p.id));
}

function purposeLabels() {
  const out = {};
  for (const cam of pub.cameras) for (const p of cam.purposes) out[p.id] = p;
  return out;
}

function matches(cam) {
  const district = $("#pub-district").value;
  const text = $("#pub-search").value.trim().toLowerCase();
  if (district && (cam.location.district || "") !== district) return false;
  if (text && ![cam.name, cam.location.address, cam.location.district, cam.agency].join(" ").toLowerCase().includes(text)) return false;
  return true;
}

function cell(tr, field, text) {
  const td = document.createElement("td");
  td.dataset.field = field;
  td.textContent = text;
  tr.append(td);
}

function paintList() {
  const shown = new Set();
  const rows = pub.cameras.filter(matches).map((cam) => {
    shown.add(cam.id);
    const tr = document.createElement("tr");
    tr.dataset.camera = cam.id;
    cell(tr, "name", cam.name);
    cell(tr, "address", cam.location.address || "");
    cell(tr, "district", cam.location.district || t("pub.unknown_district"));
    cell(tr, "agency", cam.agency || "");
    cell(tr, "purposes", purposeNames(cam).join(t("common.list_separator")));
    cell(tr, "signage", cam.signage ? t("pub.signage_yes") : t("pub.signage_no"));
    return tr;
  });
  $("#pub-cameras tbody").replaceChildren(...rows);
  if (pub.map) pub.map.setVisible($("#pub-district").value || $("#pub-search").value.trim() ? shown : null);
  $("#pub-count").textContent = t("filter.count", { shown: shown.size, total: pub.cameras.length });
}

function paintDistrictChoices() {
  const select = $("#pub-district");
  const current = select.value;
  const names = Object.keys(pub.districts).filter((d) => d !== "unknown");
  select.replaceChildren(new Option(t("filter.any"), ""), ...names.map((d) => new Option(d, d)));
  select.value = names.includes(current) ? current : "";
}

function paintCharts() {
  Charts.bars($("#districts-chart"), Object.entries(pub.districts).map(([d, n]) => ({
    label: d === "unknown" ? t("pub.unknown_district") : d, value: n })),
  { title: t("pub.districts_title"), empty: t("pub.no_data") });
  const stats = pub.stats || { views: [], monthly_totals: {} };
  $("#stats-note").textContent = t("pub.stats_note", { tz: stats.timezone || "Asia/Taipei" });
  Charts.columns($("#monthly-chart"), Object.entries(stats.monthly_totals || {}).map(([m, n]) => ({ label: m, value: n })),
    { title: t("pub.monthly_title"), empty: t("pub.no_views") });
  const labels = purposeLabels();
  const byPurpose = {};
  const byMode = {};
  for (const row of stats.views || []) {
    byPurpose[row.purpose] = (byPurpose[row.purpose] || 0) + row.count;
    byMode[row.mode] = (byMode[row.mode] || 0) + row.count;
  }
  Charts.bars($("#purpose-chart"), Object.entries(byPurpose).sort((a, b) => b[1] - a[1]).map(([p, n]) => ({
    label: I18N.label(labels[p], p), value: n })), { title: t("pub.by_purpose_title"), empty: t("pub.no_views") });
  Charts.bars($("#mode-chart"), Object.entries(byMode).map(([m, n]) => ({
    label: ["anonymized", "raw"].includes(m) ? t(`mode.${m}_long`) : m, value: n })),
  { title: t("pub.by_mode_title"), empty: t("pub.no_views"), color: "#6e40c9" });
}

function paintAll() {
  paintDistrictChoices();
  paintList();
  paintCharts();
  if (pub.map) pub.map.relabel();
}

async function load() {
  const [cams, stats, config] = await Promise.all([
    fetch("/public/cameras.json").then((r) => r.json()),
    fetch("/public/stats.json").then((r) => r.json()),
    fetch("/ui/config.json").then((r) => r.json()),
  ]);
  pub.cameras = cams.cameras;
  pub.districts = cams.districts;
  pub.stats = stats;
  pub.map = CameraMap.create($("#map"), config.map, {
    tooltip: (cam) => `${cam.name}${cam.district ? ` · ${cam.district}` : ""}`,
    onSelect: (cam) => {
      const row = document.querySelector(`#pub-cameras tr[data-camera="${CSS.escape(cam.id)}"]`);
      if (row) { row.scrollIntoView({ block: "center" }); row.classList.add("flash"); setTimeout(() => row.classList.remove("flash"), 1500); }
    },
  });
  pub.map.setCameras(pub.cameras.map((c) => ({ id: c.id, name: c.name, district: c.location.district,
    latitude: c.location.latitude, longitude: c.location.longitude })));
  paintAll();
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", async () => {
  await I18N.init();
  document.addEventListener("i18n:change", paintAll);
  $("#pub-district").addEventListener("input", paintList);
  $("#pub-search").addEventListener("input", paintList);
  await load();
});
