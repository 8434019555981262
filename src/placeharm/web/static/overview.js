// The overview as a dashboard (issue 15): cross-filtering, the map's colour choice and
// "zoom to where the harm is". Every filter is a link (?area=CODE) the server renders on its
// own, so the page works without JavaScript and a copied URL shares the filter; here a click
// swaps the filtered panels in place instead of reloading, and the map follows.
// The map itself is drawn by app.js, which tells us about it through two events:
// "placeharm:overview-map" (the map and its GeoJSON, once loaded) and "placeharm:area" (an
// area clicked on the map; cancelled here so app.js does not open the area's page).

const VIRIDIS = ["#fde725", "#5ec962", "#21918c", "#3b528b", "#440154"];  // as app.js
const NONE = "#e4e4e4";
let overviewMap = null;
let overviewGeo = null;
const SWAPPED = ["dashboard", "outcomes"];  // the panels a filter changes

function liveRegion() {
  let node = document.getElementById("focus-status");
  if (!node) {
    node = document.createElement("p");
    node.id = "focus-status";
    node.className = "visually-hidden";
    node.setAttribute("aria-live", "polite");
    document.body.appendChild(node);
  }
  return node;
}

function focusUrl(code) {
  const url = new URL(window.location.href);
  if (code) url.searchParams.set("area", code); else url.searchParams.delete("area");
  return url;
}

function currentFocus() {
  return new URL(window.location.href).searchParams.get("area") || "";
}

function markCurrent(code) {
  // the table's row and the list's item of the focused area
  document.querySelectorAll("#ranking tr[data-code], .top-areas li").forEach((row) => {
    const link = row.querySelector("a[data-area]");
    const rowCode = row.dataset.code || (link && link.dataset.area);
    if (code && rowCode === code) row.setAttribute("aria-current", "true");
    else row.removeAttribute("aria-current");
  });
  highlight(code);
}

async function applyFocus(url, push) {
  const status = liveRegion();
  status.textContent = "Filtering…";
  let response;
  try {
    response = await fetch(url.toString(), { headers: { Accept: "text/html" }, cache: "no-store" });
  } catch (err) {
    window.location.href = url.toString();  // fall back to the plain link
    return;
  }
  if (!response.ok) { window.location.href = url.toString(); return; }
  const doc = new DOMParser().parseFromString(await response.text(), "text/html");
  // a link inside a swapped panel goes with it: keep the reader's place at the panel's heading
  const active = document.activeElement;
  const lost = SWAPPED.some((id) => { const el = document.getElementById(id); return el && el.contains(active); });
  for (const id of SWAPPED) {
    const fresh = doc.getElementById(id);
    const here = document.getElementById(id);
    if (fresh && here) here.replaceWith(document.importNode(fresh, true));
  }
  const data = doc.getElementById("page-data");
  const mine = document.getElementById("page-data");
  if (data && mine) mine.textContent = data.textContent;
  document.title = doc.title;
  if (push) history.pushState({ area: url.searchParams.get("area") || "" }, "", url.toString());
  const code = url.searchParams.get("area") || "";
  markCurrent(code);
  const heading = document.getElementById("dash-h");
  if (lost && heading) { heading.tabIndex = -1; heading.focus(); }
  const focus = document.querySelector("#dashboard .focus-bar strong");
  status.textContent = code && focus ? `Filtered to ${focus.textContent}.` : "Filter cleared: the whole force.";
  if (code) zoomToArea(code);
}

// a filter link anywhere on the page (table, list, cards): swap in place
document.addEventListener("click", (event) => {
  const link = event.target.closest && event.target.closest("a[data-area]");
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  applyFocus(focusUrl(link.dataset.area), true);
});

// an area clicked on the map
document.addEventListener("placeharm:area", (event) => {
  event.preventDefault();
  applyFocus(focusUrl(event.detail.area_code), true);
});

window.addEventListener("popstate", () => { applyFocus(new URL(window.location.href), false); });

// -- the map: colour by a measure, zoom, highlight -------------------------------------------

function boxOf(features) {
  let box = [180, 90, -180, -90];
  const walk = (c) => {
    if (typeof c[0] === "number") {
      box = [Math.min(box[0], c[0]), Math.min(box[1], c[1]), Math.max(box[2], c[0]), Math.max(box[3], c[1])];
    } else c.forEach(walk);
  };
  features.forEach((f) => walk(f.geometry.coordinates));
  return box[0] > box[2] ? null : [[box[0], box[1]], [box[2], box[3]]];
}

function breaksFor(values) {
  const sorted = values.filter((v) => v > 0).sort((a, b) => a - b);
  const q = (p) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : 1;
  const breaks = [q(0.2), q(0.4), q(0.6), q(0.8)];
  for (let i = 0; i < breaks.length; i++) {  // step stops must rise strictly
    const floor = i ? breaks[i - 1] : 0;
    if (!(breaks[i] > floor)) breaks[i] = floor + 1e-6;
  }
  return breaks;
}

function recolour(property, label) {
  if (!overviewMap || !overviewGeo || !overviewMap.getLayer("fill")) return;
  const breaks = breaksFor(overviewGeo.features.map((f) => Number(f.properties[property]) || 0));
  overviewMap.setPaintProperty("fill", "fill-color", ["case", ["<=", ["coalesce", ["get", property], 0], 0], NONE,
    ["step", ["get", property], VIRIDIS[0], breaks[0], VIRIDIS[1], breaks[1], VIRIDIS[2], breaks[2], VIRIDIS[3], breaks[3], VIRIDIS[4]]]);
  const legend = document.getElementById("legend");
  if (!legend || overviewGeo.no_soc_data) return;
  const round = (v) => (v < 10 ? Math.round(v * 10) / 10 : Math.round(v)).toLocaleString("en-GB");
  const edges = [0, ...breaks].map(round);
  const swatch = (colour) => { const s = document.createElement("span"); s.style.background = colour; return s; };
  const items = [document.createTextNode(`${label}: `), swatch(NONE), document.createTextNode("none ")];
  VIRIDIS.forEach((c, i) => items.push(swatch(c), document.createTextNode(`${i < 4 ? "up to " + edges[i + 1] : edges[4] + " or more"} `)));
  legend.replaceChildren(...items);
}

function highlight(code) {
  if (!overviewMap || !overviewMap.getLayer("focus-line")) return;
  overviewMap.setFilter("focus-line", ["==", ["get", "area_code"], code || ""]);
}

function zoomToArea(code) {
  if (!overviewMap || !overviewGeo) return;
  const box = boxOf(overviewGeo.features.filter((f) => f.properties.area_code === code));
  if (box) overviewMap.fitBounds(box, { padding: 40, maxZoom: 12, duration: 0 });
}

function zoomToHarm() {
  // the areas holding the top half of the SOC harm (at least five): where a leader looks first
  if (!overviewMap || !overviewGeo) return;
  const harmed = overviewGeo.features.filter((f) => (f.properties.soc_harm || 0) > 0)
    .sort((a, b) => b.properties.soc_harm - a.properties.soc_harm);
  const total = harmed.reduce((s, f) => s + f.properties.soc_harm, 0);
  const chosen = [];
  let sum = 0;
  for (const f of harmed) {
    if (chosen.length >= 5 && sum >= total / 2) break;
    chosen.push(f); sum += f.properties.soc_harm;
  }
  const box = boxOf(chosen);
  if (box) overviewMap.fitBounds(box, { padding: 30, duration: 0 });
}

document.addEventListener("placeharm:overview-map", (event) => {
  overviewMap = event.detail.map;
  overviewGeo = event.detail.geo;
  overviewMap.addLayer({ id: "focus-line", type: "line", source: "areas", filter: ["==", ["get", "area_code"], ""],
    paint: { "line-color": "#d4351c", "line-width": 3 } });
  const tools = document.getElementById("map-tools");
  const select = document.getElementById("colour-by");
  if (tools) tools.hidden = false;
  if (select) {
    const wanted = new URL(window.location.href).searchParams.get("colour");
    if (wanted && [...select.options].some((o) => o.value === wanted)) select.value = wanted;
    const apply = () => {
      recolour(select.value, select.selectedOptions[0].textContent);
      const url = new URL(window.location.href);  // the colour travels with a copied link
      if (select.value === "soc_harm") url.searchParams.delete("colour"); else url.searchParams.set("colour", select.value);
      history.replaceState(history.state, "", url.toString());
    };
    select.onchange = apply;
    if (select.value !== "soc_harm") apply();
  }
  const harm = document.getElementById("zoom-harm");
  const all = document.getElementById("zoom-all");
  if (harm) harm.onclick = zoomToHarm;
  if (all) all.onclick = () => { const box = boxOf(overviewGeo.features); if (box) overviewMap.fitBounds(box, { padding: 10, duration: 0 }); };
  const code = currentFocus();
  highlight(code);
  if (code) zoomToArea(code);
});
