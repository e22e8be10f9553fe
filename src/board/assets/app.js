// pss board: draws the JSON API with uPlot. Every string that comes from
// traces is set with textContent (never parsed as HTML); the page has no
// inline script, and the server's Content-Security-Policy forbids one.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const TABS = ["overview", "metrics", "diagnostics", "performance", "alarms"];
  const SUBS = [
    ["timing_stability", "ts", "Timing"],
    ["memory_stability", "ms", "Memory"],
    ["error_volatility", "ev", "Errors"],
    ["branching_entropy", "be", "Branching"],
    ["concurrency_chaos", "cc", "Concurrency"],
  ];
  const COLORS = ["#2f6fdd", "#1a9850", "#d73027", "#8e44ad", "#f39c12", "#16a085"];
  // Custom metrics' lines (dashed), apart from the five's colours.
  const CUSTOM_COLORS = ["#17becf", "#bcbd22", "#e377c2", "#8c564b", "#7f7f7f", "#ff7f0e", "#393b79"];
  const st = { meta: null, service: null, window: null, tab: "overview", from: null, to: null, preset: "all", charts: {}, generation: null, lastTo: null, busy: false };
  // For tests and the curious: what has been drawn, and what failed.
  const probe = (window.__board = { drawn: {}, errors: [], loads: 0, ready: false });

  // ---- helpers -------------------------------------------------------------
  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  };
  const fmtTime = (t) => (t == null ? "–" : new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z");
  const fmtDur = (s) => {
    if (s == null) return "–";
    if (s < 120) return `${Math.round(s)} s`;
    if (s < 7200) return `${Math.round(s / 60)} min`;
    if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
    return `${(s / 86400).toFixed(1)} d`;
  };
  const fmtSec = (s) => (s == null ? "–" : s >= 1 ? `${s.toFixed(2)} s` : `${(s * 1000).toFixed(1)} ms`);
  const num = (v, d = 0) => (v == null || Number.isNaN(v) ? "–" : Number(v).toFixed(d));
  const clear = (node) => { while (node.firstChild) node.removeChild(node.firstChild); };
  // pypss stores a trace without a module as "None": shown as "(no module)".
  const moduleLabel = (m) => (m === "None" ? "(no module)" : m);
  const showError = (msg) => {
    const e = $("error");
    e.textContent = msg;
    e.hidden = !msg;
    if (msg) probe.errors.push(msg);
  };
  const token = () => sessionStorage.getItem("pss-token") || "";

  async function api(path, extra) {
    const q = new URLSearchParams();
    const params = Object.assign(base(), extra || {});
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
    const headers = token() ? { Authorization: "Bearer " + token() } : {};
    const r = await fetch(`/api/${path}?${q}`, { headers });
    if (r.status === 401) {
      $("token-form").hidden = false;
      throw new Error("this board wants a token");
    }
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  }

  function base() {
    return { service: st.service, window: st.window, from: st.from, to: st.to };
  }

  function svcInfo() {
    return (st.meta && st.meta.services.find((s) => s.name === st.service)) || null;
  }

  // ---- the address holds service, window, range and tab ----------------------
  function readUrl() {
    const p = new URLSearchParams(location.search);
    st.service = p.get("service");
    st.window = p.get("window") ? Number(p.get("window")) : null;
    // A window from the address or the picker stays; else the service's default follows the data.
    st.windowChosen = st.window != null;
    st.from = p.get("from") ? Number(p.get("from")) : null;
    st.to = p.get("to") ? Number(p.get("to")) : null;
    st.preset = p.get("range") || "all";
    const tab = p.get("tab");
    st.tab = TABS.includes(tab) ? tab : "overview";
  }

  function writeUrl() {
    const p = new URLSearchParams();
    if (st.service) p.set("service", st.service);
    if (st.window && st.windowChosen) p.set("window", st.window);
    if (st.preset !== "all") p.set("range", st.preset);
    if (st.from != null && st.preset === "zoom") p.set("from", st.from);
    if (st.to != null && st.preset === "zoom") p.set("to", st.to);
    p.set("tab", st.tab);
    history.replaceState(null, "", `${location.pathname}?${p}`);
  }

  function applyPreset() {
    const info = svcInfo();
    if (st.preset === "all" || !info) {
      st.from = null;
      st.to = null;
    } else if (st.preset !== "zoom") {
      const end = info.to || Date.now() / 1000;
      st.from = end - Number(st.preset);
      st.to = null;
    }
    $("reset").hidden = st.preset !== "zoom";
    const info2 = svcInfo();
    const from = st.from ?? (info2 && info2.from);
    const to = st.to ?? (info2 && info2.to);
    $("range").textContent = `${fmtTime(from)} → ${fmtTime(to)}`;
  }

  // ---- charts ---------------------------------------------------------------
  function shade(spans, color) {
    return {
      hooks: {
        drawClear: [
          (u) => {
            const ctx = u.ctx;
            const { left, top, width, height } = u.bbox;
            ctx.save();
            ctx.fillStyle = color;
            for (const [a, b] of spans) {
              const x0 = Math.max(u.valToPos(a, "x", true), left);
              const x1 = Math.min(u.valToPos(b, "x", true), left + width);
              if (x1 >= left && x0 <= left + width) ctx.fillRect(x0, top, Math.max(x1 - x0, 2), height);
            }
            ctx.restore();
          },
        ],
      },
    };
  }

  function zoomHook(u) {
    const sel = u.select;
    if (sel.width < 5) return;
    const a = u.posToVal(sel.left, "x");
    const b = u.posToVal(sel.left + sel.width, "x");
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    st.preset = "zoom";
    st.from = Math.floor(a);
    st.to = Math.ceil(b);
    applyPreset();
    writeUrl();
    load();
  }

  // A line chart: xs in epoch seconds, series [{label, values, color, scale}].
  function lineChart(id, xs, series, opts) {
    opts = opts || {};
    const host = $(id);
    if (st.charts[id]) {
      st.charts[id].destroy();
      delete st.charts[id];
    }
    clear(host);
    if (!xs.length) {
      host.appendChild(el("p", "No windows in this range.", "muted"));
      probe.drawn[id] = 0;
      return;
    }
    const plugins = [];
    if (opts.incidents && opts.incidents.length) plugins.push(shade(opts.incidents, "rgba(215,48,39,0.13)"));
    if (opts.bands && opts.bands.length) plugins.push(shade(opts.bands, "rgba(243,156,18,0.25)"));
    const u = new uPlot(
      {
        width: Math.max(host.clientWidth || 800, 300),
        height: opts.height || 220,
        plugins,
        scales: Object.assign({ x: { time: opts.time !== false } }, opts.scales || {}),
        axes: opts.axes || [{}, { size: 60 }],
        cursor: { sync: { key: opts.time === false ? null : "pss" }, drag: { x: opts.time !== false, y: false } },
        hooks: opts.time === false ? {} : { setSelect: [zoomHook] },
        series: [{ label: opts.xlabel || "time" }].concat(
          series.map((s, i) => ({ label: s.label, stroke: s.color || COLORS[i % COLORS.length], width: 1.5, dash: s.dash, spanGaps: false, scale: s.scale || "y", points: { show: false } }))
        ),
      },
      [xs].concat(series.map((s) => s.values)),
      host
    );
    st.charts[id] = u;
    probe.drawn[id] = xs.length;
  }

  function points(id) {
    const w = $(id).clientWidth || 800;
    return Math.max(50, Math.min(2000, Math.round(w)));
  }

  // ---- overview ---------------------------------------------------------------
  function gauge(pss) {
    const svg = $("gauge");
    clear(svg);
    const ns = "http://www.w3.org/2000/svg";
    const arc = (from, to, color, w) => {
      const r = 80, cx = 100, cy = 100;
      const a0 = Math.PI * (1 - from / 100), a1 = Math.PI * (1 - to / 100);
      const p = document.createElementNS(ns, "path");
      const large = to - from > 50 ? 1 : 0;
      p.setAttribute("d", `M ${cx + r * Math.cos(a0)} ${cy - r * Math.sin(a0)} A ${r} ${r} 0 ${large} 1 ${cx + r * Math.cos(a1)} ${cy - r * Math.sin(a1)}`);
      p.setAttribute("fill", "none");
      p.setAttribute("stroke", color);
      p.setAttribute("stroke-width", w);
      svg.appendChild(p);
    };
    arc(0, 100, "#e3e6eb", 16);
    const v = Math.max(0, Math.min(100, pss || 0));
    const color = v >= 80 ? "#1a9850" : v >= 60 ? "#f39c12" : "#d73027";
    if (v > 0) arc(0, Math.max(v, 0.5), color, 16);
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", "100");
    t.setAttribute("y", "95");
    t.setAttribute("text-anchor", "middle");
    t.setAttribute("font-size", "34");
    t.setAttribute("font-weight", "600");
    t.setAttribute("fill", "#1d2430");
    t.textContent = pss == null ? "–" : String(pss);
    svg.appendChild(t);
    probe.drawn.gauge = 1;
  }

  function subscoreBars(breakdown) {
    const host = $("subscores");
    clear(host);
    // The five, then custom metrics (pypss's plugins) by their codes.
    const known = new Set(SUBS.map((s) => s[0]));
    const rows = SUBS.map(([key, , label]) => [key, label]);
    for (const key of Object.keys(breakdown)) if (!known.has(key)) rows.push([key, key + " (custom)"]);
    for (const [key, label] of rows) {
      const v = Number(breakdown[key] || 0);
      const row = el("div", null, "bar");
      row.appendChild(el("span", label));
      const track = el("div", null, "track");
      const fill = el("div", null, "fill " + (v >= 0.8 ? "good" : v >= 0.6 ? "warn" : "bad"));
      fill.style.width = `${Math.round(v * 100)}%`;
      track.appendChild(fill);
      row.appendChild(track);
      row.appendChild(el("span", v.toFixed(2), "val"));
      host.appendChild(row);
    }
  }

  async function moduleDetail(module, tr) {
    for (const r of document.querySelectorAll("#modules tbody tr")) r.classList.remove("selected");
    tr.classList.add("selected");
    const d = await api("module", { module });
    const box = $("module-detail");
    box.hidden = false;
    $("md-title").textContent = `${moduleLabel(d.module)}: ${d.traces} traces, ${d.errors} failed`;
    const lat = $("md-latency").tBodies[0];
    clear(lat);
    for (const [k, v] of d.latency) {
      const row = el("tr");
      row.appendChild(el("td", k));
      row.appendChild(el("td", fmtSec(v), "num"));
      lat.appendChild(row);
    }
    const failed = $("md-failed").tBodies[0];
    clear(failed);
    $("md-failed-count").textContent = d.errors > d.failed.length ? `(latest ${d.failed.length} of ${d.errors})` : `(${d.errors})`;
    for (const f of d.failed) {
      const row = el("tr");
      row.appendChild(el("td", fmtTime(f.timestamp)));
      row.appendChild(el("td", f.name));
      row.appendChild(el("td", fmtSec(f.duration), "num"));
      failed.appendChild(row);
    }
    probe.drawn.moduleDetail = d.traces;
  }

  async function overview(incidents) {
    const [o, s] = await Promise.all([api("overview"), api("series", { points: points("trend") })]);
    gauge(o.pss);
    $("k-traces").textContent = Number(o.traces).toLocaleString("en");
    $("k-range").textContent = `${fmtTime(s.t[0])} → ${s.t.length ? fmtTime(s.t[s.t.length - 1] + s.window * s.step) : "–"}`;
    const rate = o.traces ? o.errors / Math.max(1, o.traces - o.system_traces) : 0;
    $("k-errors").textContent = `${(rate * 100).toFixed(2)} %`;
    $("k-errcount").textContent = `${o.errors} failed traces`;
    $("k-latency").textContent = fmtSec(o.latency.mean);
    $("k-p99").textContent = `p95 ${fmtSec(o.latency.p95)} · p99 ${fmtSec(o.latency.p99)}`;
    subscoreBars(o.breakdown);
    $("advisor-summary").textContent = o.advisor.summary || "";
    const adv = $("advisor");
    clear(adv);
    for (const line of [].concat(o.advisor.diagnosis || [], o.advisor.advice || [])) adv.appendChild(el("li", line));
    if (o.not_measured_note) adv.appendChild(el("li", o.not_measured_note, "note"));
    lineChart("trend", s.t, [{ label: "PSS", values: s.pss }], { incidents, scales: { y: { range: [0, 100] } } });
    const body = $("modules").tBodies[0];
    clear(body);
    for (const m of o.modules_worst_first) {
      const row = el("tr");
      row.appendChild(el("td", moduleLabel(m.module)));
      row.appendChild(el("td", m.pss, "num"));
      row.appendChild(el("td", m.traces, "num"));
      row.appendChild(el("td", m.errors, "num"));
      row.addEventListener("click", () => moduleDetail(m.module, row).catch((e) => showError(e.message)));
      body.appendChild(row);
    }
    probe.drawn.modules = o.modules_worst_first.length;
  }

  // ---- metrics and performance ------------------------------------------------
  async function metrics(incidents) {
    const s = await api("series", { points: points("m-pss") });
    lineChart("m-pss", s.t, [{ label: "PSS", values: s.pss }], { incidents, scales: { y: { range: [0, 100] } } });
    const subs = SUBS.map(([, code, label]) => ({ label, values: s[code] }));
    // Custom metrics (pypss's plugins, declared metrics) beside the five, dashed.
    (s.custom || []).forEach((c, i) => subs.push({ label: c.code, values: c.values, dash: [6, 4], color: CUSTOM_COLORS[i % CUSTOM_COLORS.length] }));
    lineChart("m-sub", s.t, subs, { incidents, scales: { y: { range: [0, 1] } } });
    lineChart("m-traffic", s.t, [{ label: "traces", values: s.traces }, { label: "errors", values: s.errors, color: "#d73027" }], { incidents });
  }

  async function performance(incidents) {
    const s = await api("series", { points: points("p-latency") });
    lineChart("p-latency", s.t, [
      { label: "p50", values: s.p50 },
      { label: "p95", values: s.p95, color: "#f39c12" },
      { label: "p99", values: s.p99, color: "#d73027" },
    ], { incidents });
    lineChart("p-wait", s.t, [{ label: "mean wait", values: s.wait_mean, color: "#8e44ad" }], { incidents });
  }

  // ---- diagnostics: heatmaps drawn on a canvas ---------------------------------
  async function diagnostics() {
    const [e, h] = await Promise.all([api("heatmap", { kind: "errors", points: 300 }), api("heatmap", { kind: "entropy", points: 300 })]);
    heat("h-errors", e, [215, 48, 39]);
    heat("h-entropy", h, [47, 111, 221]);
    const body = $("patterns").tBodies[0];
    clear(body);
    try {
      const p = await api("patterns");
      $("pat-summary").textContent = p.note ? p.note : `${p.flagged} of ${p.windows} windows flagged by ${p.detector}.`;
      for (const r of p.patterns) {
        const row = el("tr");
        row.appendChild(el("td", r.id === 0 ? "unclustered" : `#${r.id}`));
        row.appendChild(el("td", r.description));
        row.appendChild(el("td", r.windows, "num"));
        row.appendChild(el("td", fmtTime(r.first)));
        row.appendChild(el("td", fmtTime(r.last)));
        row.appendChild(el("td", r.incidents.join(", ")));
        body.appendChild(row);
      }
      probe.drawn.patterns = p.patterns.length;
    } catch (err) {
      // Too few windows for patterns is not an error of the page.
      $("pat-summary").textContent = err.message;
      probe.drawn.patterns = 0;
    }
  }

  function heat(id, m, rgb) {
    const c = $(id);
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth || 800;
    const rowH = 18;
    const h = Math.max(60, m.modules.length * rowH + 30);
    c.style.height = `${h}px`;
    c.width = w * dpr;
    c.height = h * dpr;
    const ctx = c.getContext("2d");
    ctx.scale(dpr, dpr);
    ctx.clearRect(0, 0, w, h);
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    if (!m.modules.length || !m.t.length) {
      ctx.fillStyle = "#6b7280";
      ctx.fillText("No module windows in this range.", 10, 20);
      probe.drawn[id] = 0;
      return;
    }
    const labelW = Math.min(220, Math.max(...m.modules.map((s) => ctx.measureText(moduleLabel(s)).width)) + 12);
    const cellW = (w - labelW) / m.t.length;
    let cells = 0;
    m.modules.forEach((name, r) => {
      ctx.fillStyle = "#1d2430";
      // Canvas text is drawn, never parsed: a hostile module name stays text.
      const shown = moduleLabel(name);
      ctx.fillText(shown.length > 40 ? shown.slice(0, 39) + "…" : shown, 4, r * rowH + rowH / 2);
      m.values[r].forEach((v, k) => {
        const x = labelW + k * cellW;
        if (v == null) {
          ctx.fillStyle = "#f1f2f4";
        } else {
          const a = m.max > 0 ? Math.min(1, v / m.max) : 0;
          ctx.fillStyle = `rgba(${rgb[0]},${rgb[1]},${rgb[2]},${0.08 + 0.92 * a})`;
          cells += 1;
        }
        ctx.fillRect(x, r * rowH + 1, Math.max(cellW - 0.5, 1), rowH - 2);
      });
    });
    ctx.fillStyle = "#6b7280";
    const y = m.modules.length * rowH + 14;
    ctx.fillText(fmtTime(m.t[0]), labelW, y);
    const last = fmtTime(m.t[m.t.length - 1]);
    ctx.fillText(last, w - ctx.measureText(last).width - 4, y);
    ctx.fillText(`max ${m.max.toFixed(3)}`, 4, y);
    probe.drawn[id] = cells;
  }

  // ---- alarms ---------------------------------------------------------------------
  async function alarms(incidents) {
    const [a, d, inc, al] = await Promise.all([
      api("alarms"),
      api("detector", { points: points("a-chart") }),
      api("incidents"),
      api("alerts", { from: 0, to: null }),
    ]);
    const p = a.policy;
    const pers = p.persistence;
    $("a-policy").textContent =
      `${a.policy_file || "the configuration"}: page after ${pers.fire_after} of ${pers.fire_window} alarming windows, resolve after ${pers.resolve_after} clean; ` +
      `PSS rule ${p.score_rules && p.alert.pss > 0 ? "< " + p.alert.pss : "off"}; module rule ${p.module_pss == null ? "off" : "PSS < " + p.module_pss}; quiet hours pooled over up to ${p.pool_max_windows} windows.`;
    $("a-detector").textContent = a.detector;
    const j = a.judged;
    $("a-judged").textContent = `${a.episodes.length} episodes in this range; incidents caught ${j.caught.length} of ${j.incidents}; false-alarm episodes ${j.false_episodes}; median delay ${j.median_delay == null ? "–" : Math.round(j.median_delay) + " s"}.`;
    const bands = a.episodes.filter((e) => !e.module).map((e) => [e.start, e.end]);
    const eps = $("a-episodes").tBodies[0];
    clear(eps);
    for (const e of a.episodes) {
      const row = el("tr");
      row.appendChild(el("td", fmtTime(e.start)));
      row.appendChild(el("td", fmtDur(e.end - e.start)));
      row.appendChild(el("td", e.module ? moduleLabel(e.module) : "(service)"));
      row.appendChild(el("td", num(e.peak), "num"));
      row.appendChild(el("td", e.rules.join(" + ")));
      eps.appendChild(row);
    }
    if (d.t.length) {
      const series = [{ label: "detector score", values: d.score, color: "#8e44ad" }];
      const rule = (a.policy.detectors || []).find((x) => x.service === st.service);
      const thr = rule ? rule.threshold : d.threshold;
      if (thr != null) series.push({ label: rule ? "the policy's detector threshold" : "its contamination threshold", values: d.t.map(() => thr), color: "#999" });
      lineChart("a-chart", d.t, series, { incidents, bands });
    } else {
      const s = await api("series", { points: points("a-chart") });
      lineChart("a-chart", s.t, [{ label: "PSS", values: s.pss }], { incidents, bands, scales: { y: { range: [0, 100] } } });
      $("a-chart").appendChild(el("p", d.note || "", "muted"));
    }
    const ib = $("a-incidents").tBodies[0];
    clear(ib);
    for (const i of inc) {
      const row = el("tr");
      row.appendChild(el("td", i.id));
      row.appendChild(el("td", fmtTime(i.start)));
      row.appendChild(el("td", fmtDur(i.end - i.start)));
      row.appendChild(el("td", i.severity));
      row.appendChild(el("td", i.title));
      const td = el("td");
      const link = el("a", "diagnosis");
      const q = new URLSearchParams({ service: st.service, incident: i.id });
      if (token()) q.set("token", token());
      link.href = `/diagnosis?${q}`;
      link.target = "_blank";
      link.rel = "noopener";
      td.appendChild(link);
      row.appendChild(td);
      ib.appendChild(row);
    }
    const card = a.card;
    if (card && card.convergence) {
      const bo = card.convergence.bayesian || [];
      const rs = card.convergence.random_search || [];
      const n = Math.max(bo.length, rs.length);
      const xs = Array.from({ length: n }, (_, k) => k + 1);
      lineChart("a-conv", xs, [
        { label: "Bayesian optimization", values: xs.map((k) => bo[k - 1] ?? null) },
        { label: "random search", values: xs.map((k) => rs[k - 1] ?? null), color: "#999" },
      ], { time: false, xlabel: "evaluation", axes: [{ label: "evaluations" }, { size: 60 }] });
    } else {
      clear($("a-conv"));
      $("a-conv").appendChild(el("p", "No model card: pss-tune writes one beside the tuned policy.", "muted"));
    }
    if (card && card.pr_curve) {
      const pts = (c) => (c || []).slice().sort((x, y) => x[0] - y[0]);
      const tuned = pts(card.pr_curve.tuned);
      const def = pts(card.pr_curve.default);
      const xs = Array.from(new Set(tuned.map((p) => p[0]).concat(def.map((p) => p[0])))).sort((x, y) => x - y);
      const at = (c) => { const m = new Map(c.map((p) => [p[0], p[1]])); return xs.map((x) => (m.has(x) ? m.get(x) : null)); };
      lineChart("a-pr", xs, [
        { label: "tuned", values: at(tuned) },
        { label: "defaults", values: at(def), color: "#999" },
      ], { time: false, xlabel: "recall", scales: { x: { time: false, range: [0, 1] }, y: { range: [0, 1] } }, axes: [{ label: "recall" }, { label: "precision", size: 60 }] });
    } else {
      clear($("a-pr"));
      $("a-pr").appendChild(el("p", "No validation PR curve in the model card.", "muted"));
    }
    const ab = $("a-alerts").tBodies[0];
    clear(ab);
    for (const n of al) {
      const row = el("tr");
      row.appendChild(el("td", fmtTime(n.created)));
      row.appendChild(el("td", n.channel));
      row.appendChild(el("td", n.sent ? `sent ${fmtTime(n.sent)}` : n.last_error ? `failing after ${n.attempts} tries: ${n.last_error}` : "pending"));
      row.appendChild(el("td", n.key));
      ab.appendChild(row);
    }
    if (!al.length) {
      const row = el("tr");
      const td = el("td", "No notifications recorded (pss serve with alerts_enabled sends them).", "muted");
      td.colSpan = 4;
      row.appendChild(td);
      ab.appendChild(row);
    }
  }

  // ---- loading ----------------------------------------------------------------------
  async function load() {
    if (!st.service) return;
    st.busy = true;
    try {
      showError("");
      const inc = await api("incidents");
      const spans = inc.map((i) => [i.start, i.end]);
      if (st.tab === "overview") await overview(spans);
      else if (st.tab === "metrics") await metrics(spans);
      else if (st.tab === "diagnostics") await diagnostics();
      else if (st.tab === "performance") await performance(spans);
      else await alarms(spans);
      probe.loads += 1;
      probe.ready = true;
      probe.tab = st.tab;
    } catch (e) {
      showError(e.message);
    } finally {
      st.busy = false;
    }
  }

  function showTab(tab) {
    st.tab = tab;
    for (const t of TABS) {
      $(`tab-${t}`).hidden = t !== tab;
      document.querySelector(`nav button[data-tab="${t}"]`).classList.toggle("active", t === tab);
    }
    writeUrl();
    load();
  }

  function fillServices() {
    const sel = $("service");
    clear(sel);
    for (const s of st.meta.services) {
      const o = el("option", s.name);
      o.value = s.name;
      sel.appendChild(o);
    }
    if (!st.meta.services.some((s) => s.name === st.service)) st.service = st.meta.services.length ? st.meta.services[0].name : null;
    sel.value = st.service || "";
    fillWindows();
  }

  function fillWindows() {
    const sel = $("window");
    clear(sel);
    const info = svcInfo();
    const ws = info ? info.windows.slice().sort((a, b) => a - b) : [];
    for (const w of ws) {
      const o = el("option", fmtDur(w));
      o.value = w;
      sel.appendChild(o);
    }
    if (!st.windowChosen || !ws.includes(st.window)) st.window = ws.length ? (info.window ?? info.windows[0]) : null;
    sel.value = st.window == null ? "" : String(st.window);
    $("preset").value = st.preset === "zoom" ? "all" : st.preset;
    applyPreset();
  }

  async function refreshMeta() {
    try {
      const m = await api("meta", { service: null, window: null, from: null, to: null });
      const info = m.services.find((s) => s.name === st.service);
      const changed = st.generation !== null && (m.generation !== st.generation || (info && info.to !== st.lastTo) || m.services.length !== st.meta.services.length);
      st.meta = m;
      st.generation = m.generation;
      st.lastTo = info ? info.to : null;
      $("live").textContent = `live · checked ${new Date().toLocaleTimeString()}`;
      if (changed && !st.busy) {
        // A chosen window stays; else the default follows (new lengths arrive in the background).
        fillServices();
        load();
      }
    } catch (e) {
      $("live").textContent = `live check failed: ${e.message}`;
    }
  }

  async function start() {
    readUrl();
    for (const b of document.querySelectorAll("nav button")) b.addEventListener("click", () => showTab(b.dataset.tab));
    $("service").addEventListener("change", () => { st.service = $("service").value; st.preset = "all"; fillWindows(); writeUrl(); load(); });
    $("window").addEventListener("change", () => { st.window = Number($("window").value); st.windowChosen = true; writeUrl(); load(); });
    $("preset").addEventListener("change", () => { st.preset = $("preset").value; applyPreset(); writeUrl(); load(); });
    $("reset").addEventListener("click", () => { st.preset = "all"; applyPreset(); writeUrl(); load(); });
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      sessionStorage.setItem("pss-token", $("token").value);
      $("token-form").hidden = true;
      start();
    });
    window.addEventListener("resize", () => { clearTimeout(st.resizeTimer); st.resizeTimer = setTimeout(load, 250); });
    try {
      st.meta = await api("meta", { service: null, window: null, from: null, to: null });
    } catch (e) {
      showError(e.message);
      return;
    }
    st.generation = st.meta.generation;
    $("label").textContent = `${st.meta.mode === "files" ? "trace files" : "history"}: ${st.meta.label}`;
    $("version").textContent = st.meta.pss_version;
    if (!st.meta.services.length) {
      showError("No services yet: ingest traces, or send some to pss serve.");
      setInterval(refreshMeta, 5000);
      return;
    }
    const keep = { from: st.from, to: st.to };
    fillServices();
    if (st.preset === "zoom") { st.from = keep.from; st.to = keep.to; applyPreset(); }
    const info = svcInfo();
    st.lastTo = info ? info.to : null;
    showTab(st.tab);
    setInterval(refreshMeta, 3000);
  }

  document.addEventListener("DOMContentLoaded", start);
})();
