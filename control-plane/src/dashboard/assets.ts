/**
 * The dashboard's only static assets, served from the Worker (no build step, no external
 * requests): one stylesheet and one small script. Kept as strings so the Content-Security-Policy
 * can forbid inline script and style.
 */

export const APP_CSS = `
:root {
  color-scheme: light dark;
  --bg: #f5f6f8; --fg: #1b1f24; --muted: #57606a; --card: #fff; --line: #d5dae0;
  --accent: #1f56d1; --on-accent: #fff; --ok: #1a7f37; --bad: #c42b1c; --warn: #8a5a00; --info: #0b62c4;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0f1216; --fg: #e6e8eb; --muted: #9ba5b1; --card: #181c22; --line: #2f3640;
    --accent: #7aa2ff; --on-accent: #0f1216; --ok: #3fb950; --bad: #ff7b72; --warn: #d29922; --info: #58a6ff;
  }
}
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Ubuntu, "Noto Sans", sans-serif; background: var(--bg); color: var(--fg); }
a { color: var(--accent); }
code, pre { font-family: var(--mono); font-size: 13px; }
h1 { font-size: 22px; margin: 4px 0 16px; overflow-wrap: anywhere; }
h2 { font-size: 16px; margin: 0 0 12px; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.skip { position: absolute; left: -9999px; top: 8px; }
.skip:focus { left: 8px; background: var(--card); padding: 8px 12px; z-index: 10; }
.sr-only { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
.muted { color: var(--muted); }
.block { display: block; }
.empty { color: var(--muted); font-style: italic; margin: 0; }
.hint { color: var(--muted); font-size: 13px; margin: 0 0 8px; }
.notice, .error { padding: 10px 12px; border-radius: 8px; border: 1px solid; margin: 0 0 16px; overflow-wrap: anywhere; }
.notice { border-color: var(--ok); }
.error { border-color: var(--bad); color: var(--bad); }

header.top { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 20px; padding: 10px 16px; background: var(--card); border-bottom: 1px solid var(--line); }
.brand { font-weight: 700; font-size: 18px; text-decoration: none; color: var(--fg); }
header nav ul { display: flex; flex-wrap: wrap; gap: 4px; list-style: none; margin: 0; padding: 0; }
header nav a { display: block; padding: 6px 10px; border-radius: 6px; text-decoration: none; }
header nav a[aria-current="page"] { background: var(--accent); color: var(--on-accent); }
.signout { margin-left: auto; display: flex; align-items: center; gap: 8px; }
.switcher { display: flex; align-items: center; gap: 6px; }
.switcher label { font-size: 13px; }
.switcher select { max-width: 60vw; }
.subtitle { display: block; font-size: 14px; font-weight: 400; color: var(--muted); }
.project-list { list-style: none; padding: 0; margin: 0; display: grid; gap: 8px; }
.project-list a { font-weight: 600; }
.who { font-size: 12px; color: var(--muted); border: 1px solid var(--line); border-radius: 999px; padding: 1px 8px; }
main { max-width: 1240px; margin: 0 auto; padding: 16px; }

.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 16px; margin: 0 0 16px; min-width: 0; }
.narrow { max-width: 460px; margin: 32px auto; }
.crumbs { margin: 0; font-size: 13px; }
button { font: inherit; padding: 7px 14px; min-height: 38px; border-radius: 6px; border: 1px solid var(--line); background: var(--card); color: var(--fg); cursor: pointer; }
button.primary { background: var(--accent); border-color: var(--accent); color: var(--on-accent); font-weight: 600; }
button.danger { color: var(--bad); border-color: currentColor; }
button:disabled { opacity: 0.6; cursor: progress; }
input, textarea, select { font: inherit; padding: 7px 9px; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--fg); max-width: 100%; }
label { font-weight: 600; }
.stack { display: flex; flex-direction: column; gap: 8px; }
.stack button { align-self: flex-start; }
form.inline { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin: 0 0 16px; }
.actions { margin-top: 12px; }

.badge { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 12px; font-weight: 650; border: 1px solid currentColor; white-space: nowrap; }
.s-queued, .s-canceled, .s-offline { color: var(--muted); }
.s-assigned, .s-running { color: var(--info); }
.s-completed, .s-online { color: var(--ok); }
.s-failed { color: var(--bad); }
.s-draining { color: var(--warn); }

table.grid { width: 100%; border-collapse: collapse; }
.grid th, .grid td { text-align: left; padding: 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
.grid th { font-size: 12px; text-transform: uppercase; letter-spacing: 0.03em; color: var(--muted); }
.labels { list-style: none; margin: 0; padding: 0; }
.nowrap { white-space: nowrap; }
.hash { font-size: 12px; }
.filters ul { display: flex; flex-wrap: wrap; gap: 6px; list-style: none; padding: 0; margin: 0 0 12px; }
.filters a { display: inline-block; padding: 4px 12px; border: 1px solid var(--line); border-radius: 999px; text-decoration: none; }
.filters a[aria-current="page"] { background: var(--accent); border-color: var(--accent); color: var(--on-accent); }
.pager { margin: 12px 0 0; }

.columns { display: grid; grid-template-columns: minmax(0, 2fr) minmax(0, 3fr); gap: 16px; align-items: start; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px 16px; margin: 0; }
.facts dt, .stats dt { font-size: 12px; color: var(--muted); }
.facts dd, .stats dd { margin: 0; overflow-wrap: anywhere; }
.status-line { display: flex; flex-wrap: wrap; align-items: center; gap: 10px; font-size: 16px; margin: 0 0 12px; }
.timeline { list-style: none; margin: 0 0 0 6px; padding: 0 0 0 16px; border-left: 2px solid var(--line); }
.timeline li { position: relative; padding: 0 0 12px; }
.timeline li::before { content: ""; position: absolute; left: -25px; top: 5px; width: 12px; height: 12px; border-radius: 50%; background: var(--card); border: 2px solid var(--muted); }
.timeline li.end::before { background: currentColor; border-color: currentColor; }
.timeline li.now .what { color: var(--info); }
.timeline time { display: block; font-size: 12px; color: var(--muted); }
.timeline .what { font-weight: 600; color: var(--fg); }
.timeline .detail { display: block; color: var(--muted); overflow-wrap: anywhere; }

pre.log { background: #0d1117; color: #e6edf3; padding: 12px; border-radius: 8px; min-height: 120px; max-height: 60vh; overflow: auto; white-space: pre-wrap; overflow-wrap: anywhere; margin: 0; }
pre.log:empty::before { content: "Waiting for output\\2026"; color: #9da7b3; }
pre.log[data-done]:empty::before { content: "(no output)"; }
.ln.stderr { color: #ffa198; }
.ln.system { color: #9da7b3; font-style: italic; }
.ln.build { color: #a5d6ff; }
pre.code { background: var(--bg); padding: 12px; border-radius: 8px; overflow: auto; margin: 0; max-height: 40vh; }

textarea[data-editor] { display: block; width: 100%; min-height: 280px; font-family: var(--mono); font-size: 14px; line-height: 1.45; tab-size: 4; white-space: pre; overflow-wrap: normal; overflow: auto; resize: vertical; }
.run-options { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-end; margin: 12px 0 16px; }
.field { display: flex; flex-direction: column; gap: 4px; }
.field input, .field select { width: 170px; }
.run-output .more { margin: 8px 0 0; }

.pools { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 540px), 1fr)); gap: 16px; }
.pools .card { margin: 0; }
.stats { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 8px; margin: 0 0 14px; }
.stats dd { font-size: 22px; font-weight: 650; }
.stats dd small { font-size: 12px; font-weight: 400; }
.charts { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 16px; }
.chart { margin: 0; }
.chart figcaption { font-size: 13px; margin: 0 0 4px; }
.chart svg { display: block; width: 100%; height: 72px; background: var(--bg); border-radius: 6px; }
.bar.completed { fill: var(--ok); }
.bar.failed { fill: var(--bad); }
.bar.canceled { fill: var(--muted); }
.bar.wait { fill: var(--info); }
.bar.queued { fill: var(--line); }
.bar.assigned, .bar.running { fill: var(--info); }
.progress { margin: 0 0 14px; }
.progress svg { display: block; width: 100%; height: 20px; background: var(--bg); border-radius: 6px; }
.counts, .indices { display: flex; flex-wrap: wrap; gap: 6px 14px; list-style: none; margin: 8px 0 0; padding: 0; }
.actions form { display: inline-block; margin: 0 8px 0 0; }
h3 { font-size: 14px; margin: 12px 0 6px; }
.axis { stroke: var(--line); }
.legend { font-size: 12px; color: var(--muted); margin: 4px 0 0; }
.key::before { content: ""; display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 0; border-radius: 2px; vertical-align: -1px; }
.key.completed::before { background: var(--ok); }
.key.failed::before { background: var(--bad); }
.key.canceled::before { background: var(--muted); }
.links { display: flex; gap: 16px; margin: 12px 0 0; }
.copyable pre.code { white-space: pre-wrap; overflow-wrap: anywhere; }
.copy-row { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin: 6px 0 12px; }
label.check { font-weight: 400; display: block; }
fieldset { border: 1px solid var(--line); border-radius: 6px; margin: 0; }
.narrow-form { max-width: 520px; }

@media (max-width: 760px) {
  main { padding: 12px; }
  .columns, .charts { grid-template-columns: minmax(0, 1fr); }
  .stats { grid-template-columns: repeat(2, minmax(0, 1fr)); }
  .signout { margin-left: 0; }
  .switcher { flex-wrap: wrap; }
  .grid thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  .grid, .grid tbody, .grid tr, .grid td { display: block; width: 100%; }
  .grid tr { border: 1px solid var(--line); border-radius: 8px; margin: 0 0 10px; padding: 4px 10px; }
  .grid td { position: relative; border: 0; padding: 4px 0 4px 8.5em; min-height: 28px; overflow-wrap: anywhere; }
  .grid td.nowrap { white-space: normal; }
  .grid td::before { content: attr(data-label); position: absolute; left: 0; top: 5px; width: 8em; font-size: 12px; color: var(--muted); }
  .field, .field input, .field select { width: 100%; }
  .run-options button { width: 100%; }
}
`;

export const APP_JS = `"use strict";
(function () {
  var FRAGMENT = { "x-gridx-fragment": "1" };
  var lastHtml = new WeakMap();

  function toLogin() {
    location.assign("/ui/login?next=" + encodeURIComponent(location.pathname + location.search));
  }

  // Timestamps arrive in UTC; show them in the reader's time zone.
  function localize(root) {
    root.querySelectorAll("time[data-local]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) {
        t.title = t.textContent;
        t.textContent = d.toLocaleString();
      }
    });
  }

  function later(fn, el, ms) {
    setTimeout(function () {
      if (el.isConnected) fn(el);
    }, ms);
  }

  function parse(html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html;
    return tpl.content;
  }

  // A live region: fetch its fragment, swap in the new children, and keep going while the
  // server still marks it live. Regions with aria-live keep their element, so screen readers
  // announce the change; a region holding keyboard focus waits, so focus is not lost.
  function refresh(el) {
    var every = Number(el.getAttribute("data-every")) || 2000;
    if (document.hidden || el.contains(document.activeElement)) return later(refresh, el, every);
    fetch(el.getAttribute("data-live"), { headers: FRAGMENT, credentials: "same-origin" })
      .then(function (res) {
        if (res.status === 401) return toLogin();
        if (!res.ok) return later(refresh, el, every * 2);
        return res.text().then(function (html) {
          if (!el.isConnected) return;
          if (lastHtml.get(el) !== html) {
            lastHtml.set(el, html);
            var next = parse(html).firstElementChild;
            if (!next) return later(refresh, el, every);
            next.querySelectorAll("[aria-live][id]").forEach(function (fresh) {
              var old = el.querySelector("#" + CSS.escape(fresh.id));
              if (!old) return;
              if (old.innerHTML !== fresh.innerHTML) old.innerHTML = fresh.innerHTML;
              fresh.replaceWith(old);
            });
            el.replaceChildren.apply(el, Array.from(next.childNodes));
            localize(el);
            if (next.hasAttribute("data-live")) el.setAttribute("data-live", next.getAttribute("data-live"));
            else el.removeAttribute("data-live");
          }
          if (el.hasAttribute("data-live") && !el.hasAttribute("data-events")) later(refresh, el, every);
        });
      })
      .catch(function () {
        later(refresh, el, every * 2);
      });
  }

  // A log panel: lines pushed by the server (server-sent events) after the cursor until the job
  // ends. The browser reconnects on its own after a drop or a "resume", sending the last id.
  function stream(el) {
    var src = el.getAttribute("data-stream");
    if (!src || !window.EventSource) return;
    var after = el.getAttribute("data-after");
    var source = new EventSource(src + (after ? "?after=" + encodeURIComponent(after) : ""));
    var done = function () {
      source.close();
      el.removeAttribute("data-stream");
      el.setAttribute("data-done", "1");
    };
    source.addEventListener("log", function (e) {
      var line = JSON.parse(e.data);
      var stick = el.scrollTop + el.clientHeight >= el.scrollHeight - 8;
      var span = document.createElement("span");
      span.className = "ln " + line.stream;
      span.textContent = line.text + "\\n";
      el.append(span);
      if (stick) el.scrollTop = el.scrollHeight;
    });
    source.addEventListener("end", done);
    source.addEventListener("error", function (e) {
      // A server's "error" event carries data (the session no longer reads the job); a dropped connection does not.
      if (e.data) {
        done();
        toLogin();
      }
    });
  }

  // A region refreshed when its job's events say something changed, instead of on a timer.
  function onEvents(el) {
    var src = el.getAttribute("data-events");
    if (!src || !window.EventSource) return false;
    var source = new EventSource(src);
    source.addEventListener("job", function () {
      if (!el.isConnected || !el.hasAttribute("data-live")) return source.close();
      refresh(el);
    });
    return true;
  }

  function start(root) {
    localize(root);
    root.querySelectorAll("[data-live]").forEach(function (el) {
      if (!onEvents(el)) later(refresh, el, Number(el.getAttribute("data-every")) || 2000);
    });
    root.querySelectorAll("[data-stream]").forEach(function (el) {
      stream(el);
    });
  }

  // The code editor: Tab indents (Esc, then Tab, leaves it), Ctrl/Cmd+Enter runs.
  function editor(area) {
    var trapTab = true;
    area.addEventListener("focus", function () {
      trapTab = true;
    });
    area.addEventListener("keydown", function (e) {
      if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
        e.preventDefault();
        area.form.requestSubmit();
        return;
      }
      if (e.key === "Escape") {
        trapTab = false;
        return;
      }
      if (e.key !== "Tab" || !trapTab || e.altKey || e.ctrlKey || e.metaKey) return;
      e.preventDefault();
      var start = area.selectionStart, end = area.selectionEnd, value = area.value;
      var lineStart = value.lastIndexOf("\\n", start - 1) + 1;
      if (e.shiftKey) {
        var removed = value.slice(lineStart, lineStart + 4).match(/^ {1,4}/);
        if (!removed) return;
        area.setRangeText("", lineStart, lineStart + removed[0].length, "preserve");
        area.setSelectionRange(Math.max(lineStart, start - removed[0].length), Math.max(lineStart, end - removed[0].length));
      } else {
        area.setRangeText("    ", start, end, "end");
      }
    });
  }

  // Run: submit without leaving the page and follow the new job's output in place.
  function runForm(form) {
    var button = form.querySelector("button[type=submit]");
    var result = document.getElementById("run-result");
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (button.disabled) return;
      button.disabled = true;
      button.textContent = "Submitting\\u2026";
      fetch(form.action, {
        method: "POST",
        headers: FRAGMENT,
        credentials: "same-origin",
        body: new URLSearchParams(new FormData(form)),
      })
        .then(function (res) {
          if (res.status === 401) return toLogin();
          return res.text().then(function (html) {
            result.replaceChildren(parse(html));
            start(result);
            var job = res.headers.get("x-gridx-job");
            if (job) history.replaceState(null, "", "/ui/run?job=" + encodeURIComponent(job));
          });
        })
        .catch(function () {
          result.replaceChildren(parse('<p class="error" role="alert">Could not reach the control plane; try again.</p>'));
        })
        .finally(function () {
          button.disabled = false;
          button.textContent = "Run";
        });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("textarea[data-editor]").forEach(editor);
    document.querySelectorAll("form[data-run]").forEach(runForm);
    start(document);
  });
})();
`;
