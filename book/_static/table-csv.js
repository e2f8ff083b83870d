// Every table of a page can be downloaded as CSV: a small link above each table builds the file from the cells the
// reader sees (header rows included; merged header cells repeated across the columns they span), in the browser,
// without a kernel. Written for this book.
(function () {
  "use strict";

  function cellText(cell) {
    return cell.textContent.replace(/\s+/g, " ").trim();
  }

  function quote(text) {
    return /[",\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  // Rows of a table as arrays of strings; colspan and rowspan are expanded so that every row has one entry per
  // column, as a spreadsheet expects.
  function tableRows(table) {
    var grid = [];
    Array.prototype.forEach.call(table.rows, function (row, r) {
      grid[r] = grid[r] || [];
      var c = 0;
      Array.prototype.forEach.call(row.cells, function (cell) {
        while (grid[r][c] !== undefined) { c += 1; }
        var text = cellText(cell);
        for (var dr = 0; dr < (cell.rowSpan || 1); dr += 1) {
          grid[r + dr] = grid[r + dr] || [];
          for (var dc = 0; dc < (cell.colSpan || 1); dc += 1) { grid[r + dr][c + dc] = text; }
        }
        c += cell.colSpan || 1;
      });
    });
    return grid;
  }

  function toCsv(table) {
    return tableRows(table).map(function (row) {
      var out = [];
      for (var i = 0; i < row.length; i += 1) { out.push(quote(row[i] === undefined ? "" : row[i])); }
      return out.join(",");
    }).join("\n") + "\n";
  }

  function fileName(index) {
    var page = (document.location.pathname.split("/").pop() || "page").replace(/\.html?$/, "");
    return page + "-table-" + (index + 1) + ".csv";
  }

  function addLinks() {
    var tables = document.querySelectorAll("article table, main table");
    Array.prototype.forEach.call(tables, function (table, index) {
      if (table.dataset.twiCsv || table.closest(".twi-explorer, .twi-scrubber, .twi-drum")) { return; }
      table.dataset.twiCsv = "1";
      var link = document.createElement("a");
      link.className = "twi-csv";
      link.href = "#";
      link.textContent = "⤓ CSV";
      link.title = "Download this table as CSV";
      link.addEventListener("click", function (event) {
        event.preventDefault();
        var blob = new Blob([toCsv(table)], {type: "text/csv;charset=utf-8"});
        var a = document.createElement("a");
        a.href = URL.createObjectURL(blob);
        a.download = fileName(index);
        document.body.appendChild(a);
        a.click();
        setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 0);
      });
      table.parentNode.insertBefore(link, table);
    });
  }

  window.twiTableCsv = {toCsv: toCsv, addLinks: addLinks};
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", addLinks);
  } else {
    addLinks();
  }
})();
