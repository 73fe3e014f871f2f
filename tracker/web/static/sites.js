// The sites page: a click in a script tag selects all of it, ready to copy; a new site's
// time zone starts as the browser's own. (An inline onclick= would be blocked by the
// Content-Security-Policy: tracker/web/security.py.)
(function () {
  "use strict";
  var zone = document.querySelector("input[data-browser-zone]");
  var own = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (zone && own && zone.list && zone.list.querySelector('option[value="' + own + '"]')) {
    zone.value = own;
  }
  document.querySelectorAll("textarea.snippet").forEach(function (snippet) {
    snippet.addEventListener("click", function () { snippet.select(); });
  });
})();
