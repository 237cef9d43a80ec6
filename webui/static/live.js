// Live updates over Server-Sent Events: the first element (or <body>) with data-events="<url>"
// names the stream; elements with data-live="<event name>" get the event's text; a page may
// also listen for "mchub:<event>" DOM events. No framework.
(function () {
  var holder = document.querySelector("[data-events]");
  var src = holder && holder.getAttribute("data-events");
  if (!src || !window.EventSource) { return; }
  var es = new EventSource(src);
  es.onmessage = function (e) { handle("message", e.data); };
  document.querySelectorAll("[data-live]").forEach(function (el) {
    es.addEventListener(el.getAttribute("data-live"), function (e) { el.textContent = e.data; });
  });
  function handle(name, data) { document.dispatchEvent(new CustomEvent("mchub:" + name, { detail: data })); }
})();
