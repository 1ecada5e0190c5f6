// Messages in Traditional Chinese (first) and English: one JSON catalogue per language under /static/i18n/.
// The language is the one chosen with the switch (kept in localStorage), else the browser's first zh* or en*
// language, else zh-TW. Elements carry data-i18n="key" (their text) or data-i18n-attr="attr:key;attr:key".
// Refusal reasons from the server are mapped to translated messages by pattern; the server's own text
// stays beside them as the detail (it is what the access log says).
"use strict";

const I18N = (() => {
  const LANGS = ["zh-TW", "en"];
  const catalogs = {};
  let lang = "zh-TW";

  function preferred() {
    const saved = localStorage.getItem("cctv_lang");
    if (LANGS.includes(saved)) return saved;
    for (const l of navigator.languages || [navigator.language || ""]) {
      if (/^zh\b/i.test(l)) return "zh-TW";
      if (/^en\b/i.test(l)) return "en";
    }
    return "zh-TW";
  }

  async function load(l) {
    if (!catalogs[l]) {
      const response = await fetch(`/static/i18n/${l}.json`);
      catalogs[l] = await response.json();
    }
    return catalogs[l];
  }

  function t(key, params) {
    const text = (catalogs[lang] || {})[key];
    if (text === undefined) {
      console.warn(`i18n: no ${lang} message for ${key}`);
      return key;
    }
    return text.replace(/\{(\w+)\}/g, (m, k) => (params && params[k] !== undefined ? String(params[k]) : m));
  }

  function apply(root = document) {
    for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of root.querySelectorAll("[data-i18n-attr]")) {
      for (const pair of el.dataset.i18nAttr.split(";")) {
        const [attr, key] = pair.split(":");
        if (attr && key) el.setAttribute(attr.trim(), t(key.trim()));
      }
    }
    if (root === document) {
      document.documentElement.lang = lang;
      const title = document.querySelector("title[data-i18n]");
      if (title) document.title = t(title.dataset.i18n);
    }
  }

  async function setLanguage(l) {
    if (!LANGS.includes(l)) return;
    await load(l);
    lang = l;
    localStorage.setItem("cctv_lang", l);
    apply(document);
    const select = document.getElementById("lang");
    if (select) select.value = l;
    document.dispatchEvent(new CustomEvent("i18n:change", { detail: { lang: l } }));
  }

  async function init() {
    lang = preferred();
    await load(lang);
    apply(document);
    const select = document.getElementById("lang");
    if (select) {
      select.value = lang;
      select.addEventListener("change", () => setLanguage(select.value));
    }
  }

  // A display name from a policy record: labels[lang], else its plain label, else English, else the id.
  function label(record, fallback) {
    if (!record) return fallback;
    const labels = record.labels || {};
    return labels[lang] || record.label || labels.en || fallback;
  }

  // Refusal and end reasons as the policy engine, the WHEP endpoint and the APIs word them.
  const REASONS = [
    [/unknown mode/, "reason.unknown_mode"],
    [/user disabled|account disabled/, "reason.account_disabled"],
    [/unknown camera|is not available/, "reason.unknown_camera"],
    [/camera \S+ disabled/, "reason.camera_disabled"],
    [/unknown purpose/, "reason.unknown_purpose"],
    [/not approved for purpose/, "reason.camera_not_approved"],
    [/does not allow raw view/, "reason.purpose_no_raw"],
    [/may not view video/, "reason.role_cannot_view"],
    [/no rule grants mode/, "reason.no_rule_mode"],
    [/no rule grants role/, "reason.no_rule"],
    [/outside time window/, "reason.outside_window"],
    [/needs a case reference/, "reason.needs_case_ref"],
    [/no approved raw-view request/, "reason.no_raw_approval"],
    [/raw-view request \S+ revoked/, "reason.raw_revoked"],
    [/raw-view request \S+ denied/, "reason.raw_denied"],
    [/raw-view request \S+ (pending|expired)/, "reason.raw_not_approved"],
    [/raw-view approval \S+ expired|session expired|expired/, "reason.expired"],
    [/was not used in time/, "reason.raw_not_used"],
    [/stream stopped/, "reason.stream_stopped"],
    [/cannot be streamed right now/, "reason.camera_unavailable"],
    [/viewer ended the session/, "reason.viewer_ended"],
    [/ended by admin/, "reason.admin_ended"],
    [/shutting down/, "reason.shutdown"],
    [/invalid username or password/, "reason.bad_password"],
    [/too many failed attempts/, "reason.too_many_attempts"],
    [/token|authentication required/, "reason.signed_out"],
    [/your roles do not grant/, "reason.no_permission"],
    [/someone other than the requester/, "reason.self_approval"],
    [/only an administrator, an approver or the requester/, "reason.revoke_forbidden"],
    [/no such session|session ended/, "reason.session_ended"],
  ];

  // {message, detail}: the translated reason (or null when no pattern knows it) and the server's text.
  function reason(serverText) {
    const text = String(serverText || "");
    for (const [pattern, key] of REASONS) {
      if (pattern.test(text)) return { message: t(key), detail: text };
    }
    return { message: null, detail: text };
  }

  return { init, t, apply, setLanguage, label, reason, get lang() { return lang; }, LANGS, REASONS };
})();
