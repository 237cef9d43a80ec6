// Status page: live.js fills [data-live] elements; a "reload" message (the session or
// unbound lists changed) reloads the page unless staff are filling in a form.
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
  document.addEventListener("mchub:message", function (e) {
    if (e.detail !== "reload") { return; }
    var active = document.activeElement;
    if (active && (active.tagName === "INPUT" || active.tagName === "SELECT")) { return; }
    location.reload();
  });
})();
