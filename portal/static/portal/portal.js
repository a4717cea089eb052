/* Buffet portal: the confirmation dialog of destructive actions and a copy button.
 * Everything here is an enhancement: without JavaScript, a destructive button opens a
 * confirmation page and the token key can be copied by hand. */
(function () {
  "use strict";

  var lastTrigger = null;

  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.elt.hasAttribute("data-confirm-trigger")) {
      lastTrigger = event.detail.elt;
    }
  });

  // The confirmation form was loaded into the dialog: show it, focus "Cancel".
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target.id !== "confirm-dialog-body") return;
    var dialog = document.getElementById("confirm-dialog");
    if (!dialog.open) dialog.showModal();
    var first = dialog.querySelector("[data-autofocus]");
    if (first) first.focus();
  });

  document.addEventListener("click", function (event) {
    var close = event.target.closest("[data-close-dialog]");
    if (close && close.closest("dialog")) {
      event.preventDefault();
      close.closest("dialog").close();
    }
    var copy = event.target.closest("[data-copy]");
    if (copy) {
      var field = document.querySelector(copy.getAttribute("data-copy"));
      field.select();
      if (navigator.clipboard) navigator.clipboard.writeText(field.value);
      copy.textContent = "Copied";
    }
  });

  document.addEventListener("close", function (event) {
    if (event.target.id !== "confirm-dialog") return;
    document.getElementById("confirm-dialog-body").replaceChildren();
    if (lastTrigger) lastTrigger.focus();
  }, true);
})();
