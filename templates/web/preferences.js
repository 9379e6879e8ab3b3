// The subscriber pages' one script (a page works without it).
// - A field the server refused with a line number (data-error-line): focus it and select
//   that line, so the bad keyword is marked where it is.
// - Preferences: after a pause in typing, POST the edited values to the preview endpoint and
//   show what they would match, how many papers, and how many per keyword; a keyword the
//   ranking language refuses is named with its line under the field. Saving stays a normal
//   form post.
(function () {
  "use strict";
  document.documentElement.classList.add("js");  // shows what needs this script (.js-only)

  function lineRange(text, line) {
    var start = 0;
    for (var n = 1; n < line; n++) {
      var next = text.indexOf("\n", start);
      if (next === -1) {
        return null;
      }
      start = next + 1;
    }
    var end = text.indexOf("\n", start);
    return [start, end === -1 ? text.length : end];
  }

  function selectLine(field, line) {
    var range = lineRange(field.value, line);
    field.focus();
    if (range && field.setSelectionRange) {
      field.setSelectionRange(range[0], range[1]);
    }
  }

  var refused = document.querySelector("[data-error-line]");
  if (refused) {
    selectLine(refused, parseInt(refused.getAttribute("data-error-line"), 10));
  }

  var DELAY_MS = 350;
  var form = document.getElementById("preferences");
  var results = document.getElementById("preview-results");
  var status = document.getElementById("preview-status");
  var bar = document.getElementById("preview-bar-text");
  if (!form || !results || !status || !window.fetch) {
    return;
  }
  var url = form.getAttribute("data-preview-url");
  var timer = null;
  var controller = null;
  var latest = 0;

  function fieldError(input, message) {
    var id = input.id + "-error";
    var note = document.getElementById(id);
    var described = (input.getAttribute("aria-describedby") || "").split(" ").filter(function (token) {
      return token && token !== id;
    });
    if (!message) {
      if (note) {
        note.parentNode.removeChild(note);
      }
      input.setAttribute("aria-describedby", described.join(" "));
      return;
    }
    if (!note) {
      note = document.createElement("p");
      note.className = "field-error";
      note.id = id;
      input.parentNode.insertBefore(note, input);
    }
    note.textContent = message;
    described.push(id);
    input.setAttribute("aria-describedby", described.join(" "));
  }

  function show(message, isError, field, problem) {
    status.textContent = message;
    status.classList.toggle("error", Boolean(isError));
    results.classList.toggle("stale", Boolean(isError));  // the list no longer fits the form
    Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (input) {
      input.removeAttribute("aria-invalid");
      fieldError(input, "");
    });
    var invalid = field ? form.querySelector("[name='" + field + "']:not([type=hidden])") : null;
    if (invalid) {
      invalid.setAttribute("aria-invalid", "true");
      fieldError(invalid, problem);
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
        if (bar) {
          bar.textContent = data.count + (data.count === 1 ? " paper matches" : " papers match");
        }
      } else {
        var where = data.line ? "Fix line " + data.line + " to update the preview. " : "";
        show(where + data.error, true, data.field, data.error);
        if (bar) {
          bar.textContent = data.line ? "Line " + data.line + " needs fixing" : "Needs fixing";
        }
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

  // Picking a weekday means a weekly digest: without this, "Every day" stayed ticked and the
  // weekday chosen was silently ignored.
  var weekday = document.getElementById("weekday");
  var weekly = form.querySelector("input[name='frequency'][value='weekly']");
  if (weekday && weekly) {
    weekday.addEventListener("change", function () {
      weekly.checked = true;
    });
  }

  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);
})();
