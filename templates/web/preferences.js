// Live preview of the preferences form: after a pause in typing, POST the edited values
// to the preview endpoint and show what they would match. Saving stays a normal form post.
(function () {
  "use strict";

  var DELAY_MS = 350;
  var form = document.getElementById("preferences");
  var results = document.getElementById("preview-results");
  var status = document.getElementById("preview-status");
  if (!form || !results || !status || !window.fetch) {
    return;
  }
  var url = form.getAttribute("data-preview-url");
  var timer = null;
  var controller = null;
  var latest = 0;

  function show(message, isError, field) {
    status.textContent = message;
    status.classList.toggle("error", Boolean(isError));
    results.classList.toggle("stale", Boolean(isError));  // the list no longer fits the form
    Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (input) {
      input.removeAttribute("aria-invalid");
    });
    var invalid = field ? form.querySelector("[name='" + field + "']:not([type=hidden])") : null;
    if (invalid) {
      invalid.setAttribute("aria-invalid", "true");
    }
  }

  function refresh() {
    var request = ++latest;
    if (controller) {
      controller.abort();
    }
    controller = new AbortController();
    form.setAttribute("aria-busy", "true");
    fetch(url, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      headers: { "Accept": "application/json" },
      credentials: "same-origin",
      signal: controller.signal
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (type.indexOf("application/json") === -1) {
        throw new Error(response.status === 403
          ? "This page has expired; open the link in your latest digest."
          : "The preview is not available right now.");
      }
      return response.json();
    }).then(function (data) {
      if (request !== latest) {
        return;  // an older answer arriving late
      }
      if (data.ok) {
        results.innerHTML = data.html;  // rendered and escaped by the server's templates
        show(data.summary, false);
      } else {
        show(data.error, true, data.field);
      }
    }).catch(function (error) {
      if (error.name !== "AbortError" && request === latest) {
        show(error.message || "The preview is not available right now.", true);
      }
    }).then(function () {
      if (request === latest) {
        form.removeAttribute("aria-busy");
      }
    });
  }

  function schedule() {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, DELAY_MS);
  }

  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);
})();
