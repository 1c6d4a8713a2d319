// The dashboard's only script: plain JavaScript, no framework, no build step. Every value from
// the hub goes into the page as text (textContent / createTextNode), never as HTML, so a
// device id or a property value cannot inject markup. Live updates arrive over one
// EventSource (server-sent events, https://developer.mozilla.org/docs/Web/API/EventSource).
"use strict";

(function () {
  const API = "/ui/api/";
  const $ = (id) => document.getElementById(id);
  const fmt = (n) => (typeof n === "number" ? n.toLocaleString("en-US") : "–");

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "data") for (const [dk, dv] of Object.entries(v)) e.dataset[dk] = dv;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return e;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function time(t) {
    if (!t) return "";
    const d = new Date(t);
    if (isNaN(d.getTime()) || d.getUTCFullYear() < 2000) return "";
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }

  function json(v) {
    return v === undefined ? "" : JSON.stringify(v);
  }

  // api calls the dashboard's JSON API; a failure throws an Error carrying the answer's
  // error object (message, code, query position).
  async function api(path, body) {
    const opts = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
    const res = await fetch(API + path, opts);
    let data = null;
    try { data = await res.json(); } catch (_) { /* not JSON */ }
    if (!res.ok) {
      const e = new Error((data && data.error && data.error.message) || res.status + " " + res.statusText);
      e.detail = (data && data.error) || {};
      e.status = res.status;
      throw e;
    }
    return data;
  }

  // --- pages --------------------------------------------------------------------------------

  const pages = ["overview", "devices", "jobs", "activity"];
  let current = "";

  function route() {
    let page = location.hash.replace(/^#/, "").split("/")[0];
    if (!pages.includes(page)) page = "overview";
    current = page;
    for (const p of pages) {
      $("page-" + p).hidden = p !== page;
      $("nav-" + p).classList.toggle("active", p === page);
    }
    if (page === "overview") loadGroups(false);
    if (page === "jobs" && !jobs.loaded) loadJobs(0);
  }

  // --- live updates -------------------------------------------------------------------------

  let lastSummary = null;

  function connect(after) {
    const es = new EventSource(API + "events?after=" + encodeURIComponent(after));
    es.addEventListener("open", () => { $("live").textContent = "live"; $("live").className = "live on"; });
    es.addEventListener("error", () => { $("live").textContent = "reconnecting…"; $("live").className = "live off"; });
    es.addEventListener("live", (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch (_) { return; }
      lastSummary = m.summary;
      renderSummary(m.summary);
      liveJobs(m.jobs || []);
      addActivity(m.activity || [], m.activitySkipped || 0);
    });
  }

  // --- overview -----------------------------------------------------------------------------

  let groupGen = -1, groupAt = 0, groupBusy = false;

  function renderSummary(s) {
    $("ov-devices").textContent = fmt(s.devices);
    $("ov-connected").textContent = fmt(s.connected);
    $("ov-disconnected").textContent = fmt(s.disconnected);
    $("ov-tier").textContent = s.tier ? s.tier + (s.units > 1 ? " × " + s.units : "") : "unlimited";
    $("ov-429").textContent = fmt(s.refusedTotal);
    $("ov-jobs").textContent = fmt((s.jobCounts.running || 0) + (s.jobCounts.queued || 0) + (s.jobCounts.scheduled || 0));
    $("dialect").textContent = s.dialect;

    const tb = $("throttle-table").tBodies[0];
    clear(tb);
    $("throttle-note").textContent = s.tier ? "" : "The hub is unlimited: start it with --tier F1|S1|S2|S3 to enforce a tier's throttles.";
    for (const c of s.throttle) {
      tb.appendChild(el("tr", {}, el("td", {}, c.class), el("td", { class: "num" }, String(Math.round(c.ratePerSecond * 100) / 100)),
        el("td", { class: "num" }, fmt(c.served)), el("td", { class: "num" }, fmt(c.queued)), el("td", { class: "num" }, fmt(c.refused))));
    }
    const rb = $("recent429").tBodies[0];
    clear(rb);
    for (const r of s.recent429) {
      rb.appendChild(el("tr", {}, el("td", {}, time(r.at)), el("td", {}, r.class), el("td", { class: "num" }, r.retryAfterSeconds + " s")));
    }
    $("recent429-note").textContent = s.recent429.length ? "" : "No request has been throttled.";

    // The grouping is an aggregation over the whole fleet: refresh it only when twins changed,
    // and at most every 5 s.
    if (current === "overview" && s.generation !== groupGen && Date.now() - groupAt > 5000) loadGroups(true);
  }

  async function loadGroups(quiet) {
    if (groupBusy) return;
    groupBusy = true;
    groupAt = Date.now();
    if (lastSummary) groupGen = lastSummary.generation;
    const by = $("group-by").value.trim();
    try {
      const g = await api("groups?by=" + encodeURIComponent(by));
      $("group-error").hidden = true;
      drawChart(g);
    } catch (e) {
      if (!quiet || e.status !== 403) showQueryError($("group-error"), e, by);
    } finally {
      groupBusy = false;
    }
  }

  // drawChart draws the groups as horizontal SVG bars, largest first.
  function drawChart(g) {
    const box = $("group-chart");
    clear(box);
    const ns = "http://www.w3.org/2000/svg";
    const rows = g.groups.map((x) => ({ label: x.value === "" ? "(not defined)" : x.value, count: x.count }));
    if (g.other > 0) rows.push({ label: "(" + fmt(g.otherGroups) + " other values)", count: g.other });
    const W = 900, rowH = 24, labelW = 260, countW = 90, top = 8;
    const H = top * 2 + Math.max(rows.length, 1) * rowH;
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "Devices by " + g.by);
    const maxC = Math.max(1, ...rows.map((r) => r.count));
    rows.forEach((r, i) => {
      const y = top + i * rowH;
      const t = document.createElementNS(ns, "text");
      t.setAttribute("x", labelW - 8); t.setAttribute("y", y + 16); t.setAttribute("text-anchor", "end"); t.setAttribute("class", "lbl");
      t.textContent = r.label.length > 34 ? r.label.slice(0, 33) + "…" : r.label;
      const title = document.createElementNS(ns, "title");
      title.textContent = r.label + ": " + fmt(r.count);
      const bar = document.createElementNS(ns, "rect");
      bar.setAttribute("x", labelW); bar.setAttribute("y", y + 3); bar.setAttribute("height", rowH - 6);
      bar.setAttribute("width", Math.max(1, (W - labelW - countW) * r.count / maxC)); bar.setAttribute("class", "bar");
      bar.appendChild(title);
      const c = document.createElementNS(ns, "text");
      c.setAttribute("x", labelW + (W - labelW - countW) * r.count / maxC + 6); c.setAttribute("y", y + 16); c.setAttribute("class", "cnt");
      c.textContent = fmt(r.count);
      svg.append(t, bar, c);
    });
    box.appendChild(svg);
    let note = fmt(g.total) + " devices in " + fmt(g.distinct) + " groups, counted by " + g.query + " in " + g.elapsedMs + " ms at " + time(g.at) + ".";
    if (g.truncated) note += " More than " + fmt(g.distinct) + " distinct values: only the first were read.";
    $("group-note").textContent = note;
  }

  // showQueryError shows an API error in box; a query error also shows the text with its
  // position marked.
  function showQueryError(box, e, text) {
    clear(box);
    box.hidden = false;
    const d = e.detail || {};
    const q = d.query;
    if (q) {
      box.appendChild(el("div", { class: "msg" }, "Line " + q.line + ", column " + q.col + ": " + q.reason));
      const at = q.after.length ? q.after[0] : " ";
      box.appendChild(el("pre", { class: "code" }, q.before, el("mark", {}, at), q.after.slice(1)));
      box.appendChild(el("div", { class: "note" }, d.code ? d.code + ": " + d.message : d.message));
    } else {
      box.appendChild(el("div", { class: "msg" }, e.message));
      if (text) box.appendChild(el("pre", { class: "code" }, text));
    }
  }

  // --- devices ------------------------------------------------------------------------------

  const q = { text: "", tokens: [""], page: 0 };

  async function runQuery(page) {
    const text = q.text;
    $("query-status").textContent = "Running…";
    $("query-run").disabled = true;
    try {
      const r = await api("query", { query: text, continuation: q.tokens[page] || "" });
      $("query-error").hidden = true;
      q.page = page;
      q.tokens.length = page + 1;
      if (r.continuation) q.tokens.push(r.continuation);
      renderResults(r);
      const first = page * 100 + 1;
      $("query-page").textContent = r.items.length ? "rows " + fmt(first) + "–" + fmt(first + r.items.length - 1) + (r.continuation ? " (more)" : "") : "no rows";
      $("query-status").textContent = r.itemType + " rows in " + r.elapsedMs + " ms";
      $("query-prev").disabled = page === 0;
      $("query-next").disabled = !r.continuation;
    } catch (e) {
      const box = $("query-error");
      clear(box);
      box.hidden = false;
      const d = e.detail || {};
      if (d.query) {
        box.appendChild(el("div", { id: "query-error-msg" }, "Line " + d.query.line + ", column " + d.query.col + ": " + d.query.reason));
        const at = d.query.after.length ? d.query.after[0] : " ";
        box.appendChild(el("pre", { id: "query-error-text", class: "code" }, d.query.before, el("mark", {}, at), d.query.after.slice(1)));
        box.appendChild(el("div", { class: "note" }, (d.code ? d.code + ": " : "") + d.message));
      } else {
        box.appendChild(el("div", { id: "query-error-msg" }, e.message));
      }
      $("query-status").textContent = "";
      clear($("query-results").tHead); clear($("query-results").tBodies[0]);
      $("query-page").textContent = "";
      $("query-prev").disabled = true; $("query-next").disabled = true;
    } finally {
      $("query-run").disabled = false;
    }
  }

  function renderResults(r) {
    const table = $("query-results");
    const head = table.tHead, body = table.tBodies[0];
    clear(head); clear(body);
    if (r.itemType === "twin") {
      head.appendChild(el("tr", {}, ...["Device", "Status", "Connection", "Last activity", "Tags", "Reported $version"].map((h) => el("th", {}, h))));
      for (const t of r.items) {
        const reported = (t.properties && t.properties.reported) || {};
        body.appendChild(el("tr", { data: { device: t.deviceId } },
          el("td", {}, el("button", { class: "link", type: "button", onclick: () => showTwin(t.deviceId) }, t.deviceId + (t.moduleId ? "/" + t.moduleId : ""))),
          el("td", {}, t.status || ""), el("td", {}, t.connectionState || ""), el("td", {}, time(t.lastActivityTime)),
          el("td", { class: "json" }, json(t.tags)), el("td", { class: "num" }, String(reported.$version ?? ""))));
      }
      return;
    }
    const cols = [];
    for (const row of r.items.slice(0, 100)) for (const k of Object.keys(row)) if (!cols.includes(k)) cols.push(k);
    head.appendChild(el("tr", {}, ...cols.map((c) => el("th", {}, c))));
    for (const row of r.items) {
      body.appendChild(el("tr", {}, ...cols.map((c) => {
        const v = row[c];
        if (c === "deviceId" && typeof v === "string") return el("td", {}, el("button", { class: "link", type: "button", onclick: () => showTwin(v) }, v));
        return el("td", { class: "json" }, typeof v === "string" ? v : json(v));
      })));
    }
  }

  // flatten lists the leaves of a twin section (without $metadata and $version) with the
  // $lastUpdated of each from the section's $metadata.
  function flatten(section, meta, prefix, out) {
    for (const [k, v] of Object.entries(section || {})) {
      if (k === "$metadata" || k === "$version") continue;
      const path = prefix ? prefix + "." + k : k;
      const m = meta && meta[k];
      if (v !== null && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length) {
        flatten(v, m, path, out);
      } else {
        out.set(path, { value: v, updated: m && m.$lastUpdated });
      }
    }
    return out;
  }

  async function showTwin(id) {
    let t;
    try {
      t = await api("twin?id=" + encodeURIComponent(id));
    } catch (e) {
      alert(e.message);
      return;
    }
    $("twin").hidden = false;
    $("twin-id").textContent = t.deviceId;
    const meta = $("twin-meta");
    clear(meta);
    for (const [k, v] of [["status", t.status], ["connectionState", t.connectionState], ["lastActivityTime", time(t.lastActivityTime)],
      ["etag", t.etag], ["version", t.version], ["configurations", t.configurations ? json(t.configurations) : ""]]) {
      if (v === undefined || v === "") continue;
      meta.append(el("dt", {}, k), el("dd", {}, String(v)));
    }
    const props = t.properties || {};
    const des = props.desired || {}, rep = props.reported || {};
    $("twin-dv").textContent = "$version " + (des.$version ?? "");
    $("twin-rv").textContent = "$version " + (rep.$version ?? "");
    const d = flatten(des, des.$metadata, "", new Map());
    const r = flatten(rep, rep.$metadata, "", new Map());
    const keys = [...new Set([...d.keys(), ...r.keys()])].sort();
    const body = $("twin-props").tBodies[0];
    clear(body);
    for (const k of keys) {
      const a = d.get(k), b = r.get(k);
      const differ = !a || !b || json(a.value) !== json(b.value);
      body.appendChild(el("tr", { class: differ ? "diff" : "", data: { path: k } }, el("td", {}, k),
        el("td", { class: "json val" }, a ? json(a.value) : ""), el("td", {}, a ? time(a.updated) : ""),
        el("td", { class: "json val" }, b ? json(b.value) : ""), el("td", {}, b ? time(b.updated) : "")));
    }
    if (!keys.length) body.appendChild(el("tr", {}, el("td", { colspan: "5", class: "note" }, "No desired or reported properties.")));
    $("twin-tags").textContent = JSON.stringify(t.tags || {}, null, 2);
    $("twin").scrollIntoView({ block: "nearest" });
  }

  // --- jobs ---------------------------------------------------------------------------------

  const jobs = { loaded: false, byId: new Map(), order: [], next: 0, total: 0, selected: "", selectedEnded: false };

  async function loadJobs(offset) {
    try {
      const r = await api("jobs" + (offset ? "?offset=" + offset : ""));
      jobs.loaded = true;
      jobs.total = r.total;
      jobs.next = r.next || 0;
      for (const j of r.jobs) {
        if (!jobs.byId.has(j.jobId)) jobs.order.push(j.jobId);
        jobs.byId.set(j.jobId, j);
      }
      renderJobs();
    } catch (e) {
      $("jobs-note").textContent = e.message;
    }
  }

  // liveJobs merges the jobs of a live message: new ones go on top.
  function liveJobs(list) {
    let changed = false;
    for (const j of list.slice().reverse()) {
      if (!jobs.byId.has(j.jobId)) { jobs.order.unshift(j.jobId); jobs.total++; }
      const old = jobs.byId.get(j.jobId);
      if (!old || json(old) !== json(j)) changed = true;
      jobs.byId.set(j.jobId, j);
    }
    if (changed && jobs.loaded) renderJobs();
    if (jobs.selected && jobs.byId.has(jobs.selected)) {
      const j = jobs.byId.get(jobs.selected);
      renderJobFields(j);
      if (j.ended && !jobs.selectedEnded) { jobs.selectedEnded = true; loadOutcomes(j.jobId, true, ""); loadOutcomes(j.jobId, false, ""); }
    }
  }

  function progress(st) {
    const n = Math.max(st ? st.deviceCount : 0, 1);
    const bar = el("div", { class: "progress", title: st ? fmt(st.succeededCount) + " succeeded, " + fmt(st.failedCount) + " failed, " + fmt(st.runningCount) + " running, " + fmt(st.pendingCount) + " pending" : "" });
    if (st) {
      for (const [cls, v] of [["s", st.succeededCount], ["f", st.failedCount], ["r", st.runningCount]]) {
        const seg = el("span", { class: cls });
        seg.style.width = (100 * v / n) + "%";
        bar.appendChild(seg);
      }
    }
    return bar;
  }

  function renderJobs() {
    const body = $("jobs-table").tBodies[0];
    clear(body);
    for (const id of jobs.order) {
      const j = jobs.byId.get(id);
      const st = j.stats;
      const done = st ? st.succeededCount + st.failedCount : 0;
      body.appendChild(el("tr", { data: { job: j.jobId }, class: id === jobs.selected ? "selected" : "" },
        el("td", {}, el("button", { class: "link", type: "button", onclick: () => selectJob(j.jobId) }, j.jobId)),
        el("td", {}, j.type + (j.method ? " (" + j.method + ")" : "")),
        el("td", { class: "status status-" + j.status }, j.status),
        el("td", {}, progress(st)),
        el("td", { class: "num" }, st ? fmt(done) + " / " + fmt(st.deviceCount) + (st.failedCount ? " (" + fmt(st.failedCount) + " failed)" : "") : ""),
        el("td", {}, time(j.createdTime)),
        el("td", {}, j.ended ? "" : el("button", { class: "danger", type: "button", onclick: () => cancelJob(j.jobId) }, "Cancel"))));
    }
    $("jobs-note").textContent = jobs.total ? fmt(jobs.total) + " jobs, newest first; progress is live." : "No jobs yet. Start one with iotplan apply.";
    $("jobs-more").hidden = !jobs.next;
  }

  async function cancelJob(id) {
    if (!confirm("Cancel job " + id + "?")) return;
    try {
      const j = await api("job/cancel", { id });
      jobs.byId.set(j.jobId, j);
      renderJobs();
    } catch (e) {
      alert(e.message);
    }
  }

  function renderJobFields(j) {
    const dl = $("job-fields");
    clear(dl);
    for (const [k, v] of [["type", j.type], ["status", j.status], ["method", j.method], ["queryCondition", j.queryCondition],
      ["created", time(j.createdTime)], ["started", time(j.startTime)], ["ended", time(j.endTime)],
      ["failureReason", j.failureReason], ["statusMessage", j.statusMessage],
      ["devices", j.stats ? fmt(j.stats.deviceCount) + " (" + fmt(j.stats.succeededCount) + " succeeded, " + fmt(j.stats.failedCount) + " failed, " + fmt(j.stats.runningCount) + " running, " + fmt(j.stats.pendingCount) + " pending)" : ""]]) {
      if (!v) continue;
      dl.append(el("dt", {}, k), el("dd", {}, String(v)));
    }
    $("job-failed-count").textContent = j.stats ? "(" + fmt(j.stats.failedCount) + ")" : "";
  }

  function selectJob(id) {
    const j = jobs.byId.get(id);
    if (!j) return;
    jobs.selected = id;
    jobs.selectedEnded = j.ended;
    $("job-detail").hidden = false;
    $("job-id").textContent = id;
    renderJobFields(j);
    renderJobs();
    loadOutcomes(id, true, "");
    loadOutcomes(id, false, "");
  }

  const outcomeTokens = { true: "", false: "" };

  async function loadOutcomes(id, failed, token) {
    const table = $(failed ? "job-failed" : "job-other");
    const more = $(failed ? "job-failed-more" : "job-other-more");
    try {
      const r = await api("job/devices?id=" + encodeURIComponent(id) + "&failed=" + (failed ? "1" : "0") + (token ? "&continuation=" + encodeURIComponent(token) : ""));
      if (jobs.selected !== id) return;
      const body = table.tBodies[0];
      if (!token) clear(body);
      for (const row of r.items) {
        const out = row.outcome && row.outcome.deviceMethodResponse;
        body.appendChild(el("tr", {},
          el("td", {}, el("button", { class: "link", type: "button", onclick: () => { location.hash = "#devices"; showTwin(row.deviceId); } }, row.deviceId)),
          el("td", { class: "status status-" + row.status }, row.status),
          el("td", {}, row.error ? row.error.code + ": " + row.error.description : ""),
          el("td", { class: "json" }, out ? "status " + out.status + " " + json(out.payload) : ""),
          el("td", {}, time(row.endTimeUtc))));
      }
      if (!token && !r.items.length) body.appendChild(el("tr", {}, el("td", { colspan: "5", class: "note" }, failed ? "No device failed." : "None.")));
      outcomeTokens[failed] = r.continuation || "";
      more.hidden = !r.continuation;
    } catch (e) {
      more.hidden = true;
      const body = table.tBodies[0];
      clear(body);
      body.appendChild(el("tr", {}, el("td", { colspan: "5", class: "error" }, e.message)));
    }
  }

  // --- activity -----------------------------------------------------------------------------

  const activity = { rows: [], last: 0, skipped: 0 };
  const maxActivityRows = 500;

  function addActivity(events, skipped) {
    let added = false;
    for (const e of events) {
      if (e.seq <= activity.last) continue;
      activity.last = e.seq;
      activity.rows.unshift(e);
      added = true;
    }
    activity.skipped += skipped;
    if (activity.rows.length > maxActivityRows) activity.rows.length = maxActivityRows;
    if (added || skipped) renderActivity();
  }

  function detail(e) {
    if (e.kind === "method") {
      const r = e.error ? "no answer: " + e.error : "status " + e.status;
      return e.method + " → " + r + " (" + e.durationMs + " ms)";
    }
    const keys = (e.keys || []).join(", ") + (e.keyCount > (e.keys || []).length ? ", … (" + e.keyCount + " keys)" : "");
    const version = e.kind === "tags" ? " → tag write " : " → $version ";
    return (keys || "(no keys)") + (e.version ? version + e.version : "");
  }

  function renderActivity() {
    const body = $("activity-table").tBodies[0];
    clear(body);
    for (const e of activity.rows) {
      body.appendChild(el("tr", { data: { seq: String(e.seq) } }, el("td", {}, time(e.time)),
        el("td", { class: "kind-" + e.kind }, e.kind === "method" ? "method call" : e.kind + " update"),
        el("td", {}, e.source), el("td", {}, e.deviceId), el("td", { class: "json" }, detail(e))));
    }
    let note = "The newest " + fmt(activity.rows.length) + " direct-method calls and twin updates, live.";
    if (activity.skipped) note += " " + fmt(activity.skipped) + " more happened too fast to show.";
    if (lastSummary) {
      const t = lastSummary.activityTotals;
      note += " Since start: " + fmt(t.method) + " method calls, " + fmt(t.desired) + " desired, " + fmt(t.reported) + " reported and " + fmt(t.tags) + " tags updates.";
    }
    $("activity-note").textContent = note;
  }

  // --- start --------------------------------------------------------------------------------

  $("group-form").addEventListener("submit", (ev) => { ev.preventDefault(); localStorage.setItem("groupBy", $("group-by").value); loadGroups(false); });
  $("query-form").addEventListener("submit", (ev) => { ev.preventDefault(); q.text = $("query-text").value; q.tokens = [""]; runQuery(0); });
  $("query-text").addEventListener("keydown", (ev) => { if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); $("query-form").requestSubmit(); } });
  $("query-next").addEventListener("click", () => runQuery(q.page + 1));
  $("query-prev").addEventListener("click", () => runQuery(Math.max(q.page - 1, 0)));
  $("jobs-more").addEventListener("click", () => loadJobs(jobs.next));
  $("job-failed-more").addEventListener("click", () => loadOutcomes(jobs.selected, true, outcomeTokens[true]));
  $("job-other-more").addEventListener("click", () => loadOutcomes(jobs.selected, false, outcomeTokens[false]));
  const savedGroup = localStorage.getItem("groupBy");
  if (savedGroup) $("group-by").value = savedGroup;
  window.addEventListener("hashchange", route);

  (async function start() {
    try {
      const [s, a] = await Promise.all([api("summary"), api("activity")]);
      lastSummary = s;
      renderSummary(s);
      addActivity(a.events, a.skipped);
      activity.last = a.last;
      connect(a.last);
    } catch (e) {
      $("live").textContent = e.message;
      connect(0);
    }
    route();
    renderActivity();
  })();
})();
