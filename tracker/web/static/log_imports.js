// Settings page, "Import access logs": while an upload waits or is imported, its progress
// bar follows status.json every two seconds; once none is left, the page reloads to show
// the summaries. (An inline script would be blocked by the Content-Security-Policy.)
(function () {
  "use strict";
  var section = document.getElementById("import");
  if (!section) { return; }
  function pending() {
    return section.querySelectorAll('tr[data-state="waiting"], tr[data-state="running"]');
  }
  function update(uploads) {
    var finished = false;
    uploads.forEach(function (upload) {
      var row = section.querySelector('tr[data-upload="' + upload.id + '"]');
      if (!row || (row.dataset.state !== "waiting" && row.dataset.state !== "running")) { return; }
      if (upload.status === "done" || upload.status === "failed") { finished = true; return; }
      row.dataset.state = upload.status;
      var bar = row.querySelector("progress");
      var label = row.querySelector("[data-label]");
      if (bar) { bar.value = upload.percent; }
      if (label) { label.textContent = upload.status === "waiting" ? "waiting" : upload.percent + " %"; }
    });
    if (finished) { window.location.reload(); }
  }
  function poll() {
    if (!pending().length) { return; }
    fetch(section.dataset.status, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) { if (body) { update(body.uploads); } })
      .finally(function () { window.setTimeout(poll, 2000); });
  }
  window.setTimeout(poll, 2000);
})();
