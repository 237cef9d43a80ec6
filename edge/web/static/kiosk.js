// Patient kiosk: the server sends the rendered screen as "state" events (Server-Sent Events).
// When the patient's session closes the stream ends with the idle screen and the page
// reloads, so nothing of hers stays in this page. No framework, no inline script (CSP).
(function () {
  var stage = document.getElementById("kiosk");
  var offline = document.getElementById("kiosk-offline");
  if (!stage || !window.EventSource) { return; }
  var showedPatient = false;
  var idleReload = null;
  function armIdleReload() {  // a fresh page (and CSRF token) every few minutes while idle
    if (idleReload) { clearTimeout(idleReload); }
    idleReload = setTimeout(function () { location.reload(); }, 5 * 60 * 1000);
  }
  var es = new EventSource(stage.getAttribute("data-events"));
  es.addEventListener("state", function (e) {
    var doc = JSON.parse(e.data);
    offline.hidden = true;
    stage.innerHTML = doc.html;
    stage.className = "kiosk-stage phase-" + doc.phase;
    if (doc.phase === "idle") {
      if (showedPatient) { es.close(); location.replace(location.href); return; }
      armIdleReload();
    } else {
      showedPatient = true;
      if (idleReload) { clearTimeout(idleReload); idleReload = null; }
    }
  });
  es.onerror = function () {
    if (showedPatient) { stage.innerHTML = ""; }  // never leave a patient's results on a dead screen
    offline.hidden = false;
  };
  armIdleReload();
})();
