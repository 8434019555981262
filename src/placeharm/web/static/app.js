// placeharm pages: live updates (server-sent events), maps (MapLibre GL), charts (Plotly).
// Everything is served by the placeharm server itself: no request leaves the machine.

// The CSRF token of this page (docs/security/csrf-and-limits.md): every POST we make sends it
// in the X-CSRF-Token header.
const CSRF_TOKEN = document.querySelector('meta[name="csrf-token"]')?.content || "";
const dataNode = document.getElementById("page-data");
const page = dataNode ? JSON.parse(dataNode.textContent) : null;
// The force's base map, if configured (settings tile_url or pmtiles); else a plain background.
const basemapNode = document.getElementById("basemap");
const BASEMAP = basemapNode ? JSON.parse(basemapNode.textContent) : null;

// A colour-blind-safe sequential palette (viridis, 5 steps) and matching point colours.
const VIRIDIS = ["#fde725", "#5ec962", "#21918c", "#3b528b", "#440154"];
const NONE = "#e4e4e4";
const POINTS = { crimes: "#3b528b", incidents: "#e66101", intelligence: "#1b7837",
  addresses: "#c51b7d", force_crimes: "#8c510a" };  // the radius page's swatches in style.css match
const CHB = "#762a83";  // CHB site outlines (purple, dashed)
// The MapLibre maps drawn on this page: removed (their WebGL contexts freed) before a live
// update replaces the content they are drawn in.
const maps = [];
const BLANK_STYLE = {
  version: 8,
  sources: {},
  layers: [{ id: "background", type: "background", paint: { "background-color": "#f4f4f2" } }],
};

function addBasemap(map) {
  // Beneath everything else: call first in the map's load handler.
  if (!BASEMAP) return;
  // tiles on this server are given as paths; MapLibre fetches vector tiles in a worker,
  // where a path has no base, so make them absolute
  const tiles = BASEMAP.source.tiles.map((t) => (t.startsWith("/") ? window.location.origin + t : t));
  map.addSource("basemap", { ...BASEMAP.source, tiles });
  if (BASEMAP.source.type === "raster") {
    map.addLayer({ id: "basemap", type: "raster", source: "basemap" });
    return;
  }
  // vector tiles: a plain drawing of whatever layers the archive has (areas, then lines)
  const polygons = ["match", ["geometry-type"], ["Polygon", "MultiPolygon"], true, false];
  const lines = ["match", ["geometry-type"], ["LineString", "MultiLineString"], true, false];
  for (const layer of BASEMAP.vector_layers || []) {
    map.addLayer({ id: `basemap-${layer}-fill`, type: "fill", source: "basemap", "source-layer": layer,
      filter: polygons, paint: { "fill-color": "#e6e6e0", "fill-outline-color": "#d0d0c8" } });
  }
  for (const layer of BASEMAP.vector_layers || []) {
    map.addLayer({ id: `basemap-${layer}-line`, type: "line", source: "basemap", "source-layer": layer,
      filter: lines, paint: { "line-color": "#c4c4bc", "line-width": 0.7 } });
  }
}

function newMap(options) {
  const map = new maplibregl.Map(options);
  maps.push(map);
  return map;
}

function mapControls(map) {
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }));
  if (BASEMAP && BASEMAP.source.attribution) map.addControl(new maplibregl.AttributionControl({ compact: true }));
}

function liveUpdates() {
  const status = document.getElementById("live-status");
  const asOf = document.getElementById("as-of");
  if (!status || !window.EventSource) return;
  const source = new EventSource("/events");
  let first = true;
  source.addEventListener("data", (event) => {
    const payload = JSON.parse(event.data);
    if (asOf && payload.data_as_of) asOf.textContent = payload.data_as_of;
    status.textContent = "Live.";
    if (!first && page && payload.import_id !== page.import_id) {
      status.textContent = "New data arrived: updating…";
      refreshSoon();
    }
    first = false;
  });
  source.addEventListener("signed-out", () => {
    source.close();
    status.textContent = "Signed out: live updates stopped.";
  });
  source.onerror = () => { status.textContent = "Live updates paused (reconnecting)."; };
}

let refreshing = null;  // the refresh under way, if any
let again = false;  // data arrived while it ran: refresh once more when it is done

function refreshSoon() {
  // One refresh at a time; updates that arrive meanwhile make one more, not one each.
  if (refreshing) { again = true; return; }
  refreshing = refresh().finally(() => {
    refreshing = null;
    if (again) { again = false; refreshSoon(); }
  });
}

async function refresh() {
  // Re-fetch this page and swap its main content in place: no reload, focus kept.
  // X-Placeharm-Live: a page someone waits on for new data, built before others queued
  const response = await fetch(window.location.href,
    { headers: { Accept: "text/html", "X-Placeharm-Live": "1" }, cache: "no-store" });
  if (!response.ok) return;
  const html = await response.text();
  const doc = new DOMParser().parseFromString(html, "text/html");
  const fresh = doc.getElementById("main");
  const freshData = doc.getElementById("page-data");
  // keep what the user is reading that the server does not render (an upload's result)
  const result = document.getElementById("upload-result");
  const kept = result ? Array.from(result.childNodes) : [];
  if (fresh) maps.splice(0).forEach((m) => m.remove());
  if (fresh) document.getElementById("main").replaceChildren(...Array.from(fresh.childNodes));
  const newResult = document.getElementById("upload-result");
  if (newResult && kept.length) newResult.replaceChildren(...kept);
  if (freshData && dataNode) {
    dataNode.textContent = freshData.textContent;
    Object.assign(page, JSON.parse(freshData.textContent));
  }
  const status = document.getElementById("live-status");
  if (status) status.textContent = "Updated with new data.";
  draw();
}

function bounds(coordinates, box = [180, 90, -180, -90]) {
  if (typeof coordinates[0] === "number") {
    const [x, y] = coordinates;
    return [Math.min(box[0], x), Math.min(box[1], y), Math.max(box[2], x), Math.max(box[3], y)];
  }
  return coordinates.reduce((b, c) => bounds(c, b), box);
}

async function overviewMap() {
  const node = document.getElementById("map");
  if (!node || !window.maplibregl) return;
  const query = new URLSearchParams(page.filters).toString();
  const geo = await (await fetch(`/api/overview.geojson?${query}`)).json();
  // classes over the areas with any SOC harm; areas with none are grey
  const values = geo.features.map((f) => f.properties.soc_harm || 0).filter((v) => v > 0).sort((a, b) => a - b);
  const q = (p) => values.length ? values[Math.min(values.length - 1, Math.floor(p * values.length))] : 1;
  const breaks = [q(0.2), q(0.4), q(0.6), q(0.8)];
  for (let i = 0; i < breaks.length; i++) {  // step stops must rise strictly
    const floor = i ? breaks[i - 1] : 0;
    if (!(breaks[i] > floor)) breaks[i] = floor + 1e-6;
  }
  const box = bounds(geo.features.map((f) => f.geometry.coordinates));
  const map = newMap({ container: node, style: BLANK_STYLE, bounds: [[box[0], box[1]], [box[2], box[3]]],
    fitBoundsOptions: { padding: 10 }, attributionControl: false });
  mapControls(map);
  map.on("load", () => {
    addBasemap(map);
    map.addSource("areas", { type: "geojson", data: geo });
    map.addLayer({ id: "fill", type: "fill", source: "areas", paint: {
      "fill-color": ["case", ["<=", ["coalesce", ["get", "soc_harm"], 0], 0], NONE,
        ["step", ["get", "soc_harm"], VIRIDIS[0], breaks[0], VIRIDIS[1], breaks[1], VIRIDIS[2], breaks[2], VIRIDIS[3], breaks[3], VIRIDIS[4]]],
      "fill-opacity": BASEMAP ? 0.65 : 0.85 } });
    map.addLayer({ id: "line", type: "line", source: "areas", paint: { "line-color": "#333", "line-width": 0.5 } });
    // the dashboard (overview.js) cross-filters to a clicked area; without it, open its page
    map.on("click", "fill", (e) => {
      const detail = e.features[0].properties;
      if (document.dispatchEvent(new CustomEvent("placeharm:area", { cancelable: true, detail }))) {
        window.location.href = `/ward/${detail.area_code}?${query}`;
      }
    });
    document.dispatchEvent(new CustomEvent("placeharm:overview-map", { detail: { map, geo } }));
    map.on("mousemove", "fill", (e) => { map.getCanvas().style.cursor = "pointer"; map.getCanvas().title = `${e.features[0].properties.area_name}: ${Math.round(e.features[0].properties.soc_harm || 0)}`; });
  });
  const legend = document.getElementById("legend");
  if (legend && geo.no_soc_data) {  // an empty period: nothing coloured, and the legend says why
    legend.textContent = "No SOC data in this period: the map is not coloured.";
  } else if (legend) {
    // built as nodes, colours set through the CSSOM: the CSP allows no inline style attributes
    const edges = [0, ...breaks].map((v) => Math.round(v).toLocaleString("en-GB"));
    const swatch = (colour) => {
      const span = document.createElement("span");
      span.style.background = colour;
      return span;
    };
    const items = [document.createTextNode("SOC primary harm score: "), swatch(NONE), document.createTextNode("none ")];
    VIRIDIS.forEach((c, i) => {
      items.push(swatch(c), document.createTextNode(`${i < 4 ? "up to " + edges[i + 1] : edges[4] + " or more"} `));
    });
    legend.replaceChildren(...items);
  }
}

function wardMap() {
  // The ward's points by layer (services/maps.py): legend, switches, details on click and
  // from the keyboard list below the map, place and street labels (issue 15).
  if (!page.points || !page.map_layers) return;
  const outlines = page.outlines || { type: "FeatureCollection", features: [] };
  const around = (page.neighbours && page.neighbours.features) || [];
  layeredMap({
    layers: page.map_layers, points: page.points, labels: page.labels,
    outlines: { type: "FeatureCollection", features: [...around, ...outlines.features] },
    fit: outlines.features.filter((f) => f.properties.kind === "ward"),
  });
}

// Radius search: the circle, the centre and the records found, coloured by kind (nominals
// have no point of their own: they are at their addresses). A point opens its details; a
// table's "Show" button opens the same details on the map.
const RADIUS_LAYERS = ["crimes", "incidents", "force_crimes", "intelligence", "addresses"];
const RADIUS_LABELS = { addresses: "Address", nominals: "Nominal", intelligence: "Intelligence",
  crimes: "police.uk crime", force_crimes: "Force crime", incidents: "Incident" };
const RADIUS_DETAILS = {  // what a popup says of each kind, after its id and distance
  addresses: ["address", "link_types", "nominal_ids"],
  nominals: ["surname", "forename", "address_id", "link_type"],
  intelligence: ["reported_date", "source_evaluation", "intelligence_assessment", "handling_code", "topics", "subjects"],
  crimes: ["month", "crime_type", "location", "latest_outcome"],
  force_crimes: ["recorded_date", "offence_code", "crime_type"],
  incidents: ["occurred_date", "incident_type", "closing_code"],
};
let radiusPopup = null;
// Intelligence topics in words (services/labels.TOPIC_LABELS, in the page as JSON data)
const TOPIC_LABELS = (() => {
  const node = document.getElementById("topic-labels");
  return node ? JSON.parse(node.textContent) : {};
})();
function topicsText(codes) {
  return String(codes).split(";").filter(Boolean).map((c) => TOPIC_LABELS[c] || c.replace(/_/g, " ")).join(", ");
}

function radiusRecord(kind, index) {
  const rows = (page.tables && page.tables[kind]) || [];
  return rows[index];
}

function radiusEntry(kind, index) {
  // One record's details as DOM nodes (text only: records are data, never markup).
  const row = radiusRecord(kind, index);
  const box = document.createElement("div");
  box.className = "radius-entry";
  const head = document.createElement("p");
  const strong = document.createElement("strong");
  const id = String(Object.values(row)[0]);  // the key comes first; police.uk's are 64 characters
  strong.textContent = `${RADIUS_LABELS[kind]} ${id.length > 16 ? id.slice(0, 10) + "…" : id}`;
  head.append(strong, ` ${row.distance_m} m ${row.direction}`);
  box.append(head);
  const list = document.createElement("dl");
  for (const key of RADIUS_DETAILS[kind] || []) {
    if (!(key in row) || row[key] == null || row[key] === "") continue;
    const dt = document.createElement("dt");
    dt.textContent = key.replace(/_/g, " ");
    const dd = document.createElement("dd");
    const ids = key === "nominal_ids" ? row[key] : key === "subjects" ? String(row[key]).split(";").filter(Boolean) : null;
    if (ids) {
      ids.forEach((n, i) => {
        const a = document.createElement("a");
        a.href = `/nominal/${encodeURIComponent(n)}`;
        a.textContent = n;
        dd.append(...(i ? [", ", a] : [a]));
      });
    } else {
      dd.textContent = key === "topics" ? topicsText(row[key]) : String(row[key]);
    }
    list.append(dt, dd);
  }
  box.append(list);
  const links = document.createElement("p");
  if (kind === "nominals") {
    const a = document.createElement("a");
    a.href = `/nominal/${encodeURIComponent(row.nominal_id)}`;
    a.textContent = "Nominal page";
    links.append(a, " · ");
  }
  const toRow = document.createElement("a");
  toRow.href = `#row-${kind}-${index}`;
  toRow.textContent = "Row in the table";
  toRow.addEventListener("click", () => selectRow(kind, index));
  links.append(toRow);
  box.append(links);
  return box;
}

function selectRow(kind, index) {
  document.querySelectorAll("tr.selected").forEach((r) => r.classList.remove("selected"));
  const tr = document.getElementById(`row-${kind}-${index}`);
  if (tr) tr.classList.add("selected");
}

function radiusMap() {
  const node = document.getElementById("map");
  if (!node || !window.maplibregl || !page.circle) return;
  const box = bounds(page.circle.coordinates);
  const map = newMap({ container: node, style: BLANK_STYLE, bounds: [[box[0], box[1]], [box[2], box[3]]],
    fitBoundsOptions: { padding: 32 }, attributionControl: false });
  mapControls(map);
  const show = (entries, lngLat) => {
    if (radiusPopup) radiusPopup.remove();
    const content = document.createElement("div");
    content.className = "radius-popup";
    entries.slice(0, 8).forEach(([kind, index]) => content.append(radiusEntry(kind, index)));
    if (entries.length > 8) {
      const more = document.createElement("p");
      more.textContent = `${entries.length - 8} more here: see the tables.`;
      content.append(more);
    }
    radiusPopup = new maplibregl.Popup({ maxWidth: "360px" }).setLngLat(lngLat).setDOMContent(content).addTo(map);
    selectRow(...entries[0]);
  };
  map.on("load", () => {
    addBasemap(map);
    map.addSource("circle", { type: "geojson", data: { type: "Feature", properties: {}, geometry: page.circle } });
    map.addLayer({ id: "circle-fill", type: "fill", source: "circle", paint: { "fill-color": "#1d4f91", "fill-opacity": 0.06 } });
    map.addLayer({ id: "circle-line", type: "line", source: "circle", paint: { "line-color": "#1b1b1b", "line-width": 2, "line-dasharray": [4, 2] } });
    const layers = [];
    for (const kind of RADIUS_LAYERS) {
      const rows = (page.tables && page.tables[kind]) || [];
      const features = rows.map((r, index) => ({ type: "Feature", properties: { kind, index },
        geometry: { type: "Point", coordinates: [r.longitude, r.latitude] } })).filter((f) => f.geometry.coordinates[0] != null);
      if (!features.length) continue;
      map.addSource(`r-${kind}`, { type: "geojson", data: { type: "FeatureCollection", features } });
      map.addLayer({ id: `r-${kind}`, type: "circle", source: `r-${kind}`, paint: {
        "circle-color": POINTS[kind], "circle-radius": kind === "addresses" ? 7 : 5.5, "circle-opacity": 0.85,
        "circle-stroke-color": "#fff", "circle-stroke-width": 1.2 } });
      layers.push(`r-${kind}`);
    }
    const c = page.centre;
    map.addSource("centre", { type: "geojson", data: { type: "Feature", properties: {}, geometry: { type: "Point", coordinates: [c.longitude, c.latitude] } } });
    map.addLayer({ id: "centre", type: "circle", source: "centre", paint: { "circle-color": "#000", "circle-radius": 6,
      "circle-stroke-color": "#ffbf47", "circle-stroke-width": 3 } });
    map.on("click", (e) => {
      const near = [[e.point.x - 4, e.point.y - 4], [e.point.x + 4, e.point.y + 4]];
      const hits = map.queryRenderedFeatures(near, { layers });
      if (hits.length) show(hits.map((f) => [f.properties.kind, f.properties.index]), e.lngLat);
    });
    for (const id of layers) {
      map.on("mouseenter", id, () => { map.getCanvas().style.cursor = "pointer"; });
      map.on("mouseleave", id, () => { map.getCanvas().style.cursor = ""; });
    }
  });
  document.querySelectorAll("button.locate").forEach((button) => {
    button.addEventListener("click", () => {
      const kind = button.dataset.kind;
      const index = Number(button.dataset.index);
      const row = radiusRecord(kind, index);
      if (!row) return;
      const at = [row.longitude, row.latitude];
      map.easeTo({ center: at });
      show([[kind, index]], at);
      node.scrollIntoView({ block: "nearest" });
    });
  });
}

function wardTrend() {
  const node = document.getElementById("trend");
  if (!node || !window.Plotly || !page.tables || !page.tables.monthly) return;
  const rows = page.tables.monthly;
  const x = rows.map((r) => r.month);
  const series = [["crimes", "police.uk crime", "#3b528b"], ["asb", "ASB", "#5ec962"], ["soc_crimes", "SOC crimes", "#440154"],
    ["incidents", "incidents", "#e66101"], ["intelligence", "intelligence", "#1b7837"]];
  const traces = series.map(([key, name, color]) => ({ x, y: rows.map((r) => r[key]), name, mode: "lines+markers",
    connectgaps: false, line: { color } }));
  Plotly.newPlot(node, traces, { margin: { t: 10, r: 10, b: 40, l: 50 }, legend: { orientation: "h" } },
    { displaylogo: false, responsive: true });
}

function chbTimeline() {
  const node = document.getElementById("timeline");
  if (!node || !window.Plotly || !page.phases) return;
  const today = new Date().toISOString().slice(0, 10);
  const colours = { Clear: "#440154", Hold: "#21918c", Build: "#fde725" };
  const traces = page.phases.map((p) => ({ type: "bar", orientation: "h", name: p.phase, y: ["site"],
    base: [p.start], x: [(new Date(p.end || today) - new Date(p.start))], marker: { color: colours[p.phase] } }));
  Plotly.newPlot(node, traces, { barmode: "stack", height: 160, margin: { t: 10, r: 10, b: 30, l: 40 },
    xaxis: { type: "date" }, yaxis: { visible: false } }, { displaylogo: false, responsive: true });
}

function uploadForm() {
  const form = document.getElementById("upload");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const out = document.getElementById("upload-result");
    out.textContent = "Importing…";
    const response = await fetch("/api/upload", {
      method: "POST", body: new FormData(form), headers: { "X-CSRF-Token": CSRF_TOKEN },
    });
    const body = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
    out.replaceChildren();
    const line = (text, note) => {
      const p = document.createElement("p");
      if (note) p.className = "note";
      p.textContent = text;  // never innerHTML: file names and reasons come from uploads
      out.appendChild(p);
    };
    if (!response.ok) { line(`Refused: ${body.error}`); return; }
    for (const r of body.results) {
      line(`${r.file}: ${r.status}; read ${r.read} = inserted ${r.inserted} + updated ${r.updated} + unchanged ${r.unchanged} + quarantined ${r.quarantined}.`);
      if (r.status !== "ok" && r.message) line(r.message);
      for (const q of r.quarantine_sample) line(`line ${q.line}: ${q.reason}`, true);
    }
  });
}

function printButton() {
  const button = document.getElementById("print");
  if (button) button.addEventListener("click", () => window.print());
}

// -- maps officers can use (issue 15) --------------------------------------------------------
// One drawing for the ward, CHB and group maps. `spec` (built by services/maps.py):
//   layers: [{id, name, colour, symbol, points, columns: [[key, label], ...]}]
//   points: {layer id: [rows with longitude, latitude and the columns]}
//   outlines: GeoJSON with `kind` ward | neighbour | chb | site | buffer
//   labels: {places: [{name, kind, longitude, latitude}], streets: [{name, ...}]}
//   fit: features to fit the view to (else every point and outline)
// A point's details open on click; the list below the map (#points-list) reaches every
// point from the keyboard, and its "Show on map" buttons open the same details on the map.
// Symbols are drawn on a canvas here (no sprite or glyph files: nothing leaves the server),
// and labels are HTML, so the map needs no font server.
const FOUR_P_COLOURS = { Pursue: "#d55e00", Prevent: "#0072b2", Protect: "#009e73", Prepare: "#cc79a7" };
const STREET_ZOOM = 15;
const POINT_LIFT = 100;  // px: "Show on map" puts the point this far above the map's centre
const DETAIL_LINES = 6;  // a crime point's month, type and outcome lines in its popup  // street labels from this zoom in (below it they would cover the map)
let layeredPopup = null;

function drawSymbol(ctx, symbol, colour, size) {
  // One symbol, centred in a size x size canvas: white edge so it reads on any background.
  const r = size / 2 - 2;
  const c = size / 2;
  ctx.clearRect(0, 0, size, size);
  ctx.beginPath();
  if (symbol === "square") ctx.rect(c - r * 0.85, c - r * 0.85, r * 1.7, r * 1.7);
  else if (symbol === "triangle") { ctx.moveTo(c, c - r); ctx.lineTo(c + r, c + r * 0.8); ctx.lineTo(c - r, c + r * 0.8); ctx.closePath(); }
  else if (symbol === "diamond") { ctx.moveTo(c, c - r); ctx.lineTo(c + r, c); ctx.lineTo(c, c + r); ctx.lineTo(c - r, c); ctx.closePath(); }
  else if (symbol === "cross") {
    const w = r * 0.38;
    ctx.moveTo(c - w, c - r); ctx.lineTo(c + w, c - r); ctx.lineTo(c + w, c - w); ctx.lineTo(c + r, c - w); ctx.lineTo(c + r, c + w);
    ctx.lineTo(c + w, c + w); ctx.lineTo(c + w, c + r); ctx.lineTo(c - w, c + r); ctx.lineTo(c - w, c + w); ctx.lineTo(c - r, c + w);
    ctx.lineTo(c - r, c - w); ctx.lineTo(c - w, c - w); ctx.closePath();
  } else ctx.arc(c, c, r, 0, 2 * Math.PI);
  ctx.fillStyle = colour;
  ctx.fill();
  ctx.lineWidth = 1.5;
  ctx.strokeStyle = "#ffffff";
  ctx.stroke();
}

function symbolImage(symbol, colour) {
  const size = 24;
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  const ctx = canvas.getContext("2d");
  drawSymbol(ctx, symbol, colour, size);
  return ctx.getImageData(0, 0, size, size);
}

function legendSymbols() {
  // the legend's and the layer switches' symbols: the map's own drawings
  document.querySelectorAll("canvas[data-symbol]").forEach((canvas) => {
    drawSymbol(canvas.getContext("2d"), canvas.dataset.symbol, canvas.dataset.colour, canvas.width);
  });
}

function layerColour(layer, row) {
  return layer.id === "disruptions" && FOUR_P_COLOURS[row.four_p] ? FOUR_P_COLOURS[row.four_p] : layer.colour;
}

function pointDetails(layer, index, points) {
  // One point's details as DOM nodes (text only: records are data, never markup).
  const row = points[layer.id][index];
  const box = document.createElement("div");
  box.className = "radius-entry";
  const head = document.createElement("p");
  const strong = document.createElement("strong");
  strong.textContent = layer.name;
  // first, so the popup's focus (on its first link) does not scroll the details away
  const a = document.createElement("a");
  a.href = `#pt-${layer.id}-${index}`;
  a.textContent = "row in the list";
  a.addEventListener("click", () => {
    const tr = document.getElementById(`pt-${layer.id}-${index}`);
    const details = tr && tr.closest("details");
    if (details) details.open = true;
  });
  head.append(strong, " · ", a);
  box.append(head);
  const list = document.createElement("dl");
  for (const [key, label] of layer.columns) {
    if (row[key] == null || row[key] === "") continue;
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.textContent = key === "topics" ? topicsText(row[key]) : typeof row[key] === "number" ? row[key].toLocaleString("en-GB") : String(row[key]);
    list.append(dt, dd);
  }
  box.append(list);
  if (Array.isArray(row.details) && row.details.length) {
    // a crime point: its crimes by month, type and latest outcome
    const lines = document.createElement("ul");
    lines.className = "point-lines";
    row.details.slice(0, DETAIL_LINES).forEach((d) => {
      const li = document.createElement("li");
      li.textContent = `${d.month}: ${d.crime_type}, ${d.outcome}${d.crimes > 1 ? ` (${d.crimes})` : ""}`;
      lines.append(li);
    });
    box.append(lines);
    if (row.details.length > DETAIL_LINES) {
      const more = document.createElement("p");
      more.textContent = `${row.details.length - DETAIL_LINES} more lines: the records page lists every crime.`;
      box.append(more);
    }
  }
  return box;
}

function layeredMap(spec) {
  const node = document.getElementById("map");
  if (!node || !window.maplibregl || !spec) return;
  legendSymbols();
  const points = spec.points || {};
  const outlines = spec.outlines || { type: "FeatureCollection", features: [] };
  let box = [180, 90, -180, -90];
  const fit = spec.fit && spec.fit.length ? spec.fit : outlines.features.filter((f) => f.properties.kind !== "neighbour");
  if (fit.length) box = bounds(fit.map((f) => f.geometry.coordinates), box);
  for (const layer of spec.layers) {
    for (const p of points[layer.id] || []) {
      if (p.longitude == null) continue;
      box = [Math.min(box[0], p.longitude), Math.min(box[1], p.latitude), Math.max(box[2], p.longitude), Math.max(box[3], p.latitude)];
    }
  }
  if (box[0] > box[2]) return;  // nothing to draw
  if (box[2] - box[0] < 0.004) { box[0] -= 0.002; box[2] += 0.002; }  // one point: not the whole world
  if (box[3] - box[1] < 0.003) { box[1] -= 0.0015; box[3] += 0.0015; }
  const map = newMap({ container: node, style: BLANK_STYLE, bounds: [[box[0], box[1]], [box[2], box[3]]],
    fitBoundsOptions: { padding: 24 }, attributionControl: false });
  mapControls(map);
  const show = (entries, lngLat) => {
    if (layeredPopup) layeredPopup.remove();
    const content = document.createElement("div");
    content.className = "radius-popup";
    entries.slice(0, 5).forEach(([layer, index]) => content.append(pointDetails(layer, index, points)));
    if (entries.length > 5) {
      const more = document.createElement("p");
      more.textContent = `${entries.length - 5} more points here: zoom in, or see the list below the map.`;
      content.append(more);
    }
    layeredPopup = new maplibregl.Popup({ maxWidth: "360px" }).setLngLat(lngLat).setDOMContent(content).addTo(map);
    document.querySelectorAll("tr.selected").forEach((r) => r.classList.remove("selected"));
    const tr = document.getElementById(`pt-${entries[0][0].id}-${entries[0][1]}`);
    if (tr) tr.classList.add("selected");
  };
  const byId = Object.fromEntries(spec.layers.map((l) => [l.id, l]));
  const ids = [];
  map.on("load", () => {
    addBasemap(map);
    map.addSource("outlines", { type: "geojson", data: outlines });
    const kind = (k) => ["==", ["get", "kind"], k];
    map.addLayer({ id: "neighbour-line", type: "line", source: "outlines", filter: kind("neighbour"), paint: { "line-color": "#8a8a84", "line-width": 1 } });
    map.addLayer({ id: "buffer", type: "fill", source: "outlines", filter: kind("buffer"), paint: { "fill-color": "#e66101", "fill-opacity": 0.08 } });
    map.addLayer({ id: "buffer-line", type: "line", source: "outlines", filter: kind("buffer"), paint: { "line-color": "#b35806", "line-width": 1.5, "line-dasharray": [1, 1.5] } });
    for (const k of ["chb", "site"]) {
      map.addLayer({ id: k, type: "fill", source: "outlines", filter: kind(k), paint: { "fill-color": CHB, "fill-opacity": 0.1 } });
      map.addLayer({ id: `${k}-line`, type: "line", source: "outlines", filter: kind(k), paint: { "line-color": CHB, "line-width": 2, "line-dasharray": [3, 2] } });
    }
    map.addLayer({ id: "ward-line", type: "line", source: "outlines", filter: kind("ward"), paint: { "line-color": "#222", "line-width": 2 } });
    for (const layer of spec.layers) {
      const colours = layer.id === "disruptions" ? Object.values(FOUR_P_COLOURS).concat([layer.colour]) : [layer.colour];
      for (const colour of colours) {
        const name = `${layer.symbol}-${colour}`;
        if (!map.hasImage(name)) map.addImage(name, symbolImage(layer.symbol, colour));
      }
      const features = (points[layer.id] || []).map((p, index) => ({ type: "Feature",
        properties: { layer: layer.id, index, n: p.crimes || p.members || 1, icon: `${layer.symbol}-${layerColour(layer, p)}` },
        geometry: { type: "Point", coordinates: [p.longitude, p.latitude] } })).filter((f) => f.geometry.coordinates[0] != null);
      map.addSource(`p-${layer.id}`, { type: "geojson", data: { type: "FeatureCollection", features } });
      map.addLayer({ id: `p-${layer.id}`, type: "symbol", source: `p-${layer.id}`, layout: {
        "icon-image": ["get", "icon"], "icon-allow-overlap": true, "icon-ignore-placement": true,
        "symbol-sort-key": ["-", 0, ["get", "n"]],
        "icon-size": ["interpolate", ["linear"], ["get", "n"], 1, 0.7, 10, 0.9, 100, 1.3, 1000, 1.7] } });
      ids.push(`p-${layer.id}`);
      map.on("mouseenter", `p-${layer.id}`, () => { map.getCanvas().style.cursor = "pointer"; });
      map.on("mouseleave", `p-${layer.id}`, () => { map.getCanvas().style.cursor = ""; });
    }
    map.on("click", (e) => {
      // the symbols under the pointer, in the legend's order
      const shown = ids.filter((id) => map.getLayoutProperty(id, "visibility") !== "none");
      const hits = map.queryRenderedFeatures(e.point, { layers: shown })
        .sort((a, b) => ids.indexOf(`p-${a.properties.layer}`) - ids.indexOf(`p-${b.properties.layer}`));
      if (hits.length) show(hits.map((f) => [byId[f.properties.layer], f.properties.index]), e.lngLat);
    });
    mapLabels(map, node, spec.labels || {});
  });
  document.querySelectorAll("input[data-layer]").forEach((check) => {
    check.addEventListener("change", () => {
      const layer = check.dataset.layer;
      for (const id of [`p-${layer}`, layer, `${layer}-line`]) {
        if (map.getLayer(id)) map.setLayoutProperty(id, "visibility", check.checked ? "visible" : "none");
      }
    });
  });
  document.querySelectorAll("button.show-point").forEach((button) => {
    button.addEventListener("click", () => {
      const layer = byId[button.dataset.layer];
      const index = Number(button.dataset.index);
      const row = layer && (points[layer.id] || [])[index];
      if (!row || row.longitude == null) return;
      const at = [row.longitude, row.latitude];
      // the point above the centre, so its details fit beneath it
      map.easeTo({ center: at, zoom: Math.max(map.getZoom(), 15), offset: [0, -POINT_LIFT] });
      show([[layer, index]], at);
      node.scrollIntoView({ block: "nearest" });  // the popup has the focus: its details are read
    });
  });
}

function mapLabels(map, node, labels) {
  // Names of the places (the ward and its neighbours, or the site) and, zoomed in, police.uk's
  // "on or near" streets: HTML labels, hidden from screen readers (the lists say the same).
  const streets = [];
  const add = (item, className) => {
    const el = document.createElement("div");
    el.className = `map-label ${className}`;
    el.setAttribute("aria-hidden", "true");
    el.textContent = item.name;
    new maplibregl.Marker({ element: el, anchor: className === "street" ? "top" : "center" })
      .setLngLat([item.longitude, item.latitude]).addTo(map);
    if (className === "street") streets.push(el);
  };
  (labels.places || []).forEach((p) => add(p, p.kind === "area" || p.kind === "site" ? "place" : "neighbour"));
  (labels.streets || []).forEach((s) => add(s, "street"));
  const zoomed = () => {
    const shown = map.getZoom() >= STREET_ZOOM;
    node.classList.toggle("streets-shown", shown);
    if (!shown) return;
    // the busiest streets first (the server's order); a label that would overlap one
    // already shown waits for a closer zoom
    streets.forEach((el) => el.classList.remove("crowded"));
    const taken = [];
    for (const el of streets) {
      const r = el.getBoundingClientRect();
      if (taken.some((t) => r.left < t.right && r.right > t.left && r.top < t.bottom && r.bottom > t.top)) {
        el.classList.add("crowded");
      } else {
        taken.push(r);
      }
    }
  };
  map.on("moveend", zoomed);
  zoomed();
}

function draw() {
  if (!page) return;
  if (page.kind === "overview") overviewMap();
  if (page.kind === "ward") { wardMap(); wardTrend(); }
  if (page.kind === "chb") chbTimeline();
  if ((page.kind === "chb" || page.kind === "group") && page.map) layeredMap(page.map);
  if (page.kind === "radius") radiusMap();
  uploadForm();
  printButton();
}

draw();
liveUpdates();

// for the pages' own modules (hotspots.js): the map set-up above, not a second copy
export { page, maps, newMap, mapControls, addBasemap, bounds, BLANK_STYLE, NONE };
