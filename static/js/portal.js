/* CM portal: sortable and filterable tables, for any table[data-sortable] (sort + filter) or
 * table[data-filterable] (filter only); confirmation of form[data-confirm]. No dependencies. */
(function () {
  "use strict";

  function cellValue(row, index) {
    var cell = row.cells[index];
    if (!cell) return "";
    return cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent.trim();
  }

  function compare(a, b, numeric) {
    if (numeric) {
      var x = parseFloat(a), y = parseFloat(b);
      if (isNaN(x)) x = -Infinity;
      if (isNaN(y)) y = -Infinity;
      return x - y;
    }
    return a.localeCompare(b, undefined, { numeric: true, sensitivity: "base" });
  }

  // Rows that belong to the row above (e.g. an error line under a sync run) move with it.
  function groups(tbody) {
    var out = [];
    Array.prototype.forEach.call(tbody.rows, function (row) {
      if (row.cells.length === 1 && row.cells[0].colSpan > 1 && out.length) {
        out[out.length - 1].push(row);
      } else {
        out.push([row]);
      }
    });
    return out;
  }

  function makeSortable(table) {
    var tbody = table.tBodies[0];
    if (!tbody || !table.tHead) return;
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (th, index) {
      if (th.hasAttribute("data-nosort")) return;
      th.tabIndex = 0;
      th.setAttribute("role", "button");
      function sort() {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var numeric = th.getAttribute("data-sort") === "number";
        var sorted = groups(tbody).sort(function (a, b) {
          var r = compare(cellValue(a[0], index), cellValue(b[0], index), numeric);
          return ascending ? r : -r;
        });
        var fragment = document.createDocumentFragment();
        sorted.forEach(function (group) { group.forEach(function (row) { fragment.appendChild(row); }); });
        tbody.appendChild(fragment);
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sort(); }
      });
    });
  }

  function makeFilterable(table) {
    var tbody = table.tBodies[0];
    if (!tbody || tbody.rows.length < 2) return;
    var wrap = document.createElement("div");
    wrap.className = "table-filter-wrap mb-2";
    var input = document.createElement("input");
    input.type = "search";
    input.className = "form-control form-control-sm table-filter";
    input.placeholder = table.getAttribute("data-filter-placeholder") || "Filter…";
    input.setAttribute("aria-label", input.placeholder);
    wrap.appendChild(input);
    var anchor = table.closest(".table-responsive") || table;
    anchor.parentNode.insertBefore(wrap, anchor);
    input.addEventListener("input", function () {
      var needle = input.value.trim().toLowerCase();
      groups(tbody).forEach(function (group) {
        var text = group.map(function (row) { return row.textContent; }).join(" ").toLowerCase();
        var hide = needle !== "" && text.indexOf(needle) === -1;
        group.forEach(function (row) { row.hidden = hide; });
      });
    });
  }

  function init(root) {
    root.querySelectorAll("table[data-sortable]").forEach(function (table) {
      if (table.dataset.portalReady) return;
      table.dataset.portalReady = "1";
      makeSortable(table);
      makeFilterable(table);
    });
    root.querySelectorAll("table[data-filterable]").forEach(function (table) {
      if (table.dataset.portalReady) return;
      table.dataset.portalReady = "1";
      makeFilterable(table);
    });
  }

  // Forms with data-confirm ask before they are sent (e.g. releasing a change to main).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // Buttons with data-print print the page (the Content-Security-Policy allows no inline handler).
  document.addEventListener("click", function (event) {
    var button = event.target && event.target.closest && event.target.closest("[data-print]");
    if (button) window.print();
  });

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  // Content swapped in by htmx (e.g. a commit's diff in the history tab).
  document.addEventListener("htmx:afterSettle", function (event) { init(event.target); });
})();
