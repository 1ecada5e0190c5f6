// The privacy-mask editor: polygons in normalized [0, 1] picture coordinates (as the camera stores them),
// drawn over the camera's anonymized still on a canvas. Draw: click corners, close on the first corner or
// with finish(). Drag a corner to move it, drag inside a polygon to move it whole; the selected polygon goes
// with remove() or the Delete key. The still is drawn from an ImageBitmap, so no image URL is ever made.
"use strict";

const MaskEditor = (() => {
  const HANDLE = 7; // px: how near a corner a press grabs it
  const MAX_MASKS = 32, MAX_POINTS = 64; // as the API bounds them

  function create(canvas, { onChange = () => {} } = {}) {
    const ctx = canvas.getContext("2d");
    let masks = [], picture = null, drawing = null, selected = -1, drag = null;

    const size = () => [canvas.width, canvas.height];
    const clamp = (v) => Math.min(1, Math.max(0, v));
    function at(event) {
      const r = canvas.getBoundingClientRect();
      return [clamp((event.clientX - r.left) / r.width), clamp((event.clientY - r.top) / r.height)];
    }
    function near(a, b) {
      const [w, h] = size(), r = canvas.getBoundingClientRect(), sx = w / r.width;
      return Math.hypot((a[0] - b[0]) * w, (a[1] - b[1]) * h) <= HANDLE * sx;
    }
    function inside(p, poly) { // even-odd ray cast
      let hit = false;
      for (let i = 0, j = poly.length - 1; i < poly.length; j = i, i += 1) {
        const [xi, yi] = poly[i], [xj, yj] = poly[j];
        if ((yi > p[1]) !== (yj > p[1]) && p[0] < ((xj - xi) * (p[1] - yi)) / (yj - yi) + xi) hit = !hit;
      }
      return hit;
    }

    function paint() {
      const [w, h] = size();
      ctx.clearRect(0, 0, w, h);
      if (picture) ctx.drawImage(picture, 0, 0, w, h);
      else { ctx.fillStyle = "#223041"; ctx.fillRect(0, 0, w, h); }
      const path = (poly, close) => {
        ctx.beginPath();
        poly.forEach(([x, y], i) => (i ? ctx.lineTo(x * w, y * h) : ctx.moveTo(x * w, y * h)));
        if (close) ctx.closePath();
      };
      masks.forEach((poly, i) => {
        path(poly, true);
        ctx.fillStyle = i === selected ? "rgba(240, 180, 41, 0.45)" : "rgba(37, 99, 235, 0.4)";
        ctx.fill();
        ctx.lineWidth = 2;
        ctx.strokeStyle = i === selected ? "#f0b429" : "#ffffff";
        ctx.stroke();
        for (const [x, y] of poly) { ctx.fillStyle = "#ffffff"; ctx.fillRect(x * w - 3, y * h - 3, 6, 6); }
      });
      if (drawing && drawing.length) {
        path(drawing, false);
        ctx.strokeStyle = "#f0b429";
        ctx.setLineDash([6, 4]);
        ctx.stroke();
        ctx.setLineDash([]);
        for (const [x, y] of drawing) { ctx.fillStyle = "#f0b429"; ctx.fillRect(x * w - 3, y * h - 3, 6, 6); }
      }
      canvas.dataset.masks = String(masks.length);
    }

    function changed() { paint(); onChange(masks); }

    function finish() {
      if (drawing && drawing.length >= 3 && masks.length < MAX_MASKS) {
        masks.push(drawing);
        selected = masks.length - 1;
      }
      drawing = null;
      canvas.classList.remove("drawing");
      changed();
    }

    canvas.addEventListener("pointerdown", (event) => {
      const p = at(event);
      if (drawing) {
        if (drawing.length >= 3 && near(p, drawing[0])) { finish(); return; }
        if (drawing.length < MAX_POINTS) drawing.push(p);
        paint();
        return;
      }
      for (let i = masks.length - 1; i >= 0; i -= 1) { // topmost first
        const corner = masks[i].findIndex((q) => near(p, q));
        if (corner >= 0) { selected = i; drag = { poly: i, corner, from: p }; paint(); return; }
      }
      selected = masks.findLastIndex((poly) => inside(p, poly));
      drag = selected >= 0 ? { poly: selected, corner: -1, from: p, start: masks[selected].map((q) => [...q]) } : null;
      if (drag) canvas.setPointerCapture(event.pointerId);
      paint();
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!drag) return;
      const p = at(event);
      if (drag.corner >= 0) masks[drag.poly][drag.corner] = p;
      else {
        const dx = p[0] - drag.from[0], dy = p[1] - drag.from[1];
        masks[drag.poly] = drag.start.map(([x, y]) => [clamp(x + dx), clamp(y + dy)]);
      }
      paint();
    });
    canvas.addEventListener("pointerup", () => { if (drag) { drag = null; changed(); } });
    canvas.addEventListener("keydown", (event) => {
      if (event.key === "Delete" || event.key === "Backspace") { event.preventDefault(); remove(); }
      if (event.key === "Escape") { drawing = null; paint(); }
      if (event.key === "Enter" && drawing) { event.preventDefault(); finish(); }
    });

    function remove() {
      if (selected < 0) return;
      masks.splice(selected, 1);
      selected = -1;
      changed();
    }

    function startDrawing() { drawing = []; selected = -1; canvas.classList.add("drawing"); canvas.focus(); paint(); }

    function setMasks(list) {
      masks = (list || []).map((poly) => poly.map(([x, y]) => [x, y]));
      selected = -1; drawing = null;
      paint();
    }

    function setPicture(bitmap) {
      picture = bitmap;
      if (bitmap) { canvas.width = bitmap.width; canvas.height = bitmap.height; }
      paint();
    }

    // Rounded to 1/10000 of the picture: enough for any camera, and a stable record in the log.
    const round = (v) => Math.round(v * 10000) / 10000;
    const value = () => masks.map((poly) => poly.map(([x, y]) => [round(x), round(y)]));

    paint();
    return { setMasks, setPicture, startDrawing, finish, remove, value, get count() { return masks.length; } };
  }

  return { create };
})();
