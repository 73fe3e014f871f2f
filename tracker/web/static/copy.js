// Copy buttons (templates/_copy.html): campaign links, script tags, share links. Every value
// is also in a readonly field, so it can be selected and copied without this script (the
// buttons stay hidden then).
(function () {
  "use strict";
  var copied = function (button) {
    button.textContent = "Copied";
    setTimeout(function () { button.textContent = "Copy"; }, 2000);
  };
  // Older browsers, and pages not served over https, have no navigator.clipboard.
  var fallback = function (input, button) {
    input.select();
    if (document.execCommand("copy")) copied(button);
  };
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    var input = document.getElementById(button.dataset.copy);
    if (!input) return;
    input.addEventListener("focus", function () { input.select(); });
    button.hidden = false;
    button.addEventListener("click", function () {
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(
          function () { copied(button); },
          function () { fallback(input, button); }
        );
      } else {
        fallback(input, button);
      }
    });
  });
})();
