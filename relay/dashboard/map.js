// The camera map of the dashboard and the public page: Leaflet (vendored), markers as vector circles.
// Tiles come only from the tile service the relay is configured with (/ui/config.json); without one the
// markers are drawn over a plain background. Many cameras: drawn on one canvas instead of SVG elements.
"use strict";

const CameraMap = (() => {
  const CANVAS_FROM = 500; // cameras; below this each marker is an SVG element (testable, crisp)

  function create(el, config, options = {}) {
    const map = L.map(el, {
      zoomControl: false, attributionControl: Boolean(config.attribution), preferCanvas: false,
      keyboard: true, worldCopyJump: false,
    }).setView(config.center || [25.0478, 121.5319], config.zoom || 12);
    if (config.attribution) map.attributionControl.setPrefix(false);
    if (config.tile_url) {
      L.tileLayer(config.tile_url, { attribution: config.attribution || "", maxZoom: 19 }).addTo(map);
    } else {
      el.classList.add("map-plain");
    }
    let zoom = null;
    const zoomControl = () => {
      if (zoom) zoom.remove();
      const t = (k, f) => (typeof I18N !== "undefined" ? I18N.t(k) : f);
      zoom = L.control.zoom({ zoomInTitle: t("map.zoom_in", "Zoom in"), zoomOutTitle: t("map.zoom_out", "Zoom out") });
      zoom.addTo(map);
    };
    zoomControl();
    const layer = L.featureGroup().addTo(map);
    const markers = new Map(); // camera id -> marker
    let renderer = null;
    let fitted = false;

    function setCameras(cameras) {
      layer.clearLayers();
      markers.clear();
      const located = cameras.filter((c) => c.latitude != null && c.longitude != null);
      renderer = located.length >= CANVAS_FROM ? L.canvas({ padding: 0.2 }) : L.svg();
      for (const cam of located) {
        const marker = L.circleMarker([cam.latitude, cam.longitude], {
          renderer, radius: 7, weight: 2, color: "#ffffff", fillColor: options.color ? options.color(cam) : "#2563eb",
          fillOpacity: 0.9, className: `camera-marker camera-${cssId(cam.id)}`,
        });
        marker.cameraId = cam.id;
        marker.bindTooltip(() => (options.tooltip ? options.tooltip(cam) : cam.name), { direction: "top" });
        if (options.onSelect) marker.on("click", () => options.onSelect(cam));
        marker.addTo(layer);
        markers.set(cam.id, marker);
      }
      if (!fitted && located.length > 0) {
        fitted = true;
        map.fitBounds(layer.getBounds(), { padding: [20, 20], maxZoom: 16 });
      }
      el.dataset.markers = String(markers.size);
      return cameras.length - located.length; // without a location: not on the map
    }

    // Show only these camera ids (filters); null shows all.
    function setVisible(ids) {
      let shown = 0;
      for (const [id, marker] of markers) {
        const visible = ids === null || ids.has(id);
        if (visible && !layer.hasLayer(marker)) layer.addLayer(marker);
        if (!visible && layer.hasLayer(marker)) layer.removeLayer(marker);
        if (visible) shown += 1;
      }
      el.dataset.markers = String(shown);
    }

    function recolor(color) {
      for (const marker of markers.values()) {
        const fill = color(marker.cameraId);
        if (marker.options.fillColor !== fill) marker.setStyle({ fillColor: fill }); // redraw only changes
      }
    }

    return { map, setCameras, setVisible, recolor, relabel: zoomControl, get size() { return markers.size; } };
  }

  function cssId(id) {
    return String(id).replace(/[^A-Za-z0-9_-]/g, "_");
  }

  return { create, cssId };
})();
