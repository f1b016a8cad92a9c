/* Kamiyo dashboard: small progressive enhancements. Every page works without this file. */
(function () {
  "use strict";

  // GET forms: leave empty and default fields out of the URL, so shared links stay short.
  document.querySelectorAll("form[data-clean-get]").forEach(function (form) {
    form.addEventListener("submit", function () {
      form.querySelectorAll("input[name], select[name]").forEach(function (el) {
        var value = el.multiple ? (el.selectedOptions.length ? "x" : "") : el.value;
        if (!value || (el.dataset.default !== undefined && el.value === el.dataset.default)) {
          el.disabled = true;
        }
      });
      window.setTimeout(function () {
        form.querySelectorAll("[disabled]").forEach(function (el) { el.disabled = false; });
      }, 0);
    });
  });

  // Copy buttons appear only where the clipboard can be written.
  if (navigator.clipboard && window.isSecureContext) {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.hidden = false;
      var label = button.firstChild.textContent;
      button.addEventListener("click", function () {
        navigator.clipboard.writeText(button.dataset.copy).then(function () {
          button.firstChild.textContent = "Copied";
          window.setTimeout(function () { button.firstChild.textContent = label; }, 1500);
        });
      });
    });
  }
})();
