// soiree dashboard: vanilla JavaScript, no framework, no network but this
// dashboard's own API. Everything read from the store (topics, payloads,
// errors, ids) is attacker-controlled text: it is only ever inserted with
// textContent / text nodes, never as HTML.
"use strict";

(function () {
  const CSRF = document.querySelector('meta[name="soiree-csrf"]').content;
  const PAGE = document.body.dataset.page;
  const content = document.getElementById("content");
  const statusPill = document.getElementById("status");

  // ------------------------------------------------------------ DOM helpers

  /** Builds an element; strings among the children become text nodes. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(el.dataset, value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    append(el, children);
    return el;
  }
  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }
  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }
  const SVG = "http://www.w3.org/2000/svg";
  function s(tag, attrs, text) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  // ------------------------------------------------------------ formatting

  const nf = new Intl.NumberFormat();
  const fmtNum = (n) => (n === null || n === undefined ? "–" : nf.format(n));
  function fmtRate(r) {
    if (r === null || r === undefined) return "–";
    if (r >= 100) return nf.format(Math.round(r));
    return r.toFixed(r >= 10 ? 1 : 2);
  }
  function fmtDuration(ms) {
    if (ms === null || ms === undefined) return "–";
    if (ms < 1000) return ms + " ms";
    const sec = ms / 1000;
    if (sec < 60) return sec.toFixed(sec < 10 ? 1 : 0) + " s";
    const min = sec / 60;
    if (min < 60) return Math.floor(min) + " min " + Math.round(sec % 60) + " s";
    const hours = min / 60;
    if (hours < 48) return Math.floor(hours) + " h " + Math.round(min % 60) + " min";
    return Math.floor(hours / 24) + " d";
  }
  function fmtTime(ms) {
    if (!ms) return "–";
    return new Date(ms).toLocaleString();
  }
  function fmtAgo(ms) {
    if (!ms) return "–";
    const diff = Date.now() - ms;
    if (diff < 0) return "just now";
    if (diff < 5000) return "just now";
    return fmtDuration(diff) + " ago";
  }
  function clock(ms) {
    const d = new Date(ms);
    return d.toTimeString().slice(0, 8);
  }
  function json(value, pretty) {
    try {
      return JSON.stringify(value, null, pretty ? 2 : 0);
    } catch (_) {
      return String(value);
    }
  }
  function timeCell(ms) {
    return h("td", { class: "nowrap", title: fmtTime(ms) }, fmtAgo(ms));
  }
  function lastSeen(idleMs) {
    if (idleMs === null || idleMs === undefined) return h("span", { class: "muted" }, "–");
    if (idleMs < 2000) return h("span", { class: "badge ok" }, "active");
    if (idleMs > 5 * 60000) return h("span", { class: "badge warn" }, fmtDuration(idleMs) + " ago");
    return fmtDuration(idleMs) + " ago";
  }
  function topicTag(topic) {
    return topic ? h("span", { class: "topic" }, topic) : h("span", { class: "muted" }, "–");
  }
  function eventLink(eventId) {
    if (!eventId) return h("span", { class: "muted" }, "–");
    return h("a", { class: "mono", href: "events?id=" + encodeURIComponent(eventId), dataset: { eventLink: eventId } }, eventId);
  }
  /** The marker of a payload the server cut: its full size, and where to see it all. */
  function cutMarker(bytes, eventId) {
    return h(
      "span",
      { class: "cut muted small", dataset: { truncated: String(bytes) } },
      " … cut, " + fmtNum(bytes) + " bytes in all",
      eventId ? [" · ", h("a", { href: "events?id=" + encodeURIComponent(eventId) }, "show all")] : null
    );
  }
  /**
   * A one-line payload preview; click to expand. `bytes` is set when the
   * server sent only the payload's first bytes (as a string).
   */
  function payloadPreview(value, raw, bytes, eventId) {
    const cut = bytes !== null && bytes !== undefined;
    const text = raw !== null && raw !== undefined ? raw : cut ? String(value) : json(value, false);
    const el = h("span", { class: "payload", title: "click to expand" }, text.length > 2000 ? text.slice(0, 2000) + "…" : text);
    el.addEventListener("click", () => {
      const open = el.classList.toggle("open");
      el.textContent = open ? (raw !== null && raw !== undefined ? raw : cut ? String(value) : json(value, true)) : text;
    });
    return cut ? h("span", {}, el, cutMarker(bytes, eventId)) : el;
  }

  // ------------------------------------------------------------ API

  async function api(path) {
    const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    return decode(response);
  }
  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-Soiree-CSRF": CSRF },
      body: JSON.stringify(body),
    });
    return decode(response);
  }
  async function decode(response) {
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const message = body && body.error ? body.error : "HTTP " + response.status;
      const err = new Error(message);
      err.status = response.status;
      throw err;
    }
    return body;
  }
  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
    const text = q.toString();
    return text ? "?" + text : "";
  }

  // ------------------------------------------------------------ status & toasts

  function setStatus(kind, text) {
    statusPill.className = "status-pill " + kind;
    statusPill.textContent = text;
  }
  function ok() {
    setStatus("ok", "live · updated " + clock(Date.now()));
  }
  function failed(err) {
    setStatus("bad", "error: " + err.message);
  }
  function toast(text, kind) {
    const el = h("div", { class: "toast " + (kind || ""), role: "status" }, text);
    document.getElementById("toasts").appendChild(el);
    setTimeout(() => el.remove(), 4500);
  }

  /**
   * Asks the operator to confirm an action on `count` items in a dialog of
   * the page; resolves to whether they did. `detail` is plain text.
   */
  function confirmAction(title, detail, actionLabel, danger, count) {
    return new Promise((resolve) => {
      const go = h("button", { type: "button", class: danger ? "danger" : "primary", dataset: { confirmGo: "" } }, actionLabel);
      const cancel = h("button", { type: "button", dataset: { confirmCancel: "" } }, "Cancel");
      const dialog = h(
        "dialog",
        { class: "confirm", dataset: { confirm: "", count: String(count) }, "aria-label": title },
        h("h2", {}, title),
        detail ? h("p", {}, detail) : null,
        h("div", { class: "dialog-actions" }, cancel, go)
      );
      go.addEventListener("click", () => dialog.close("go"));
      cancel.addEventListener("click", () => dialog.close("cancel"));
      dialog.addEventListener("close", () => {
        dialog.remove();
        resolve(dialog.returnValue === "go");
      });
      document.body.appendChild(dialog);
      dialog.showModal();
      cancel.focus();
    });
  }
  const plural = (n, one, many) => fmtNum(n) + " " + (n === 1 ? one : many);
  async function busy(button, action) {
    button.disabled = true;
    try {
      await action();
    } catch (err) {
      toast(err.message, "bad");
    } finally {
      button.disabled = false;
    }
  }

  function empty(title, detail, neutral, glyph) {
    return h(
      "div",
      { class: "empty" + (neutral ? " neutral" : ""), dataset: { empty: "" } },
      h("div", { class: "glyph" }, glyph || (neutral ? "·" : "✓")),
      h("div", { class: "big" }, title),
      detail ? h("div", {}, detail) : null
    );
  }
  function panel(title, body, extra) {
    return h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", {}, title), extra || null), body);
  }
  // The buttons of a paged listing in `pager`: `cursors` is the stack of
  // the cursors of the pages shown so far (`null`: the first page), `next`
  // the cursor of the page after this one; a click updates the stack, then
  // calls `load`. With `toFirst` (a listing that keeps changing) the way
  // back is to the first page, else one page back.
  function fillPager(pager, cursors, next, load, toFirst) {
    clear(pager);
    if (cursors.length > 1) {
      const back = h("button", {}, toFirst ? "← First" : "← Newer");
      back.addEventListener("click", () => {
        if (toFirst) cursors.length = 1;
        else cursors.pop();
        load();
      });
      pager.appendChild(back);
    }
    if (next) {
      const forward = h("button", {}, toFirst ? "Next →" : "Older →");
      forward.addEventListener("click", () => {
        cursors.push(next);
        load();
      });
      pager.appendChild(forward);
    }
    pager.style.display = pager.firstChild ? "" : "none";
  }
  function table(headers, rows) {
    return h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, headers.map((x) => (typeof x === "string" ? h("th", {}, x) : x)))),
        h("tbody", {}, rows)
      )
    );
  }

  // ------------------------------------------------------------ store info

  const KINDS = { memory: "Memory", redis: "Redis", sqlite: "SQLite", postgres: "PostgreSQL" };
  function showStore(store) {
    const box = clear(document.getElementById("store-info"));
    append(box, [
      h("div", { class: "kind" }, KINDS[store.kind] || store.kind),
      h("div", { class: "mono" }, store.location),
      store.group ? h("div", {}, "group ", h("span", { class: "mono" }, store.group)) : null,
    ]);
  }

  // ------------------------------------------------------------ charts

  /** A step of 1, 2 or 5 × 10^k giving about four gridlines up to `value`. */
  function niceStep(value, integral) {
    if (!(value > 0)) return 1;
    const raw = value / 4;
    const exp = Math.pow(10, Math.floor(Math.log10(raw)));
    let step = 10 * exp;
    for (const m of [1, 2, 5]) {
      if (m * exp >= raw) {
        step = m * exp;
        break;
      }
    }
    return integral ? Math.max(1, Math.round(step)) : step;
  }
  /**
   * Draws series of {t, v} over time into `box`: lines, or an area for
   * series with `area`.
   */
  function chart(box, series, integral) {
    clear(box);
    const points = series.flatMap((x) => x.points.filter((p) => p.v !== null && p.v !== undefined));
    if (points.length < 2) {
      box.appendChild(h("div", { class: "chart-empty" }, "Collecting samples…"));
      return;
    }
    const width = Math.max(box.clientWidth, 300);
    const height = 190;
    const pad = { l: 46, r: 12, t: 10, b: 24 };
    const t0 = Math.min(...points.map((p) => p.t));
    const t1 = Math.max(...points.map((p) => p.t), t0 + 1);
    const step = niceStep(Math.max(...points.map((p) => p.v)), integral);
    const lines = Math.max(1, Math.ceil(Math.max(...points.map((p) => p.v)) / step));
    const vmax = step * lines;
    const decimals = step >= 1 ? 0 : Math.min(3, Math.ceil(-Math.log10(step)));
    const format = (v) => (v >= 1000 ? nf.format(Math.round(v)) : v.toFixed(decimals));
    const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * (width - pad.l - pad.r);
    const y = (v) => pad.t + (1 - v / vmax) * (height - pad.t - pad.b);
    const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
    for (let i = 0; i <= lines; i++) {
      const v = step * i;
      svg.appendChild(s("line", { class: "grid", x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v) }));
      svg.appendChild(s("text", { class: "axis", x: pad.l - 6, y: y(v) + 3.5, "text-anchor": "end" }, format(v)));
    }
    for (let i = 0; i <= 3; i++) {
      const t = t0 + ((t1 - t0) * i) / 3;
      const anchor = i === 0 ? "start" : i === 3 ? "end" : "middle";
      svg.appendChild(s("text", { class: "axis", x: x(t), y: height - 6, "text-anchor": anchor }, clock(t)));
    }
    for (const line of series) {
      const pts = line.points.filter((p) => p.v !== null && p.v !== undefined);
      if (pts.length === 0) continue;
      let d = pts.map((p, i) => (i ? "L" : "M") + x(p.t).toFixed(1) + " " + y(p.v).toFixed(1)).join(" ");
      if (line.area) d += ` L${x(pts[pts.length - 1].t).toFixed(1)} ${y(0)} L${x(pts[0].t).toFixed(1)} ${y(0)} Z`;
      svg.appendChild(s("path", { class: line.cls, d }));
    }
    box.appendChild(svg);
  }

  // ------------------------------------------------------------ overview

  function card(key, label, value, sub, tone) {
    return h(
      "div",
      { class: "card " + (tone || ""), dataset: { stat: key } },
      h("div", { class: "label" }, label),
      h("div", { class: "value" }, value),
      h("div", { class: "sub" }, sub || "")
    );
  }

  async function overview() {
    const cards = h("div", { class: "cards", id: "cards" });
    const throughput = h("div", { id: "chart-throughput" });
    const backlog = h("div", { id: "chart-backlog" });
    const topics = h("div", { id: "topics" });
    const consumers = h("div", { id: "consumers" });
    const sampleNote = h("span", { class: "muted", style: null });
    append(content, [
      cards,
      h(
        "div",
        { class: "grid-2" },
        panel("Throughput (events/s)", h("div", { class: "panel-body" }, throughput), h("div", { class: "legend" }, h("span", { class: "l-emitted" }, "emitted"), h("span", { class: "l-handled" }, "handled"))),
        panel("Backlog", h("div", { class: "panel-body" }, backlog), h("div", { class: "legend" }, h("span", { class: "l-backlog" }, "backlog"), h("span", { class: "l-dead" }, "dead letters")))
      ),
      h("div", { class: "grid-2" }, panel("Topics", topics, sampleNote), panel("Consumers", consumers)),
    ]);
    let last = null;
    let topicCounts = null;
    let cycle = 0;

    function drawCharts() {
      if (!last) return;
      const history = last.history;
      chart(
        throughput,
        [
          { cls: "line-handled", points: history.map((p) => ({ t: p.t, v: p.handled_per_sec })) },
          { cls: "line-emitted", points: history.map((p) => ({ t: p.t, v: p.emitted_per_sec })) },
        ],
        false
      );
      chart(
        backlog,
        [
          { cls: "area-backlog", area: true, points: history.map((p) => ({ t: p.t, v: p.backlog })) },
          { cls: "line-dead", points: history.map((p) => ({ t: p.t, v: p.dead_letters })) },
        ],
        true
      );
    }
    window.addEventListener("resize", drawCharts);

    async function refresh() {
      try {
        // Topic counts read up to a thousand events: every fifth refresh.
        if (!topicCounts || cycle % 5 === 0) topicCounts = await api("api/topics");
        cycle += 1;
        const [stats, consumerList] = await Promise.all([api("api/stats"), api("api/consumers")]);
        last = stats;
        showStore(stats.store);
        const st = stats.stats;
        const rates = stats.rates;
        clear(cards);
        append(cards, [
          card("emitted", "Emitted", fmtNum(st.emitted), rates ? fmtRate(rates.emitted_per_sec) + " /s" : "", "accent"),
          card("events", "Events stored", fmtNum(st.events), "", ""),
          card("results", "Results", fmtNum(st.results), rates ? fmtRate(rates.handled_per_sec) + " handled /s" : "", ""),
          card("backlog", "Backlog", fmtNum(st.backlog), st.oldest_pending_age_ms !== null ? "oldest " + fmtDuration(st.oldest_pending_age_ms) : "", st.backlog > 0 ? "warn" : "ok"),
          card("in_flight", "In flight", fmtNum(st.in_flight), "", ""),
          card("dead_letters", "Dead letters", fmtNum(st.dead_letters), st.dead_letters > 0 ? "need attention" : "none", st.dead_letters > 0 ? "bad" : "ok"),
          card("consumers", "Consumers", fmtNum(st.consumers), "", st.consumers > 0 ? "ok" : "warn"),
        ]);
        drawCharts();

        sampleNote.textContent = "newest " + fmtNum(topicCounts.scanned) + " events";
        clear(topics);
        if (topicCounts.topics.length === 0) {
          topics.appendChild(empty("No events yet", "Topics appear here once events are stored.", true));
        } else {
          const max = Math.max(...topicCounts.topics.map((t) => t.count));
          topics.appendChild(
            table(
              ["Topic", h("th", { class: "num" }, "Events"), ""],
              topicCounts.topics.slice(0, 15).map((t) =>
                h(
                  "tr",
                  { dataset: { topicRow: t.topic } },
                  h("td", {}, h("a", { href: "events?topic=" + encodeURIComponent(t.topic) }, topicTag(t.topic))),
                  h("td", { class: "num", dataset: { count: t.count } }, fmtNum(t.count)),
                  h("td", { class: "bar-cell" }, h("div", { class: "bar", style: null, dataset: {} }))
                )
              )
            )
          );
          // Bar widths: set as properties, never as markup.
          topics.querySelectorAll(".bar").forEach((bar, i) => {
            bar.style.width = Math.max(1, (100 * topicCounts.topics[i].count) / max) + "%";
          });
        }

        clear(consumers);
        if (consumerList.length === 0) {
          consumers.appendChild(empty("No consumers", "No process reads this store's group right now.", true));
        } else {
          consumers.appendChild(
            table(
              ["Consumer", h("th", { class: "num" }, "Pending"), "Last seen"],
              consumerList.map((c) =>
                h(
                  "tr",
                  {},
                  h("td", { class: "mono" }, c.name),
                  h("td", { class: "num" }, c.pending > 0 ? h("span", { class: "badge warn" }, fmtNum(c.pending)) : fmtNum(c.pending)),
                  h("td", {}, lastSeen(c.idle_ms))
                )
              )
            )
          );
        }
        if (stats.sample_error) setStatus("warn", "sampling failed: " + stats.sample_error);
        else ok();
        content.dataset.loaded = "true";
      } catch (err) {
        failed(err);
      }
    }
    await refresh();
    setInterval(refresh, 3000);
  }

  // ------------------------------------------------------------ dead letters

  async function deadLetters() {
    const params = new URLSearchParams(location.search);
    // The filter the listing on screen was drawn with: the listing, the
    // count and the bulk actions use it. Typing in the boxes changes it only
    // once Filter is pressed.
    const applied = { topic: (params.get("topic") || "").trim(), event_id: (params.get("event_id") || "").trim() };
    const topicInput = h("input", { type: "search", placeholder: "topic pattern, e.g. order.*", value: applied.topic, "aria-label": "topic" });
    const idInput = h("input", { type: "search", placeholder: "event id", value: applied.event_id, "aria-label": "event id" });
    const selected = new Set();
    const list = h("div", { id: "dead-letter-list" });
    const pager = h("div", { class: "pager" });
    const selectionInfo = h("span", { class: "muted", id: "selection-info" });
    const cursors = [null];
    let letters = [];
    // How many dead letters `applied` selects: {count, complete}, or null
    // while counting.
    let matching = null;

    const appliedFilter = () => {
      const f = {};
      if (applied.topic) f.topic = applied.topic;
      if (applied.event_id) f.event_id = applied.event_id;
      return f;
    };
    const blank = () => !applied.topic && !applied.event_id;
    function describe() {
      if (blank()) return "Every dead letter in the store.";
      const parts = [];
      if (applied.topic) parts.push("topic " + applied.topic);
      if (applied.event_id) parts.push("event id " + applied.event_id);
      return "The dead letters matching " + parts.join(" and ") + ".";
    }
    async function act(kind, body, count, detail, button) {
      const verb = kind === "replay" ? "Replay" : "Purge";
      const what = plural(count, "dead letter", "dead letters");
      const consequence = kind === "replay" ? " They are delivered to the group again." : " They are deleted for good.";
      if (!(await confirmAction(verb + " " + what + "?", detail + consequence, verb + " " + what, kind === "purge", count))) return;
      await busy(button, async () => {
        let result;
        try {
          result = await post("api/" + kind, body);
        } catch (err) {
          // The selection changed under the operator: show what is there now.
          if (err.status === 409) {
            loadCount();
            load();
          }
          throw err;
        }
        const n = kind === "replay" ? result.replayed : result.purged;
        toast((kind === "replay" ? "Replayed " : "Purged ") + plural(n, "dead letter", "dead letters"), "ok");
        selected.clear();
        await Promise.all([load(), loadCount()]);
      });
    }
    const bySelection = (kind) => (button) => {
      const ids = [...selected];
      act(kind, { ids, expected: ids.length }, ids.length, "The " + plural(ids.length, "selected dead letter", "selected dead letters") + ".", button);
    };
    const byFilter = (kind) => (button) => {
      if (!matching) {
        toast("Still counting the matching dead letters…", "bad");
        return;
      }
      if (matching.count === 0) {
        toast("No dead letters match", "bad");
        return;
      }
      act(kind, { filter: appliedFilter(), expected: matching.count, all: blank() }, matching.count, describe(), button);
    };
    const actionButton = (label, props, onClick) => {
      const button = h("button", props, label);
      button.addEventListener("click", () => onClick(button));
      return button;
    };
    const replaySelected = actionButton("Replay selected", { class: "primary", dataset: { action: "replay-selected" } }, bySelection("replay"));
    const purgeSelected = actionButton("Purge selected", { class: "danger", dataset: { action: "purge-selected" } }, bySelection("purge"));
    const replayAll = actionButton("Replay all matching", { dataset: { action: "replay-all" } }, byFilter("replay"));
    const purgeAll = actionButton("Purge all matching", { class: "danger", dataset: { action: "purge-all" } }, byFilter("purge"));
    function updateSelection() {
      replaySelected.disabled = purgeSelected.disabled = selected.size === 0;
      selectionInfo.textContent = selected.size ? selected.size + " selected" : "";
      selectionInfo.dataset.selected = String(selected.size);
    }

    const form = h("form", { class: "toolbar" }, topicInput, idInput, h("button", { type: "submit" }, "Filter"));
    const bulk = h("div", { class: "toolbar" }, selectionInfo, replaySelected, purgeSelected, replayAll, purgeAll);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      applied.topic = topicInput.value.trim();
      applied.event_id = idInput.value.trim();
      // A selection made under another filter is not what is on screen.
      selected.clear();
      cursors.length = 1;
      history.replaceState(null, "", "dead-letters" + query(appliedFilter()));
      load();
      loadCount();
    });
    const countInfo = h("span", { class: "muted", id: "dead-letter-count" });
    append(content, [
      h("div", { class: "toolbar" }, form, h("span", { class: "spacer" }), countInfo),
      h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", {}, "Set aside after their retries"), bulk), list, pager),
    ]);
    api("api/stats").then((st) => showStore(st.store), () => {});
    async function loadCount() {
      matching = null;
      delete countInfo.dataset.count;
      countInfo.textContent = "counting…";
      const filter = { ...appliedFilter() };
      try {
        const counted = await api("api/dead-letter-count" + query(filter));
        // A newer filter was applied meanwhile: its own count wins.
        if (filter.topic !== appliedFilter().topic || filter.event_id !== appliedFilter().event_id) return;
        matching = counted;
        countInfo.dataset.count = String(counted.count);
        countInfo.textContent = (counted.complete ? "" : "at least ") + plural(counted.count, "dead letter", "dead letters") + (blank() ? " in the store" : " match");
      } catch (err) {
        countInfo.textContent = "cannot count: " + err.message;
      }
    }
    loadCount();

    function row(letter) {
      const check = h("input", { type: "checkbox", "aria-label": "select " + letter.id });
      check.checked = selected.has(letter.id);
      check.addEventListener("change", () => {
        if (check.checked) selected.add(letter.id);
        else selected.delete(letter.id);
        updateSelection();
      });
      const one = "Dead letter #" + letter.id + ".";
      const replay = actionButton("Replay", { class: "small primary", dataset: { action: "replay" }, disabled: letter.topic === null }, (b) => act("replay", { ids: [letter.id], expected: 1 }, 1, one, b));
      const purge = actionButton("Purge", { class: "small danger", dataset: { action: "purge" } }, (b) => act("purge", { ids: [letter.id], expected: 1 }, 1, one, b));
      return h(
        "tr",
        { dataset: { deadLetter: letter.id } },
        h("td", {}, check),
        h("td", { class: "nowrap" }, h("div", { class: "mono" }, "#" + letter.id), h("div", { class: "muted small", title: fmtTime(letter.at) }, fmtAgo(letter.at))),
        h("td", { class: "nowrap" }, h("div", {}, topicTag(letter.topic)), h("div", { class: "small" }, eventLink(letter.event_id))),
        h("td", { class: "error-cell" }, h("div", { class: "error-text" }, letter.error)),
        h("td", { class: "num" }, letter.deliveries > 1 ? h("span", { class: "badge warn" }, fmtNum(letter.deliveries)) : fmtNum(letter.deliveries)),
        h("td", {}, payloadPreview(letter.payload, letter.raw, letter.payload_bytes, letter.event_id)),
        h("td", {}, h("div", { class: "row-actions" }, replay, purge))
      );
    }

    async function load() {
      try {
        const cursor = cursors[cursors.length - 1];
        const page = await api("api/dead-letters" + query({ ...appliedFilter(), cursor, limit: 50 }));
        letters = page.items;
        clear(list);
        if (letters.length === 0) {
          list.appendChild(
            !blank()
              ? empty("No dead letters match", "Try another topic pattern or event id.", true)
              : empty("No dead letters", "Every event was handled, or its failures were replayed or purged.")
          );
        } else {
          const all = h("input", { type: "checkbox", "aria-label": "select all" });
          all.addEventListener("change", () => {
            for (const l of letters) all.checked ? selected.add(l.id) : selected.delete(l.id);
            list.querySelectorAll("tbody input[type=checkbox]").forEach((c) => (c.checked = all.checked));
            updateSelection();
          });
          list.appendChild(
            table([h("th", {}, all), "Letter", "Event", "Error", h("th", { class: "num" }, "Deliveries"), "Payload", ""], letters.map(row))
          );
        }
        fillPager(pager, cursors, page.next, load, false);
        updateSelection();
        ok();
        content.dataset.loaded = "true";
      } catch (err) {
        failed(err);
      }
    }
    await load();
  }

  // ------------------------------------------------------------ events

  /** A result's outcome: succeeded, snoozed (a Snooze: not a failure) or failed. */
  function outcomeOf(r) {
    return r.outcome || (r.ok ? "succeeded" : "failed");
  }
  function outcomeBadge(r) {
    const outcome = outcomeOf(r);
    if (outcome === "succeeded") return h("span", { class: "badge ok" }, "ok");
    if (outcome === "snoozed") return h("span", { class: "badge neutral" }, "snoozed");
    return h("span", { class: "badge bad" }, "failed");
  }

  function resultStatus(results, deadLetters) {
    if (deadLetters.length > 0) return h("span", { class: "badge bad" }, "dead-lettered");
    if (results.length === 0) return h("span", { class: "badge neutral" }, "no results yet");
    const latest = new Map();
    for (const r of results) latest.set(r.listener, r);
    const failedCount = [...latest.values()].filter((r) => outcomeOf(r) === "failed").length;
    if (failedCount > 0) return h("span", { class: "badge warn" }, failedCount + " listener" + (failedCount === 1 ? "" : "s") + " failing");
    const snoozedCount = [...latest.values()].filter((r) => outcomeOf(r) === "snoozed").length;
    if (snoozedCount > 0) return h("span", { class: "badge neutral" }, snoozedCount + " listener" + (snoozedCount === 1 ? "" : "s") + " snoozed");
    return h("span", { class: "badge ok" }, "handled");
  }

  /** An event's payload; a cut one with a button fetching all of it. */
  function payloadView(id, ev) {
    const cut = ev.payload_bytes !== null && ev.payload_bytes !== undefined;
    const pre = h("pre", { class: "json", id: "event-payload" }, cut ? String(ev.payload) : json(ev.payload, true));
    if (!cut) return pre;
    const all = h("button", { type: "button", class: "small", dataset: { action: "show-all" } }, "Show all " + fmtNum(ev.payload_bytes) + " bytes");
    const note = h("div", { class: "muted small" }, "Only the first bytes are shown. ", all);
    all.addEventListener("click", () =>
      busy(all, async () => {
        const detail = await api("api/event/" + encodeURIComponent(id) + "?full=true");
        pre.textContent = json(detail.event.payload, true);
        note.remove();
      })
    );
    return h("div", {}, pre, note);
  }

  async function eventDetail(id, box) {
    const detail = await api("api/event/" + encodeURIComponent(id));
    const ev = detail.event;
    const replay = h("button", { class: "primary", dataset: { action: "replay-event" } }, "Replay event");
    replay.addEventListener("click", async () => {
      if (!(await confirmAction("Replay 1 event?", "Event " + id + " is delivered to the group again; listeners that already succeeded for it are skipped.", "Replay 1 event", false, 1))) return;
      await busy(replay, async () => {
        await post("api/replay", { event_id: id });
        toast("Event " + id + " enqueued again", "ok");
        setTimeout(() => eventDetail(id, box).catch(failed), 800);
      });
    });
    const results = detail.results;
    const resultTable =
      results.length === 0
        ? empty("No listener results", "No listener has run for this event yet, or the store keeps no results.", true)
        : table(
            ["Listener", h("th", { class: "num" }, "Attempt"), "Outcome", "Error", "When"],
            results.map((r) =>
              h(
                "tr",
                { dataset: { result: r.listener } },
                h("td", { class: "mono" }, r.listener),
                h("td", { class: "num" }, String(r.attempt)),
                h("td", { dataset: { outcome: outcomeOf(r) } }, outcomeBadge(r)),
                h("td", {}, r.error ? h("div", { class: outcomeOf(r) === "snoozed" ? "muted" : "error-text" }, r.error) : h("span", { class: "muted" }, "–")),
                timeCell(r.at)
              )
            )
          );
    const letters =
      detail.dead_letters.length === 0
        ? null
        : panel(
            "Dead letters",
            table(
              ["Id", "Set aside", "Error", h("th", { class: "num" }, "Deliveries")],
              detail.dead_letters.map((l) =>
                h("tr", {}, h("td", { class: "mono" }, l.id), timeCell(l.at), h("td", {}, h("div", { class: "error-text" }, l.error)), h("td", { class: "num" }, fmtNum(l.deliveries)))
              )
            )
          );
    clear(box);
    append(box, [
      panel(
        "Event",
        h(
          "div",
          { class: "panel-body" },
          h(
            "dl",
            { class: "kv", id: "event-meta" },
            h("dt", {}, "Event id"),
            h("dd", { class: "mono", dataset: { field: "event_id" } }, ev.event_id || "–"),
            h("dt", {}, "Topic"),
            h("dd", {}, topicTag(ev.topic)),
            h("dt", {}, "Status"),
            h("dd", {}, resultStatus(results, detail.dead_letters)),
            h("dt", {}, "Stored"),
            h("dd", { title: fmtTime(ev.at) }, fmtTime(ev.at)),
            h("dt", {}, "Record id"),
            h("dd", { class: "mono" }, ev.id)
          ),
          h("h3", { class: "section" }, "Payload"),
          payloadView(id, ev),
          h("h3", { class: "section" }, "Properties"),
          h("pre", { class: "json" }, json(ev.properties, true))
        ),
        replay
      ),
      panel("Results per listener", h("div", { id: "event-results" }, resultTable), h("span", { class: "muted" }, results.length + " attempt" + (results.length === 1 ? "" : "s"))),
      letters,
    ]);
    content.dataset.loaded = "true";
  }

  async function events() {
    const params = new URLSearchParams(location.search);
    const id = params.get("id");
    const idInput = h("input", { type: "search", name: "id", placeholder: "look up an event id", value: id || "", "aria-label": "event id", id: "event-id-input" });
    const topicInput = h("input", { type: "search", name: "topic", placeholder: "topic pattern, e.g. order.*", value: params.get("topic") || "", "aria-label": "topic" });
    const lookup = h("form", { class: "toolbar", method: "get", action: "events" }, idInput, h("button", { type: "submit", class: "primary" }, "Look up"));
    const box = h("div", { style: null });
    box.style.display = "flex";
    box.style.flexDirection = "column";
    box.style.gap = "20px";
    append(content, [lookup, box]);
    api("api/stats").then((s) => showStore(s.store), () => {});
    if (id) {
      try {
        await eventDetail(id, box);
        ok();
      } catch (err) {
        if (err.status === 404) {
          box.appendChild(h("section", { class: "panel" }, empty("No such event", "The store holds no event with id " + id + ".", true, "?")));
          setStatus("warn", "not found");
        } else failed(err);
        content.dataset.loaded = "true";
      }
      return;
    }
    // The newest events, filtered by topic.
    const list = h("div", {});
    const pager = h("div", { class: "pager" });
    const filter = h("form", { class: "toolbar" }, topicInput, h("button", { type: "submit" }, "Filter"));
    const cursors = [null];
    // The topic the listing on screen was drawn with (pages follow it, not
    // the box, until Filter is pressed).
    let appliedTopic = topicInput.value.trim();
    filter.addEventListener("submit", (e) => {
      e.preventDefault();
      appliedTopic = topicInput.value.trim();
      cursors.length = 1;
      history.replaceState(null, "", "events" + query({ topic: appliedTopic }));
      load();
    });
    append(box, [panel("Newest events", h("div", {}, list, pager), filter)]);
    async function load() {
      try {
        const page = await api("api/events" + query({ topic: appliedTopic, cursor: cursors[cursors.length - 1], limit: 50 }));
        clear(list);
        if (page.items.length === 0) list.appendChild(empty("No events", appliedTopic ? "No stored event matches this topic pattern." : "The store holds no events yet.", true));
        else
          list.appendChild(
            table(
              ["Stored", "Topic", "Event id", "Payload", "Record id"],
              page.items.map((ev) => h("tr", { dataset: { event: ev.event_id || "" } }, timeCell(ev.at), h("td", {}, topicTag(ev.topic)), h("td", {}, eventLink(ev.event_id)), h("td", {}, payloadPreview(ev.payload, null, ev.payload_bytes, ev.event_id)), h("td", { class: "mono muted" }, ev.id)))
            )
          );
        fillPager(pager, cursors, page.next, load, false);
        ok();
        content.dataset.loaded = "true";
      } catch (err) {
        failed(err);
      }
    }
    await load();
  }

  // ------------------------------------------------------------ live tail

  async function tail() {
    const topicInput = h("input", { type: "search", placeholder: "topic pattern (empty: all)", "aria-label": "topic" });
    const toggle = h("button", { class: "primary", type: "submit" }, "Pause");
    const clearButton = h("button", { type: "button" }, "Clear");
    const counter = h("span", { class: "muted" }, "0 events");
    const body = h("tbody", {});
    const placeholder = empty("Waiting for new events…", "New events appear here as they are stored.", true, "…");
    const tableBox = h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, ["Stored", "Topic", "Event id", "Payload", "Record id"].map((x) => h("th", {}, x)))), body));
    const form = h("form", { class: "toolbar" }, topicInput, toggle, clearButton, h("span", { class: "spacer" }), counter);
    append(content, [form, h("section", { class: "panel" }, placeholder, tableBox)]);
    tableBox.style.display = "none";
    let source = null;
    let count = 0;
    const MAX_ROWS = 500;

    function start() {
      stop();
      source = new EventSource("api/tail" + query({ topic: topicInput.value.trim() }));
      setStatus("", "connecting…");
      source.onopen = () => setStatus("ok", "live · following new events");
      source.addEventListener("event", (e) => {
        const ev = JSON.parse(e.data);
        count += 1;
        counter.textContent = fmtNum(count) + " event" + (count === 1 ? "" : "s");
        placeholder.style.display = "none";
        tableBox.style.display = "";
        const row = h("tr", { class: "tail-row-new", dataset: { event: ev.event_id || "" } }, h("td", { class: "nowrap" }, clock(ev.at || Date.now())), h("td", {}, topicTag(ev.topic)), h("td", {}, eventLink(ev.event_id)), h("td", {}, payloadPreview(ev.payload, null, ev.payload_bytes, ev.event_id)), h("td", { class: "mono muted" }, ev.id));
        body.insertBefore(row, body.firstChild);
        while (body.childNodes.length > MAX_ROWS) body.removeChild(body.lastChild);
      });
      source.addEventListener("error", (e) => {
        if (e.data) {
          try {
            setStatus("bad", "read failed: " + JSON.parse(e.data).error);
          } catch (_) {
            setStatus("bad", "read failed");
          }
        } else if (source && source.readyState !== EventSource.OPEN) setStatus("warn", "reconnecting…");
      });
      toggle.textContent = "Pause";
    }
    function stop() {
      if (source) source.close();
      source = null;
      toggle.textContent = "Follow";
      setStatus("", "paused");
    }
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (source && e.submitter === toggle) stop();
      else start();
    });
    topicInput.addEventListener("change", () => start());
    clearButton.addEventListener("click", () => {
      clear(body);
      count = 0;
      counter.textContent = "0 events";
      placeholder.style.display = "";
      tableBox.style.display = "none";
    });
    start();
    content.dataset.loaded = "true";
    api("api/stats").then((s) => showStore(s.store), () => {});
  }

  // ------------------------------------------------------------ pending

  async function pending() {
    const consumers = h("div", {});
    const list = h("div", {});
    const pager = h("div", { class: "pager" });
    const cursors = [null];
    append(content, [panel("Consumers", consumers), panel("Pending deliveries", h("div", {}, list, pager), h("span", { class: "muted" }, "taken by a consumer, not yet acknowledged"))]);
    async function load() {
      try {
        const [stats, consumerList, page] = await Promise.all([api("api/stats"), api("api/consumers"), api("api/pending" + query({ cursor: cursors[cursors.length - 1], limit: 100 }))]);
        showStore(stats.store);
        clear(consumers);
        consumers.appendChild(
          consumerList.length === 0
            ? empty("No consumers", "No process reads this store's group right now.", true)
            : table(
                ["Consumer", h("th", { class: "num" }, "Pending"), "Last seen"],
                consumerList.map((c) => h("tr", {}, h("td", { class: "mono" }, c.name), h("td", { class: "num" }, c.pending > 0 ? h("span", { class: "badge warn" }, fmtNum(c.pending)) : fmtNum(c.pending)), h("td", {}, lastSeen(c.idle_ms))))
              )
        );
        clear(list);
        if (page.items.length === 0) list.appendChild(empty("Nothing pending", "Every delivery taken by a consumer was acknowledged."));
        else
          list.appendChild(
            table(
              ["Id", "Consumer", "Idle", h("th", { class: "num" }, "Deliveries"), h("th", { class: "num" }, "Events"), "Topic", "Event id", "Payload"],
              page.items.map((p) =>
                h(
                  "tr",
                  { dataset: { pending: p.id } },
                  h("td", { class: "mono" }, p.id),
                  h("td", { class: "mono" }, p.consumer),
                  h("td", { class: "nowrap" }, p.idle_ms > 60000 ? h("span", { class: "badge warn" }, fmtDuration(p.idle_ms)) : fmtDuration(p.idle_ms)),
                  h("td", { class: "num" }, p.deliveries > 1 ? h("span", { class: "badge warn" }, String(p.deliveries)) : String(p.deliveries)),
                  h("td", { class: "num" }, fmtNum(p.events)),
                  h("td", {}, p.topic === null && p.events > 1 ? h("span", { class: "muted" }, "a range of " + fmtNum(p.events) + " events") : topicTag(p.topic)),
                  h("td", {}, eventLink(p.event_id)),
                  h("td", {}, p.payload === null ? h("span", { class: "muted" }, "–") : payloadPreview(p.payload, null, p.payload_bytes, p.event_id))
                )
              )
            )
          );
        fillPager(pager, cursors, page.next, load, true);
        ok();
        content.dataset.loaded = "true";
      } catch (err) {
        failed(err);
      }
    }
    await load();
    setInterval(load, 5000);
  }

  const logout = document.querySelector('[data-action="logout"]');
  if (logout)
    logout.addEventListener("click", async () => {
      try {
        await post("logout", {});
      } finally {
        location.href = "./";
      }
    });

  // ------------------------------------------------------------ scheduled

  // An expiry relative to now: "in 12 s", "3.1 s ago".
  function fmtUntil(ms) {
    const diff = ms - Date.now();
    return diff >= 0 ? "in " + fmtDuration(diff) : fmtDuration(-diff) + " ago";
  }

  async function scheduled() {
    const list = h("div", {});
    const pager = h("div", { class: "pager" });
    const cursors = [null];
    const leaseList = h("div", { id: "leases" });
    const slotList = h("div", { id: "limit-slots" });
    append(content, [
      panel("Scheduled events", h("div", {}, list, pager), h("span", { class: "muted" }, "delayed events held until they are due, soonest first")),
      panel("Leader leases", leaseList, h("span", { class: "muted" }, "who fires each periodic schedule, and its last tick")),
      panel("Limit slots", slotList, h("span", { class: "muted" }, "listener limit slots in use across processes")),
    ]);
    // Stored strings go in as text (h appends text nodes), never markup.
    function drawLeases(view) {
      clear(leaseList);
      if (!view.supported) leaseList.appendChild(empty("No leases here", "This store keeps no leader leases.", true));
      else if (view.items.length === 0) leaseList.appendChild(empty("No leases", "No periodic schedule has elected a leader yet.", true));
      else
        leaseList.appendChild(
          table(
            ["Name", "Holder", "State", "Expires", "Token", "Last tick"],
            view.items.map((l) =>
              h(
                "tr",
                { dataset: { lease: l.name } },
                h("td", { class: "mono" }, l.name),
                h("td", { class: "mono" }, l.holder),
                h("td", {}, l.held ? "held" : "expired"),
                h("td", { class: "nowrap", title: fmtTime(l.expires_at) }, fmtUntil(l.expires_at)),
                h("td", { class: "mono" }, String(l.token)),
                h("td", { class: "nowrap" }, l.progress === null ? "–" : fmtTime(l.progress))
              )
            )
          )
        );
    }
    function drawSlots(view) {
      clear(slotList);
      if (!view.supported) slotList.appendChild(empty("No shared limits here", "This store does not share listener limits.", true));
      else if (view.items.length === 0) slotList.appendChild(empty("No slots in use", "No limited listener runs now.", true));
      else
        slotList.appendChild(
          table(
            ["Key", "Holder", "Expires"],
            view.items.map((s) =>
              h(
                "tr",
                { dataset: { slot: s.key } },
                h("td", { class: "mono" }, s.key),
                h("td", { class: "mono" }, s.holder),
                h("td", { class: "nowrap", title: fmtTime(s.expires_at) }, fmtUntil(s.expires_at))
              )
            )
          )
        );
    }
    async function load() {
      try {
        const [stats, page, leases, slots] = await Promise.all([
          api("api/stats"),
          api("api/scheduled" + query({ cursor: cursors[cursors.length - 1], limit: 100 })),
          api("api/leases" + query({ limit: 100 })),
          api("api/limit-slots" + query({ limit: 100 })),
        ]);
        showStore(stats.store);
        drawLeases(leases);
        drawSlots(slots);
        clear(list);
        if (!page.supported) list.appendChild(empty("Not scheduled here", "This store does not hold delayed events.", true));
        else if (page.items.length === 0) list.appendChild(empty("Nothing scheduled", "No delayed event waits for its due time.", true));
        else
          list.appendChild(
            table(
              ["Id", "Due", "Topic", "Event id", "Payload"],
              page.items.map((e) =>
                h(
                  "tr",
                  { dataset: { scheduled: e.id } },
                  h("td", { class: "mono" }, e.id),
                  h("td", { class: "nowrap", title: fmtTime(e.due_at) }, fmtTime(e.due_at)),
                  h("td", {}, topicTag(e.topic)),
                  h("td", { class: "mono" }, e.event_id || "–"),
                  h("td", {}, payloadPreview(e.payload, null, e.payload_bytes, null))
                )
              )
            )
          );
        fillPager(pager, cursors, page.next, load, true);
        ok();
        content.dataset.loaded = "true";
      } catch (err) {
        failed(err);
      }
    }
    await load();
    setInterval(load, 5000);
  }

  const pages = { overview, "dead-letters": deadLetters, events, tail, pending, scheduled };
  (pages[PAGE] || overview)().catch(failed);
})();
