// Small bar charts in plain SVG (no library): a title and description for screen readers, a value on
// each bar, and the same numbers as a table beside it. Colours come from attributes, not style, so the
// pages' Content-Security-Policy (style-src 'self') holds.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";

  function node(name, attrs = {}, text = null) {
    const el = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    if (text !== null) el.textContent = text;
    return el;
  }

  // Clears the chart's container; with no items it says so (`empty`) and the caller draws nothing.
  function emptyChart(container, items, empty) {
    container.replaceChildren();
    if (items.length > 0) return false;
    const p = document.createElement("p");
    p.className = "muted small";
    p.textContent = empty || "";
    container.append(p);
    return true;
  }

  // Horizontal bars: one row per item, labels on the left. items: [{label, value}].
  function bars(container, items, { title, empty, color = "#2563eb" } = {}) {
    if (emptyChart(container, items, empty)) return;
    const rowH = 26;
    const labelW = 220;
    const width = 640;
    const max = Math.max(1, ...items.map((i) => i.value));
    const height = items.length * rowH + 8;
    const svg = node("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "bars" });
    svg.append(node("title", {}, title || ""));
    svg.append(node("desc", {}, items.map((i) => `${i.label}: ${i.value}`).join("; ")));
    items.forEach((item, n) => {
      const y = n * rowH + 4;
      const w = Math.round(((width - labelW - 60) * item.value) / max);
      svg.append(node("text", { x: labelW - 8, y: y + rowH / 2 + 5, "text-anchor": "end", class: "chart-label" }, item.label));
      svg.append(node("rect", { x: labelW, y: y + 3, width: Math.max(w, 1), height: rowH - 8, rx: 3, fill: color }));
      svg.append(node("text", { x: labelW + Math.max(w, 1) + 6, y: y + rowH / 2 + 5, class: "chart-value" }, String(item.value)));
    });
    container.append(svg);
  }

  // Vertical bars over time (months). items: [{label, value}] in order.
  function columns(container, items, { title, empty, color = "#2563eb" } = {}) {
    if (emptyChart(container, items, empty)) return;
    const width = 640;
    const height = 220;
    const bottom = 30;
    const top = 20;
    const max = Math.max(1, ...items.map((i) => i.value));
    const slot = (width - 20) / items.length;
    const barW = Math.min(48, slot * 0.7);
    const svg = node("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "columns" });
    svg.append(node("title", {}, title || ""));
    svg.append(node("desc", {}, items.map((i) => `${i.label}: ${i.value}`).join("; ")));
    svg.append(node("line", { x1: 10, x2: width - 10, y1: height - bottom, y2: height - bottom, class: "axis" }));
    items.forEach((item, n) => {
      const h = Math.round(((height - bottom - top) * item.value) / max);
      const x = 10 + n * slot + (slot - barW) / 2;
      svg.append(node("rect", { x, y: height - bottom - h, width: barW, height: Math.max(h, 1), rx: 3, fill: color }));
      svg.append(node("text", { x: x + barW / 2, y: height - bottom - h - 5, "text-anchor": "middle", class: "chart-value" }, String(item.value)));
      svg.append(node("text", { x: x + barW / 2, y: height - 10, "text-anchor": "middle", class: "chart-label" }, item.label));
    });
    container.append(svg);
  }

  return { bars, columns };
})();
