// The hot spots page (issue 16): areas coloured by their Gi* class, on the map set-up of
// app.js (same base map, controls and live-update clean-up).
import { page, newMap, mapControls, addBasemap, bounds, BLANK_STYLE, NONE } from "/static/app.js";

// hot red, cold blue (colour-blind safe: ColorBrewer RdBu ends); not significant light grey
const COLOURS = { "hot spot": "#b2182b", "cold spot": "#2166ac", "not significant": "#f7f7f7",
  "not tested": NONE };
const WORDS = { "hot spot": "hot spot", "cold spot": "cold spot", "not significant": "not significant",
  "not tested": "not tested (no neighbour)" };
let drawn = null;  // the map container drawn into (a live update replaces it)

async function hotspotMap() {
  const node = document.getElementById("hotspot-map");
  if (!node || node === drawn || !window.maplibregl || !page || page.kind !== "hotspots") return;
  drawn = node;
  const query = new URLSearchParams(page.filters).toString();
  const response = await fetch(`/api/hotspots.geojson?${query}`);
  if (!response.ok) return;
  const geo = await response.json();
  const box = bounds(geo.features.map((f) => f.geometry.coordinates));
  const map = newMap({ container: node, style: BLANK_STYLE, bounds: [[box[0], box[1]], [box[2], box[3]]],
    fitBoundsOptions: { padding: 10 }, attributionControl: false });
  mapControls(map);
  const match = ["match", ["get", "class"]];
  for (const [cls, colour] of Object.entries(COLOURS)) match.push(cls, colour);
  match.push(NONE);
  map.on("load", () => {
    addBasemap(map);
    map.addSource("areas", { type: "geojson", data: geo });
    map.addLayer({ id: "fill", type: "fill", source: "areas",
      paint: { "fill-color": match, "fill-opacity": 0.8 } });
    map.addLayer({ id: "line", type: "line", source: "areas", paint: { "line-color": "#555", "line-width": 0.4 } });
    map.on("mousemove", "fill", (e) => {
      const p = e.features[0].properties;
      const z = typeof p.gi_z === "number" ? `, Gi* z ${p.gi_z.toFixed(2)}` : "";
      map.getCanvas().title = `${p.area_name}: ${p.class}${z}`;
    });
  });
  const legend = document.getElementById("hotspot-legend");
  if (legend) {
    // nodes, colours through the CSSOM: the CSP allows no inline style attributes
    const items = [document.createTextNode("Each area's class: ")];
    const counts = page.classes || {};
    for (const [cls, colour] of Object.entries(COLOURS)) {
      const span = document.createElement("span");
      span.style.background = colour;
      items.push(span, document.createTextNode(`${WORDS[cls]} (${counts[cls] ?? 0}) `));
    }
    legend.replaceChildren(...items);
  }
}

hotspotMap();
// a live update swaps the page's main content (app.js refresh): draw into the new container
const main = document.getElementById("main");
if (main) new MutationObserver(() => hotspotMap()).observe(main, { childList: true });
