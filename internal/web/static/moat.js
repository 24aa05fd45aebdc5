// moat — progressive enhancement only; every page works without this file.
(function () {
  "use strict";

  // Show times in the reader's own time zone (the page says UTC without JS).
  var fmt;
  try {
    fmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  } catch (e) {
    fmt = null;
  }
  if (fmt) {
    document.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) {
        el.title = el.textContent;
        el.textContent = fmt.format(d);
      }
    });
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var btn = ev.submitter;
    // Ask before irreversible actions marked with data-confirm.
    if (btn && btn.dataset.confirm && !window.confirm(btn.dataset.confirm)) {
      ev.preventDefault();
      return;
    }
    // Refuse a second submit while the first is on its way.
    if (form.dataset.sent) {
      ev.preventDefault();
      return;
    }
    form.dataset.sent = "1";
  });

  // Print buttons (backup codes) need the script; without it the page
  // says to use the browser's Print command.
  document.querySelectorAll("button[data-print]").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () { window.print(); });
  });

  // A page shown from the back/forward cache can be submitted again.
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[data-sent]").forEach(function (f) {
      delete f.dataset.sent;
    });
  });
})();
