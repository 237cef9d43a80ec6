// Status page: live.js fills [data-live] elements and swaps in the needs-action and visits
// lists when records are stored; this colours device states and filters today's visits by
// the search box (kept across swaps).
(function () {
  function colour() {
    document.querySelectorAll("td.devstate, .yn").forEach(function (el) {
      var v = el.textContent.trim().charAt(0);
      el.classList.toggle("state-ok", v === "\u2714");
      el.classList.toggle("state-alert", v === "\u2718");
    });
  }
  colour();
  new MutationObserver(colour).observe(document.getElementById("status"), { subtree: true, characterData: true, childList: true });

  var search = document.getElementById("visit-search");
  var none = document.getElementById("visit-search-none");
  function filter() {
    var q = search ? search.value.trim().toLowerCase() : "";
    var shown = 0, rows = document.querySelectorAll("tr[data-visit]");
    rows.forEach(function (tr) {
      var hit = !q || tr.getAttribute("data-search").indexOf(q) >= 0;
      tr.hidden = !hit;
      if (hit) { shown += 1; }
    });
    if (none) { none.hidden = !(q && rows.length && !shown); }
  }
  if (search) { search.addEventListener("input", filter); }
  document.addEventListener("mchub:swapped", filter);
})();
