// The form of a self-service task: the browser only helps, the server decides.
// A date input offers only the days its choices allow (days with a checkpoint), and
// choices that depend on another input (the chosen VM) narrow when that input changes.
(function () {
  "use strict";
  function parse(value, fallback) {
    try { return value ? JSON.parse(value) : fallback; } catch (e) { return fallback; }
  }
  function allowedFor(input, form) {
    var all = parse(input.dataset.allowed, null);
    var by = parse(input.dataset.allowedBy, {});
    Object.keys(by).forEach(function (other) {
      var chosen = form.querySelector("[name='" + other + "']");
      if (chosen && chosen.value) { all = by[other][chosen.value] || []; }
    });
    return all;
  }
  function check(input, form) {
    var allowed = allowedFor(input, form);
    if (allowed === null || !input.value) { input.setCustomValidity(""); return; }
    input.setCustomValidity(allowed.indexOf(input.value) === -1
      ? "Choose one of the days offered: " + (allowed.join(", ") || "none yet") + "." : "");
  }
  document.querySelectorAll("[data-task-form]").forEach(function (form) {
    var dates = form.querySelectorAll("input[type=date][data-allowed]");
    dates.forEach(function (input) {
      ["input", "change"].forEach(function (event) {
        input.addEventListener(event, function () { check(input, form); });
      });
    });
    form.addEventListener("change", function () {
      dates.forEach(function (input) { check(input, form); });
    });
    form.addEventListener("submit", function (event) {
      dates.forEach(function (input) { check(input, form); });
      if (!form.checkValidity()) { event.preventDefault(); form.reportValidity(); }
    });
  });
})();
