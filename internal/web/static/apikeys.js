// moat — copy buttons on the page that shows a new API secret once.
// Progressive enhancement: without this file the values are still there to
// select and copy by hand, and the buttons stay hidden.
(function () {
  "use strict";
  if (!navigator.clipboard || !window.isSecureContext) {
    return;
  }
  var status = document.getElementById("copy-status");
  document.querySelectorAll("button[data-copy]").forEach(function (btn) {
    var target = document.getElementById(btn.dataset.copy);
    if (!target) {
      return;
    }
    btn.hidden = false;
    btn.addEventListener("click", function () {
      navigator.clipboard.writeText(target.textContent.trim()).then(function () {
        if (status) {
          status.textContent = btn.dataset.copied || "Copied to the clipboard.";
        }
      }, function () {
        if (status) {
          status.textContent = "Copying did not work here: select the text and copy it by hand.";
        }
      });
    });
  });
})();
