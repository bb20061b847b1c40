"use strict";
(function () {
  // Rows come from the embedded JSON (one array per job: the columns, then the stdout and
  // stderr tails); only the current page is put in the DOM, so big sweeps stay quick.
  const rows = JSON.parse(document.getElementById("jobs-data").textContent);
  const columns = JSON.parse(document.getElementById("columns-data").textContent);
  const keys = columns.map(c => c.key);
  const STATE = keys.indexOf("job_state"), ERROR = keys.indexOf("error"), NUM = columns.length;
  const FAILED = new Set(JSON.parse(document.getElementById("failed-states").textContent));
  const text = v => (v === null || v === undefined) ? "" : String(v);
  const haystack = rows.map(r => r.slice(0, NUM).map(text).join("\u0001").toLowerCase());
  const view = { order: rows.map((_, i) => i), shown: [], sortCol: -1, sortDir: 1, page: 0,
                 size: 100, filter: "", state: "", error: null, open: new Set() };
  const $ = id => document.getElementById(id);
  const body = document.querySelector("#jobs-table tbody");

  function compare(a, b) {
    const x = rows[a][view.sortCol], y = rows[b][view.sortCol];
    if (x === y) return a - b;
    if (x === null) return 1;
    if (y === null) return -1;
    const r = (typeof x === "number" && typeof y === "number") ? x - y : text(x).localeCompare(text(y), undefined, { numeric: true });
    return (r || a - b) * view.sortDir;
  }

  function keep(i) {
    const row = rows[i], state = row[STATE];
    if (view.state === "(failed)" ? !FAILED.has(state) : (view.state && state !== view.state)) return false;
    if (view.error !== null && !(FAILED.has(state) && (row[ERROR] === null ? "(no error line)" : row[ERROR]) === view.error)) return false;
    return !view.filter || haystack[i].includes(view.filter);
  }

  function refresh() {
    view.shown = view.order.filter(keep);
    const pages = Math.max(1, Math.ceil(view.shown.length / view.size));
    view.page = Math.min(view.page, pages - 1);
    draw(pages);
  }

  function cell(tr, value, key) {
    const td = document.createElement("td");
    td.textContent = text(value);
    if (typeof value === "number") td.className = "num";
    if (key === "job_state") td.className = "state-" + value + (FAILED.has(value) ? " failed" : "");
    if (key === "error") td.className = "error";
    tr.appendChild(td);
  }

  function details(i) {
    const tr = document.createElement("tr"), td = document.createElement("td");
    tr.className = "details";
    td.colSpan = NUM + 1;
    [["stdout (end)", rows[i][NUM]], ["stderr (end)", rows[i][NUM + 1]]].forEach(([label, out]) => {
      const b = document.createElement("b"), pre = document.createElement("pre");
      b.textContent = label;
      pre.textContent = out || "(empty)";
      td.append(b, pre);
    });
    tr.appendChild(td);
    return tr;
  }

  function draw(pages) {
    const start = view.page * view.size, fragment = document.createDocumentFragment();
    view.shown.slice(start, start + view.size).forEach(i => {
      const tr = document.createElement("tr"), td = document.createElement("td"), button = document.createElement("button");
      tr.dataset.row = i;
      button.type = "button";
      button.className = "toggle";
      button.title = "stdout and stderr";
      button.textContent = view.open.has(i) ? "\u25BE" : "\u25B8";
      button.addEventListener("click", () => { view.open.has(i) ? view.open.delete(i) : view.open.add(i); draw(pages); });
      td.appendChild(button);
      tr.appendChild(td);
      rows[i].slice(0, NUM).forEach((v, c) => cell(tr, v, keys[c]));
      fragment.appendChild(tr);
      if (view.open.has(i)) fragment.appendChild(details(i));
    });
    body.replaceChildren(fragment);
    const end = Math.min(start + view.size, view.shown.length);
    $("page-info").textContent = (view.shown.length ? `${start + 1}\u2013${end}` : "0") + ` of ${view.shown.length} jobs` +
      (view.shown.length < rows.length ? ` (filtered from ${rows.length})` : "") + ` \u00b7 page ${view.page + 1} of ${pages}`;
    $("prev").disabled = view.page === 0;
    $("next").disabled = view.page >= pages - 1;
  }

  document.querySelectorAll("th.sortable").forEach(th => th.addEventListener("click", () => {
    const col = Number(th.dataset.col);
    view.sortDir = view.sortCol === col ? -view.sortDir : 1;
    view.sortCol = col;
    view.order.sort(compare);
    document.querySelectorAll("th.sortable").forEach(h => h.classList.remove("asc", "desc"));
    th.classList.add(view.sortDir > 0 ? "asc" : "desc");
    view.page = 0;
    refresh();
  }));
  $("filter").addEventListener("input", e => { view.filter = e.target.value.trim().toLowerCase(); view.page = 0; refresh(); });
  $("state-filter").addEventListener("change", e => { view.state = e.target.value; view.page = 0; refresh(); });
  $("page-size").addEventListener("change", e => { view.size = Number(e.target.value); view.page = 0; refresh(); });
  $("prev").addEventListener("click", () => { view.page -= 1; refresh(); });
  $("next").addEventListener("click", () => { view.page += 1; refresh(); });
  function showError(error) {
    view.error = error;
    $("error-filter").hidden = error === null;
    $("error-filter").querySelector("code").textContent = error || "";
    view.page = 0;
    refresh();
  }
  $("clear-error").addEventListener("click", () => showError(null));
  document.querySelectorAll("button.show-group").forEach(b => b.addEventListener("click", () => {
    showError(b.closest("tr").dataset.error);
    $("jobs").scrollIntoView();
  }));
  refresh();
})();
