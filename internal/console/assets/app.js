// The byoc console: fetches the node's views as JSON (/console/api/…) and
// renders them as tables, once a second — or, when a read takes longer
// (a big ledger), after five times as long as it took, so an open tab
// never keeps the node's database busy. Text only goes in through
// textContent, never as HTML. No build step: this file is served as is.
"use strict";

const api = "api/";
let nav = null;        // {role, views: [{path, title}]}
let last = "";         // the last page's JSON, to skip unchanged renders
let timer = null;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === "") continue;
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const k of kids) if (k) e.append(k);
  return e;
}

// route returns the view and query of the location's hash (#/view?query).
function route() {
  const h = location.hash.replace(/^#\/?/, "");
  const [path, query] = h.split("?");
  return {path: path || (nav && nav.views.length ? nav.views[0].path : "overview"), query: query || ""};
}

async function get(url) {
  const r = await fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin"});
  if (r.status === 401) { const e = new Error("admin token required"); e.login = true; throw e; }
  const body = await r.json().catch(() => ({error: r.status + " " + r.statusText}));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function status(text, bad) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = bad ? "bad" : "";
}

function showLogin(show) {
  document.getElementById("login").hidden = !show;
  document.getElementById("main").hidden = show;
  if (show) { document.getElementById("token").focus(); status("not signed in", true); }
}

async function login(token) {
  const r = await fetch("login", {method: "POST", body: new URLSearchParams({token}), credentials: "same-origin"});
  if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error || r.statusText);
}

function renderNav() {
  const n = document.getElementById("nav");
  document.getElementById("role").textContent = nav.role;
  document.title = "byoc " + nav.role;
  n.replaceChildren(...nav.views.map(v => el("a", {href: "#/" + v.path, "data-view": v.path, text: v.title})));
  markNav();
}

function markNav() {
  const p = route().path;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === p);
}

function cell(c, tag) {
  const attrs = {class: c.class, title: c.title, "data-wei": c.wei};
  const inner = c.link ? el("a", {href: "#/" + c.link, text: c.text}) : document.createTextNode(c.text || "");
  return el(tag || "td", attrs, inner);
}

function renderTable(t) {
  const head = el("tr", null, ...t.columns.map(c => el("th", {text: c})));
  const rows = t.rows.length ? t.rows.map(r => el("tr", {"data-key": r.key}, ...r.cells.map(c => cell(c))))
    : [el("tr", null, el("td", {class: "empty", colspan: String(t.columns.length), text: t.empty || "none"}))];
  return el("section", {"data-table": t.id},
    el("h2", {text: t.title}), t.note ? el("p", {class: "note", text: t.note}) : null,
    el("div", {class: "scroll"}, el("table", null, el("thead", null, head), el("tbody", null, ...rows))));
}

// Charts: plain inline SVG. A point's value is a cell of the role's exact
// figures; it is turned into a number only to place it in pixels, and
// labelled with its own text.
const svgNS = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...kids) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, v);
  for (const k of kids) if (k) e.append(k);
  return e;
}

function tip(text) { const t = svg("title"); t.textContent = text; return t; }

function valueOf(c) { return Number(c.wei !== undefined && c.wei !== "" ? c.wei : c.text); }

function clock(t) { return new Date(t).toISOString().slice(11, 19); }

function renderChart(c) {
  const W = c.wide ? 1000 : 640, H = 190, L = 78, R = 12, T = 12, B = 30;
  const pts = c.series.flatMap(s => s.points);
  const head = [el("h2", {text: c.title}), c.note ? el("p", {class: "note", text: c.note}) : null];
  if (!pts.length) {
    return el("section", {"data-chart": c.id, class: c.wide ? "wide" : ""}, ...head, el("p", {class: "empty note", text: c.empty || "nothing yet"}));
  }
  const times = pts.map(p => Date.parse(p.t));
  let t0 = Math.min(...times), t1 = Math.max(...times);
  if (t1 === t0) { t0 -= 1000; t1 += 1000; }
  let top = pts[0];
  for (const p of pts) if (valueOf(p.v) > valueOf(top.v)) top = p;
  const vmax = Math.max(valueOf(top.v), 1);
  const x = t => L + (Date.parse(t) - t0) / (t1 - t0) * (W - L - R);
  const y = v => H - B - Math.max(0, v) / vmax * (H - T - B);
  const g = svg("svg", {viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": c.title});
  g.append(svg("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis"}),
    svg("line", {x1: L, y1: T, x2: L, y2: H - B, class: "axis"}),
    svg("text", {x: L - 6, y: H - B, class: "tick", "text-anchor": "end"}, "0"),
    svg("text", {x: L - 6, y: T + 8, class: "tick", "text-anchor": "end", "data-max": top.v.wei || top.v.text}, top.v.text),
    svg("text", {x: L - 6, y: T + 21, class: "tick unit", "text-anchor": "end"}, c.unit),
    svg("text", {x: L, y: H - 8, class: "tick"}, clock(t0) + " UTC"),
    svg("text", {x: W - R, y: H - 8, class: "tick", "text-anchor": "end"}, clock(t1)));
  const legend = el("div", {class: "legend"});
  c.series.forEach((s, i) => {
    const cls = "s" + (i % 4);
    legend.append(el("span", {class: "key " + cls, text: s.name}));
    const grp = svg("g", {class: cls, "data-series": s.name});
    if (s.kind === "bars") {
      const xs = s.points.map(p => x(p.t));
      let gap = W - L - R;
      for (let k = 1; k < xs.length; k++) gap = Math.min(gap, xs[k] - xs[k - 1]);
      const bw = Math.max(2, Math.min(gap * 0.8, (W - L - R) / 12));
      for (const p of s.points) {
        const v = valueOf(p.v), yy = y(v);
        grp.append(svg("rect", {x: Math.min(x(p.t), W - R - bw), y: yy, width: bw, height: H - B - yy, class: "bar",
          "data-wei": p.v.wei, "data-value": p.v.text, "data-t": p.t}, tip(`${s.name} from ${clock(p.t)}: ${p.v.text} ${c.unit}`)));
      }
    } else {
      let d = "";
      s.points.forEach((p, k) => {
        const px = x(p.t), py = y(valueOf(p.v));
        d += k === 0 ? `M${px},${py}` : `H${px}V${py}`;
      });
      if (s.points.length) d += `H${W - R}`;
      grp.append(svg("path", {d, class: "line"}));
      for (const p of s.points) {
        grp.append(svg("circle", {cx: x(p.t), cy: y(valueOf(p.v)), r: 2.5, class: "pt",
          "data-wei": p.v.wei, "data-value": p.v.text, "data-t": p.t}, tip(`${s.name} at ${clock(p.t)}: ${p.v.text} ${c.unit}`)));
      }
    }
    g.append(grp);
  });
  return el("section", {"data-chart": c.id, class: c.wide ? "wide" : ""}, ...head, legend, el("div", {class: "chartbox"}, g));
}

function render(p) {
  const figs = p.figures.length ? el("div", {class: "figures"}, ...p.figures.map(f =>
    el("div", {class: "figure", "data-figure": f.id}, el("div", {class: "label", text: f.label}), cell(f.value, "div")))) : null;
  for (const f of figs ? figs.querySelectorAll(".figure > div:last-child") : []) f.classList.add("value");
  const charts = (p.charts || []).length ? el("div", {class: "charts"}, ...p.charts.map(renderChart)) : null;
  const parts = [el("h1", {text: p.title}), p.note ? el("p", {class: "note", text: p.note}) : null, figs, charts, ...p.tables.map(renderTable)];
  document.getElementById("main").replaceChildren(...parts.filter(Boolean));
}

async function refresh() {
  const {path, query} = route();
  const began = performance.now();
  try {
    const p = await get(api + "view/" + encodeURIComponent(path) + (query ? "?" + query : ""));
    const text = JSON.stringify(p);
    if (text !== last) { last = text; render(p); }
    document.body.dataset.loaded = path;
    took = performance.now() - began;
    status("live · " + new Date().toLocaleTimeString());
  } catch (e) {
    if (e.login) { stop(); showLogin(true); return; }
    last = "";
    document.getElementById("main").replaceChildren(el("p", {class: "error", text: e.message}));
    status("error", true);
  }
}

let took = 0;         // how long the last read took, in ms

let chain = 0;        // the current polling chain; stop() ends the others

function stop() { clearTimeout(timer); timer = null; chain++; }

// poll refreshes the page, then schedules the next refresh, while the
// chain it belongs to is the current one.
function poll(c) {
  timer = setTimeout(async () => {
    if (!document.hidden) await refresh();
    if (c === chain) poll(c);
  }, Math.max(1000, 5 * took));
}

async function start() {
  try {
    nav = await get(api + "nav");
  } catch (e) {
    if (e.login) { showLogin(true); return; }
    status(e.message, true);
    return;
  }
  showLogin(false);
  renderNav();
  stop();
  const c = chain;
  await refresh();
  if (c === chain) poll(c);
}

window.addEventListener("hashchange", () => { last = ""; markNav(); refresh(); });
document.getElementById("login").addEventListener("submit", async ev => {
  ev.preventDefault();
  try {
    await login(document.getElementById("token").value);
    document.getElementById("loginerr").textContent = "";
    start();
  } catch (e) {
    document.getElementById("loginerr").textContent = e.message;
  }
});

// A link may carry the token in its fragment (#token=…, as `byoc demo`
// prints): sign in with it and drop it from the address bar.
(async () => {
  const m = location.hash.match(/^#token=([^&]+)/);
  if (m) {
    history.replaceState(null, "", location.pathname + "#/");
    try { await login(decodeURIComponent(m[1])); } catch (e) { /* the form will ask */ }
  }
  start();
})();
