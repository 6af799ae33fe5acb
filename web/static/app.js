// The dashboard's page. Every view's state is its URL's query string (view + the report's filters), so a URL
// reproduces what it shows; the data comes from /api/<view> (JSON) with a CSV twin at /api/<view>.csv.
// Attacker-written text (posts, authors, tags, URLs) only ever reaches the page as textContent, and only
// http(s) URLs become links. No markup from strings, no eval, no inline handlers: the CSP allows none of them.
"use strict";

const VIEWS = [
  ["trend", "Trend"], ["compare", "Compare"], ["share", "Share of network"], ["cooccurrence", "Co-occurring"],
  ["languages", "Languages"], ["top", "Top posts"], ["posts", "Posts"], ["alerts", "Alerts"],
  ["sources", "Source health"], ["search", "Search"], ["topics", "Topics"],
];
const TITLES = Object.fromEntries(VIEWS);
const FILTERS = ["term", "source", "lang", "region", "model", "since", "until", "by", "compare", "dedupe", "q", "top"];
const KEEP = [...FILTERS, "bucket", "page", "page_size"];  // what the page passes on to the data request
const CHARTED = new Set(["trend", "compare", "share"]);
const COLORS = ["#2f6db5", "#d9822b", "#3a9e5c", "#b83b5e", "#7b5ea7", "#8c6d31", "#17a2b8", "#e377c2", "#555"];
const TOKEN = "murmur_token";

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

// A link only for http(s) URLs; anything else (javascript:, data:, a bare string) stays text.
function link(url, text) {
  const s = typeof url === "string" ? url.trim() : "";
  if (/^https?:\/\//i.test(s)) {
    const a = el("a", text || s);
    a.href = s;
    a.rel = "noopener noreferrer nofollow";
    a.target = "_blank";
    return a;
  }
  return el("span", url === null || url === undefined ? "" : url);
}

function state() {
  const params = new URLSearchParams(location.search);
  return { view: TITLES[params.get("view")] ? params.get("view") : "trend", params };
}

function dataQuery(params) {
  const out = new URLSearchParams();
  for (const [k, v] of params) if (KEEP.includes(k) && v !== "") out.append(k, v);
  return out;
}

function go(view, params, replace) {
  const q = dataQuery(params);
  q.set("view", view);
  // view first: the URL reads like the command
  const ordered = new URLSearchParams([["view", view], ...[...q].filter(([k]) => k !== "view")]);
  const url = "?" + ordered.toString();
  if (replace) history.replaceState(null, "", url); else history.pushState(null, "", url);
  render();
}

async function api(path) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN);
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch(path, { headers, credentials: "same-origin" });
  if (response.status === 401) {
    $("token-box").hidden = false;
    throw new Error("this dashboard needs its token");
  }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// --- the filters form ---------------------------------------------------------------------------------

function fillForm(params) {
  const form = $("filters");
  for (const name of FILTERS) {
    const input = form.elements[name];
    if (!input) continue;
    const values = params.getAll(name);
    if (input.type === "checkbox") input.checked = ["1", "true", "yes", "on"].includes(values[values.length - 1]);
    else if (input.type === "date") input.value = (values[values.length - 1] || "").slice(0, 10);
    else input.value = values.join(",");
    if (name === "by" && !input.value) input.value = "day";  // the report's default period
  }
}

function formParams(base) {
  const form = $("filters");
  const params = new URLSearchParams();
  for (const name of FILTERS) {
    const input = form.elements[name];
    if (!input) continue;
    const value = input.type === "checkbox" ? (input.checked ? "1" : "") : input.value.trim();
    if (value) params.set(name, value);
  }
  if (base.get("page_size")) params.set("page_size", base.get("page_size"));
  return params;
}

function onFilter(event) {
  if (event) event.preventDefault();
  const { view, params } = state();
  const next = formParams(params);
  if (view === "posts" && params.get("bucket")) next.set("bucket", params.get("bucket"));
  go(view, next);
}

async function loadOptions() {
  try {
    const o = await api("/api/options");
    for (const [id, values] of [["terms-list", o.terms], ["sources-list", o.sources], ["langs-list", o.langs]]) {
      const list = $(id);
      list.replaceChildren(...values.map((v) => { const opt = el("option"); opt.value = v; return opt; }));
    }
    const model = $("filters").elements.model;
    const chosen = state().params.get("model") || "";
    model.replaceChildren(el("option", "latest"), ...o.models.map((m) => el("option", m)));
    model.options[0].value = "";
    model.value = chosen;
    if (!o.search) for (const a of $("views").querySelectorAll('a[data-view="search"]')) a.hidden = true;
  } catch (err) {
    $("note").textContent = err.message;
  }
}

// --- tables ---------------------------------------------------------------------------------------------

const NUMERIC = /^(posts|negative|neutral|positive|mean_polarity|polarity_se|share_per_100k|unique_posts|share|previous|en|zh|other|en_share|zh_share|other_share|polarity|engagement|similarity|size|growth|value|baseline|score|posts_24h|lag_seconds|events_per_second|reconnects_24h|id)$/;

function cell(column, value) {
  const td = el("td");
  if (column === "url") {
    td.append(link(value));
  } else if (column === "posts" && Array.isArray(value)) {  // a topic's posts
    for (const p of value) {
      const line = el("div");
      line.append(el("span", p.text), " ", link(p.url, "link"));
      td.append(line);
    }
    td.className = "text";
  } else {
    let text = value;
    if (Array.isArray(value)) text = value.join(", ");
    else if (value !== null && typeof value === "object") text = JSON.stringify(value);
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (NUMERIC.test(column)) td.className = "num";
    if (column === "text" || column === "error") td.className = "text";
  }
  return td;
}

function table(columns, rows, onBucket) {
  const t = el("table");
  const head = el("tr");
  for (const c of columns) head.append(el("th", c));
  if (onBucket) head.append(el("th", ""));
  const body = el("tbody");
  for (const row of rows) {
    const tr = el("tr");
    for (const c of columns) tr.append(cell(c, row[c]));
    if (onBucket) {
      const td = el("td");
      const button = el("button", "posts", "bucket");
      button.type = "button";
      button.addEventListener("click", () => onBucket(row));
      td.append(button);
      tr.append(td);
    }
    body.append(tr);
  }
  t.append(el("thead"), body);
  t.tHead.append(head);
  return t;
}

// --- charts (uPlot) ---------------------------------------------------------------------------------------

function showPosts(data, key, index) {
  const { params } = state();
  const next = new URLSearchParams(params);
  for (const [dim, value] of Object.entries(key)) {
    next.set(dim === "region" ? "region" : dim, value);
    if (dim === "region") next.delete("compare");
  }
  next.set("bucket", data.periods ? data.periods[index] : index);
  next.delete("page");
  go("posts", next);
}

function charts(data) {
  const box = $("charts");
  box.replaceChildren();
  if (!data.series || !data.series.length) return;
  if (typeof window.uPlot !== "function") { $("nocharts").hidden = false; return; }
  const xs = data.periods.map((t) => Date.parse(t) / 1000);
  const width = Math.max(480, Math.min(1200, box.clientWidth || 900));
  const panels = [["posts", "posts per " + data.by, null]];
  panels.push(["mean_polarity", "mean sentiment (−1 … +1)", [-1, 1]]);
  if (data.series.some((s) => s.share_per_100k)) panels.push(["share_per_100k", "share per 100,000 network posts", null]);
  for (const [field, title, range] of panels) {
    const holder = el("div");
    holder.dataset.chart = field;
    box.append(holder);
    let focused = null;
    const opts = {
      title, width, height: 260,
      tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),  // buckets are UTC periods
      cursor: { focus: { prox: 24 }, drag: { x: true, y: false } },
      focus: { alpha: 0.35 },
      scales: { x: { time: true }, y: range ? { range } : {} },
      series: [{ label: data.by }, ...data.series.map((s, i) => ({
        label: s.label, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: false,
        points: { show: data.periods.length < 60 },
        value: (u, v) => (v === null || v === undefined ? "–" : field === "posts" ? String(v) : v.toFixed(3)),
      }))],
      hooks: {
        setSeries: [(u, i) => { focused = i; }],
        ready: [(u) => {
          u.over.addEventListener("click", () => {
            const idx = u.cursor.idx;
            if (idx === null || idx === undefined || u.select.width > 0) return;
            let i = focused;
            if (!i) i = data.series.findIndex((s, k) => u.series[k + 1].show && s.posts[idx]) + 1;
            if (i > 0 && data.series[i - 1].posts[idx]) showPosts(data, data.series[i - 1].key, idx);
          });
        }],
      },
    };
    const columns = [xs, ...data.series.map((s) => s[field] || s.posts.map(() => null))];
    new window.uPlot(opts, columns, holder);
  }
  $("hint").textContent = "drag across a chart to zoom (double-click resets), click a legend entry to hide a " +
    "series, click a point (or a row's button) for its posts";
}

// --- views --------------------------------------------------------------------------------------------------

function renderTrend(data) {
  charts(data);
  const dims = data.dims || [];
  const onBucket = (row) => {
    const key = Object.fromEntries(dims.map((d) => [d, row[d]]));
    const { params } = state();
    const next = new URLSearchParams(params);
    for (const [dim, value] of Object.entries(key)) next.set(dim, value);
    if (key.region !== undefined) next.delete("compare");
    next.set("bucket", row.bucket_start);
    next.delete("page");
    go("posts", next);
  };
  return [table(data.columns, data.rows, onBucket)];
}

function renderTop(data) {
  const out = [];
  for (const side of ["positive", "negative"]) {
    out.push(el("h3", "Most " + side));
    out.push(table(data.columns.filter((c) => c !== "side"), data.rows.filter((r) => r.side === side)));
  }
  return out;
}

function renderPosts(data) {
  const { params } = state();
  const pager = $("pager");
  const page = data.page || 1;
  pager.hidden = !(data.more || page > 1);
  for (const [id, target, show] of [["prev", page - 1, page > 1], ["next", page + 1, data.more]]) {
    const a = $(id);
    a.hidden = !show;
    const next = new URLSearchParams(params);
    next.set("page", target);
    a.href = "?" + next.toString();
  }
  if (data.bucket) $("title").textContent = "Posts of the " + data.by + " from " + data.bucket + " (page " + page + ")";
  return [table(data.columns, data.rows)];
}

async function render() {
  const { view, params } = state();
  fillForm(params);
  for (const a of $("views").querySelectorAll("a")) {
    a.classList.toggle("active", a.dataset.view === view);
    const q = dataQuery(params);
    q.delete("bucket"); q.delete("page");
    a.href = "?" + new URLSearchParams([["view", a.dataset.view], ...q]).toString();
  }
  document.body.dataset.view = view;
  $("title").textContent = TITLES[view];
  $("note").textContent = "";
  $("nocharts").hidden = true;
  $("hint").textContent = "";
  $("pager").hidden = true;
  if (!CHARTED.has(view)) $("charts").replaceChildren();
  const query = dataQuery(params).toString();
  $("csv").href = "/api/" + view + ".csv" + (query ? "?" + query : "");
  $("json").href = "/api/" + view + (query ? "?" + query : "");
  const tables = $("tables");
  tables.setAttribute("aria-busy", "true");
  try {
    if (view === "posts" && !params.get("bucket")) {
      tables.replaceChildren(el("p", "Click a bucket of the trend (a point of the chart, or a row's button) to list its posts."));
      return;
    }
    const data = await api("/api/" + view + (query ? "?" + query : ""));
    $("note").textContent = data.note || "";
    let parts;
    if (CHARTED.has(view)) parts = renderTrend(data);
    else if (view === "top") parts = renderTop(data);
    else if (view === "posts") parts = renderPosts(data);
    else parts = [table(data.columns, data.rows)];
    if (data.model) parts.unshift(el("p", "model: " + data.model, "model"));
    tables.replaceChildren(...parts);
    document.body.dataset.loaded = String(Date.now());
  } catch (err) {
    $("charts").replaceChildren();
    tables.replaceChildren();
    $("note").textContent = err.message;
  } finally {
    tables.removeAttribute("aria-busy");
  }
}

function saveToken(event) {
  event.preventDefault();
  const token = $("token").value.trim();
  if (!token) return;
  sessionStorage.setItem(TOKEN, token);
  // A session cookie too, so the CSV links (plain downloads) carry it; same-site only.
  document.cookie = TOKEN + "=" + encodeURIComponent(token) + "; path=/; SameSite=Strict";
  $("token").value = "";
  $("token-box").hidden = true;
  loadOptions().then(render);
}

function start() {
  const nav = $("views");
  for (const [view, title] of VIEWS) {
    const a = el("a", title);
    a.dataset.view = view;
    a.href = "?view=" + view;
    a.addEventListener("click", (event) => {
      event.preventDefault();
      const next = dataQuery(state().params);
      next.delete("bucket"); next.delete("page");
      go(view, next);
    });
    nav.append(a);
  }
  $("filters").addEventListener("submit", onFilter);
  $("filters").addEventListener("change", (event) => { if (event.target.name !== "q") onFilter(event); });
  $("token-box").addEventListener("submit", saveToken);
  for (const id of ["prev", "next"]) {
    $(id).addEventListener("click", (event) => {
      event.preventDefault();
      const next = new URLSearchParams(new URL($(id).href).search);
      go(next.get("view") || "posts", next);
    });
  }
  window.addEventListener("popstate", render);
  loadOptions().then(render);
}

document.addEventListener("DOMContentLoaded", start);
