// Live updates without reloading the page, no framework.
//
// Server-Sent Events from the URL in the first data-events attribute (on <body> or any
// element): elements with data-live="<event name>" get the event's text; unnamed messages
// become "mchub:message" DOM events.
//
// A "refresh" message fetches the URL in the first data-refresh attribute (an HTML fragment)
// and puts each element of the answer that has an id and data-swap in place of the page's
// element with that id, then fires "mchub:swapped". An element someone is using (a focused
// field or button inside it) is left alone and tried again a few seconds later, so a choice
// being made in a form is never swapped away under the pointer.
(function () {
  var host = document.querySelector("[data-events]");
  var src = host && host.getAttribute("data-events");
  if (!src || !window.EventSource) { return; }
  var es = new EventSource(src);
  var names = {};
  document.querySelectorAll("[data-live]").forEach(function (el) { names[el.getAttribute("data-live")] = true; });
  Object.keys(names).forEach(function (name) {
    es.addEventListener(name, function (e) {  // looked up each time: swapped fragments carry data-live too
      document.querySelectorAll('[data-live="' + name + '"]').forEach(function (el) { el.textContent = e.data; });
    });
  });
  es.onmessage = function (e) {
    if (e.data === "refresh") { refresh(); }
    document.dispatchEvent(new CustomEvent("mchub:message", { detail: e.data }));
  };

  var target = document.querySelector("[data-refresh]");
  var busy = false, again = false, retry = null;
  function inUse(el) {
    var a = document.activeElement;
    return a && a !== document.body && el.contains(a) && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(a.tagName);
  }
  function refresh() {
    if (!target) { return; }
    if (busy) { again = true; return; }
    busy = true;
    fetch(target.getAttribute("data-refresh"), { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.redirected) { location.reload(); throw new Error("signed out"); }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var deferred = false;
        doc.querySelectorAll("[data-swap][id]").forEach(function (fresh) {
          var old = document.getElementById(fresh.id);
          if (!old) { return; }
          if (inUse(old)) { deferred = true; return; }
          old.replaceWith(document.importNode(fresh, true));
        });
        document.dispatchEvent(new CustomEvent("mchub:swapped"));
        if (deferred && !retry) { retry = setTimeout(function () { retry = null; refresh(); }, 3000); }
      })
      .catch(function () { /* the next refresh message tries again */ })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }
})();
