// The sites page: a click in a script tag selects all of it, ready to copy. (An inline
// onclick= would be blocked by the Content-Security-Policy: tracker/web/security.py.)
(function () {
  "use strict";
  document.querySelectorAll("textarea.snippet").forEach(function (snippet) {
    snippet.addEventListener("click", function () { snippet.select(); });
  });
})();
