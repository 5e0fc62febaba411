// streamrec operator dashboard: polls /api/stats every second and draws it with inline SVG.
// No external resources. A token given as ?token=... is kept in memory only and sent as a header.
"use strict";

(function () {
  const params = new URLSearchParams(window.location.search);
  const token = params.get("token");
  if (token !== null) {
    params.delete("token");
    const rest = params.toString();
    window.history.replaceState(null, "", window.location.pathname + (rest ? "?" + rest : ""));
  }
  const POLL_MS = 1000;
  const COLORS = ["#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];
  let lastOk = 0;
  let inFlight = false;
  // The whole group's series (merged by the worker from every peer's), kept across polls: each
  // poll asks only for what came after groupSince, a few seconds before the newest point, so
  // points a slow peer completed late are replaced.
  const GROUP_COLS = ["events_s", "recs_s", "dlq_s", "p50_ms", "p95_ms", "p99_ms", "hr@10", "ndcg@10", "lag_total"];
  const GROUP_OVERLAP_S = 3;
  let group = { t: [], cols: {}, lag: {} };
  let groupSince = null;

  const $ = (id) => document.getElementById(id);

  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  function fmt(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    if (digits !== undefined) return v.toFixed(digits);
    if (a >= 100 || Number.isInteger(v)) return Math.round(v).toLocaleString("en-US");
    if (a >= 10) return v.toFixed(1);
    return v.toFixed(2);
  }
  const pct = (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(1) + "%");

  function clock(t) {
    const d = new Date(t * 1000);
    return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // A line chart of several series over time; gaps (null) break the line.
  function lineChart(el, t, series, opts) {
    opts = opts || {};
    const count = series.reduce((n, s) => n + s.values.filter((v) => v !== null && v !== undefined).length, 0);
    el.dataset.points = String(count);
    el.dataset.series = String(series.length);
    const legend = series.map((s) => {
      const last = [...s.values].reverse().find((v) => v !== null && v !== undefined);
      return `<span><i style="background:${s.color}"></i>${esc(s.name)}<b>${fmt(last === undefined ? null : last, opts.digits)}</b></span>`;
    }).join("");
    if (!t.length || count === 0) {
      el.innerHTML = `<div class="legend">${legend}</div><div class="plot"><div class="empty">no data yet</div></div>`;
      return;
    }
    el.innerHTML = `<div class="legend">${legend}</div><div class="plot"></div>`;
    const plot = el.lastElementChild;
    const W = Math.max(plot.clientWidth, 300), H = Math.max(plot.clientHeight, 80);
    const m = { l: 46, r: 10, t: 6, b: 18 };
    // Span the data collected so far (at least a minute, at most the window).
    const t1 = t[t.length - 1];
    let t0 = Math.max(t[0], t1 - (opts.window || 600));
    if (t1 - t0 < 60) t0 = t1 - 60;
    let vmax = 0;
    for (const s of series) for (const v of s.values) if (v !== null && v !== undefined && v > vmax) vmax = v;
    const ymax = Math.max(niceMax(vmax * 1.05), opts.minMax || 0);
    const x = (tt) => m.l + ((tt - t0) / Math.max(t1 - t0, 1e-9)) * (W - m.l - m.r);
    const y = (v) => m.t + (1 - v / ymax) * (H - m.t - m.b);
    let svg = `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img">`;
    for (let i = 0; i <= 4; i++) {
      const v = (ymax * i) / 4, yy = y(v).toFixed(1);
      svg += `<line class="${i ? "gridline" : "baseline"}" x1="${m.l}" x2="${W - m.r}" y1="${yy}" y2="${yy}"/>`;
      svg += `<text class="axis" x="${m.l - 6}" y="${(+yy + 3).toFixed(1)}" text-anchor="end">${fmt(v)}</text>`;
    }
    for (let i = 0; i <= 4; i++) {
      const tt = t0 + ((t1 - t0) * i) / 4;
      const anchor = i === 0 ? "start" : i === 4 ? "end" : "middle";
      svg += `<text class="axis" x="${x(tt).toFixed(1)}" y="${H - 3}" text-anchor="${anchor}">${clock(tt)}</text>`;
    }
    for (const s of series) {
      let d = "", pen = false, lastXY = null, n = 0;
      for (let i = 0; i < t.length; i++) {
        const v = s.values[i];
        if (v === null || v === undefined || t[i] < t0) { pen = false; continue; }
        const xy = [x(t[i]).toFixed(1), y(v).toFixed(1)];
        d += (pen ? "L" : "M") + xy[0] + " " + xy[1];
        pen = true; lastXY = xy; n++;
      }
      svg += `<path class="series" data-name="${esc(s.name)}" d="${d}" fill="none" stroke="${s.color}" stroke-width="${s.width || 1.8}" stroke-linejoin="round" stroke-linecap="round"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>`;
      if (lastXY) svg += `<circle cx="${lastXY[0]}" cy="${lastXY[1]}" r="2.6" fill="${s.color}"/>`;
    }
    svg += "</svg>";
    plot.innerHTML = svg;
  }

  // Horizontal bars: [{label, value}] best first.
  function barChart(el, rows, cls, digits) {
    el.dataset.bars = String(rows.length);
    if (!rows.length) { el.innerHTML = `<div class="empty">${cls === "dlq" ? "no dead letters" : "no data yet"}</div>`; return; }
    const max = Math.max(...rows.map((r) => r.value), 1e-12);
    el.innerHTML = rows.map((r) => `<div class="bar" data-label="${esc(r.label)}" data-value="${r.value}">
      <span class="name" title="${esc(r.label)}">${esc(r.label)}</span>
      <span class="track"><span class="fill ${cls}" style="display:block;width:${Math.max(1, (100 * r.value) / max).toFixed(1)}%"></span></span>
      <span class="num">${fmt(r.value, digits)}</span></div>`).join("");
  }

  function setText(id, text) { const e = $(id); if (e) e.textContent = text; }

  // Splice a fresh piece of the group's series into `group`, then keep only the last windowS seconds.
  function absorbGroup(piece, windowS) {
    if (!piece || !piece.t || !piece.t.length) return;
    let keep = group.t.findIndex((tt) => tt >= piece.t[0]);
    if (keep < 0) keep = group.t.length;
    const splice = (old, fresh) => {
      const head = (old || []).slice(0, keep);
      return new Array(keep - head.length).fill(null).concat(head, fresh || piece.t.map(() => null));
    };
    const next = { t: group.t.slice(0, keep).concat(piece.t), cols: {}, lag: {} };
    for (const c of GROUP_COLS) next.cols[c] = splice(group.cols[c], piece[c]);
    const parts = new Set([...Object.keys(group.lag), ...Object.keys(piece.lag || {})]);
    for (const p of parts) next.lag[p] = splice(group.lag[p], (piece.lag || {})[p]);
    const last = next.t[next.t.length - 1];
    let cut = 0;
    while (cut < next.t.length && next.t[cut] <= last - windowS) cut++;
    next.t = next.t.slice(cut);
    for (const c of GROUP_COLS) next.cols[c] = next.cols[c].slice(cut);
    for (const p of Object.keys(next.lag)) {
      next.lag[p] = next.lag[p].slice(cut);
      if (next.lag[p].every((v) => v === null)) delete next.lag[p];
    }
    group = next;
    groupSince = last - GROUP_OVERLAP_S;
  }

  // The charts show the whole group once more than one worker answers, else this worker.
  function grouped(d) {
    const cl = d.cluster;
    return !!(cl && cl.totals && cl.totals.workers > 1 && group.t.length);
  }

  function renderKpis(d) {
    const c = d.current || {}, cl = d.cluster && d.cluster.totals;
    const tot = cl && cl.workers > 1 ? cl : null;
    setText("kpi-events", fmt(tot ? tot.events_s : c.events_s));
    setText("kpi-recs", fmt(tot ? tot.recs_s : c.recs_s));
    const peak = (xs) => Math.max(0, ...(xs || []).filter((v) => v !== null));
    const all = grouped(d);  // peaks over the group's merged series once there is one
    const tail = tot && !all ? " here" : "";
    setText("kpi-events-peak", "per second · peak " + fmt(peak(all ? group.cols.events_s : d.series.events_s)) + tail);
    setText("kpi-recs-peak", "per second · peak " + fmt(peak(all ? group.cols.recs_s : d.series.recs_s)) + tail);
    const lat = d.latency_ms || {};
    setText("kpi-p99", fmt(tot ? tot.p99_ms : lat.p99));
    setText("kpi-p99-unit", tot ? "ms, event → rec, slowest worker" : "ms, event → rec, last " + fmt(lat.count) + " here");
    setText("kpi-lag", fmt(tot ? tot.lag : c.lag));
    setText("kpi-dlq", fmt(tot ? tot.dlq_total : c.dlq_total));
    const q = tot && d.cluster.quality ? d.cluster.quality : d.quality;
    setText("kpi-hr", q && q.judged ? pct(q["hr@10"]) : "–");
    const v = (d.models || {}).version || {};
    const noDeep = v.deep === null || v.deep === undefined;
    setText("kpi-model", noDeep ? "none yet" : String(v.deep));
    setText("kpi-online", (noDeep ? "popularity + co-occurrence · " : "") + "online: " + fmt(v.online) + " learned");
  }

  function renderCharts(d) {
    const s = d.series, w = d.window_s;
    const all = grouped(d);
    const g = all ? group.cols : s, t = all ? group.t : s.t;
    const n = all ? d.cluster.totals.workers : 1;
    const scope = $("view-scope");
    if (scope) {
      scope.dataset.scope = all ? "group" : "worker";
      scope.dataset.workers = String(n);
      scope.textContent = all ? "whole group (" + n + " workers)" : "this worker";
    }
    const slowest = all ? " (slowest worker)" : "";
    lineChart($("chart-throughput"), t, [
      { name: "events in", values: g.events_s, color: COLORS[0] },
      { name: "recommendations out", values: g.recs_s, color: COLORS[1], dash: "5 3" },
      { name: "dead letters", values: g.dlq_s, color: COLORS[2] },
    ], { window: w });
    lineChart($("chart-processing"), s.t, [
      { name: "scorer ms/batch", values: s.batch_ms, color: COLORS[3] },
      { name: "ingest ms/event (median)", values: s.ingest_ms, color: COLORS[0] },
    ], { window: w });
    lineChart($("chart-latency"), t, [
      { name: "p50" + slowest, values: g.p50_ms, color: COLORS[1] },
      { name: "p95" + slowest, values: g.p95_ms, color: COLORS[4] },
      { name: "p99" + slowest, values: g.p99_ms, color: COLORS[2] },
    ], { window: w });
    const lag = all ? group.lag : (d.lag || {});
    const parts = Object.keys(lag).sort((a, b) => +a - +b);
    lineChart($("chart-lag"), t, parts.map((p, i) => ({ name: "partition " + p, values: lag[p], color: COLORS[i % COLORS.length] })), { window: w, minMax: 4 });
    lineChart($("chart-quality"), t, [
      { name: "HR@10", values: g["hr@10"], color: COLORS[0] },
      { name: "NDCG@10", values: g["ndcg@10"], color: COLORS[5] },
    ], { window: w, digits: 3 });
    barChart($("chart-dlq"), Object.entries(d.dlq || {}).map(([k, v]) => ({ label: k, value: v })), "dlq");
    barChart($("chart-trending"), (d.trending || []).map((r) => ({ label: r.item_id, value: r.score })), "", 2);
  }

  function renderQuality(q) {
    q = q || {};
    const cells = [["HR@10", pct(q["hr@10"])], ["NDCG@10", fmt(q["ndcg@10"], 3)], ["click-through on recs", pct(q.ctr)],
      ["purchase conversion", pct(q.conversion)], ["returning users", pct(q.returning_rate)], ["lists judged", fmt(q.judged)]];
    const ids = ["q-hr", "q-ndcg", "q-ctr", "q-conversion", "q-returning", "q-judged"];
    $("quality").innerHTML = cells.map((c, i) => `<div><span>${esc(c[0])}</span><b id="${ids[i]}">${esc(c[1])}</b></div>`).join("");
  }

  function interval(f, asPct) {
    if (!f || f.value === null || f.value === undefined) return "–";
    const show = (x) => (asPct ? pct(x) : fmt(x, 3));
    return `${show(f.value)} <small>[${show(f.low)}, ${show(f.high)}]</small>`;
  }

  function renderExperiment(exp) {
    const card = $("experiment-card");
    if (!exp) { card.hidden = true; return; }
    card.hidden = false;
    setText("experiment-name", exp.name);
    const el = $("experiment");
    el.dataset.rows = String(exp.variants.length);
    card.dataset.winner = (exp.variants.map((v) => v.interleaving && v.interleaving.winner ? (v.interleaving.winner === "a" ? v.interleave[0] : v.interleave[1]) : "").find((x) => x)) || "";
    el.innerHTML = `<tr><th>variant</th><th>lists</th><th class="num">users</th><th class="num">lists judged</th><th class="num">HR@10</th>
      <th class="num">NDCG@10</th><th class="num">click-through</th><th class="num">conversion</th></tr>` +
      exp.variants.map((v) => `<tr data-variant="${esc(v.variant)}" data-hr="${v["hr@10"].value ?? ""}"><td><b>${esc(v.variant)}</b></td>
        <td>${esc(v.lists)}</td><td class="num">${pct(v.share)}</td><td class="num">${fmt(v.judged)}</td>
        <td class="num">${interval(v["hr@10"], true)}</td><td class="num">${interval(v["ndcg@10"], false)}</td>
        <td class="num">${interval(v.ctr, true)}</td><td class="num">${interval(v.conversion, true)}</td></tr>`).join("");
    const lines = exp.variants.filter((v) => v.interleaving).map((v) => {
      const i = v.interleaving, [a, b] = v.interleave || ["a", "b"];
      const win = i.winner ? `<b data-winner="${esc(i.winner === "a" ? a : b)}">${esc(i.winner === "a" ? a : b)} is preferred</b>`
        : "no significant preference yet";
      return `${esc(v.variant)}: interactions credited to ${esc(a)} ${fmt(i.a)}, to ${esc(b)} ${fmt(i.b)}, neither ${fmt(i.ties)};
        share to ${esc(b)} ${interval(i.share_b, true)}, sign test p = ${fmt(i.p_value, 4)}; ${win}`;
    });
    $("interleaving").innerHTML = lines.join("<br>");
  }

  function renderAgents(agents) {
    $("agents").innerHTML = `<tr><th>agent</th><th>does</th><th class="num">per second</th><th class="num">peak/s</th><th class="num">last time</th><th class="num">total</th></tr>` +
      (agents || []).map((a) => `<tr data-agent="${esc(a.name)}"><td><b>${esc(a.name)}</b></td><td>${esc(a.role)}</td>
        <td class="num">${fmt(a.events_s)}</td><td class="num">${fmt(a.peak_s)}</td><td class="num">${fmt(a.ms, 3)} ${esc(a.unit)}</td><td class="num">${fmt(a.total)}</td></tr>`).join("");
  }

  function renderModels(m) {
    m = m || {};
    const v = m.version || {};
    $("models").innerHTML = `<dt>deep (serving)</dt><dd>${esc(v.deep ?? "none")}</dd>
      <dt>previous deep</dt><dd>${esc(m.previous ?? "–")}</dd><dt>online model</dt><dd>${esc(fmt(v.online))} events learned</dd>`;
    const h = m.history || [];
    const el = $("swaps");
    el.dataset.rows = String(h.length);
    el.dataset.failed = String(h.filter((r) => !r.ok).length);
    if (!h.length) { el.innerHTML = `<tr><td class="empty">no swaps yet</td></tr>`; return; }
    el.innerHTML = `<tr><th>at</th><th>version</th><th>result</th><th>detail</th></tr>` + h.map((r) => `<tr>
      <td>${clock(r.at)}</td><td><code>${esc(r.version)}</code></td>
      <td><span class="badge ${r.ok ? "ok" : "bad"}">${r.ok ? "swapped" : "refused"}</span></td>
      ${r.ok ? `<td>from <code>${esc(r.from ?? "none")}</code>, load ${fmt(r.load_s)} s, swap ${fmt(r.swap_ms, 3)} ms</td>` : `<td class="reason">${esc(r.reason || "")}</td>`}</tr>`).join("");
  }

  function renderWorkers(d) {
    const el = $("workers");
    const cl = d.cluster || { workers: [], totals: {} };
    el.dataset.rows = String(cl.workers.length);
    const row = (w) => `<tr data-url="${esc(w.url)}"><td><a href="${esc(w.url)}/dashboard">${esc(w.url)}</a> ${w.self ? '<span class="badge me">this one</span>' : ""}</td>
      <td>${esc((w.partitions || []).join(", ") || "–")}</td>
      <td class="num">${w.ok ? fmt(w.events_s) : "–"}</td><td class="num">${w.ok ? fmt(w.recs_s) : "–"}</td>
      <td class="num">${w.ok ? fmt(w.p99_ms) : "–"}</td><td class="num">${w.ok ? fmt(w.lag) : "–"}</td>
      <td class="num">${w.ok ? fmt(w.scored) : "–"}</td><td class="num">${w.ok ? fmt(w.dlq_total) : "–"}</td>
      <td><code>${esc(w.ok ? ((w.model_version || {}).deep ?? "none") : "")}</code></td>
      <td>${w.ok ? '<span class="badge ok">up</span>' : `<span class="badge bad" title="${esc(w.error || "")}">unreachable</span>`}</td></tr>`;
    const t = cl.totals || {};
    el.innerHTML = `<tr><th>worker</th><th>partitions</th><th class="num">events/s</th><th class="num">recs/s</th><th class="num">p99 ms</th>
      <th class="num">lag</th><th class="num">recommendations</th><th class="num">dead letters</th><th>deep model</th><th>status</th></tr>` +
      cl.workers.map(row).join("") +
      `<tr class="total"><td>total: ${fmt(t.workers)} reachable of ${fmt(cl.workers.length)} workers</td><td>${fmt(t.partitions)} partitions</td>
      <td class="num" id="total-events">${fmt(t.events_s)}</td><td class="num">${fmt(t.recs_s)}</td><td class="num">${fmt(t.p99_ms)}</td>
      <td class="num">${fmt(t.lag)}</td><td class="num" id="total-scored">${fmt(t.scored)}</td><td class="num">${fmt(t.dlq_total)}</td><td></td><td></td></tr>`;
  }

  function setStatus(state, text) {
    const el = $("status");
    el.dataset.state = state;
    el.textContent = text;
  }

  function render(d) {
    const w = d.worker || {};
    setText("worker-url", w.url || "–");
    setText("worker-partitions", (w.partitions || []).join(", ") || "none");
    setText("worker-topic", w.events_topic || "–");
    if (d.cluster && d.cluster.series) absorbGroup(d.cluster.series, d.window_s || 600);
    renderKpis(d);
    renderCharts(d);
    renderQuality(grouped(d) && d.cluster.quality ? d.cluster.quality : d.quality);
    renderExperiment(grouped(d) && d.cluster.experiment ? d.cluster.experiment : d.experiment);
    renderAgents(d.agents);
    renderModels(d.models);
    renderWorkers(d);
    document.body.dataset.updated = String(w.now || "");
  }

  async function poll() {
    if (inFlight) return;
    inFlight = true;
    try {
      const headers = token ? { Authorization: "Bearer " + token } : {};
      const since = groupSince === null ? "" : "&since=" + groupSince.toFixed(3);
      const resp = await fetch("/api/stats?scope=cluster" + since, { headers, cache: "no-store" });
      if (resp.status === 401) { setStatus("error", "token required: open with ?token=…"); return; }
      if (!resp.ok) { setStatus("error", "HTTP " + resp.status); return; }
      render(await resp.json());
      lastOk = Date.now();
      setStatus("live", "live · " + clock(lastOk / 1000));
    } catch (e) {
      setStatus(lastOk ? "stale" : "error", lastOk ? "stale since " + clock(lastOk / 1000) : "worker unreachable");
    } finally {
      inFlight = false;
    }
  }

  poll();
  window.setInterval(poll, POLL_MS);
})();
