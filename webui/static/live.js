// Live updates over Server-Sent Events from the URL in the first data-events attribute
// (on <body> or any element): elements with data-live="<event name>" get the event's
// text; unnamed messages become "mchub:message" DOM events. No framework.
(function () {
  var host = document.querySelector("[data-events]");
  var src = host && host.getAttribute("data-events");
  if (!src || !window.EventSource) { return; }
  var es = new EventSource(src);
  es.onmessage = function (e) { handle("message", e.data); };
  document.querySelectorAll("[data-live]").forEach(function (el) {
    es.addEventListener(el.getAttribute("data-live"), function (e) { el.textContent = e.data; });
  });
  function handle(name, data) { document.dispatchEvent(new CustomEvent("mchub:" + name, { detail: data })); }
})();
