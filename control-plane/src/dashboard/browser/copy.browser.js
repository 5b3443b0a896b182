// Copy buttons: a button[data-copy] copies the text of the element it names by id and says so
// in its [data-copy-status] region. Served as /ui/assets/copy.js to the pages that have them.
"use strict";

(function () {
  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  // Without the Clipboard API (an http origin other than localhost), the text is selected so
  // Ctrl+C still works, and the status says so.
  function copy(text, el) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    selectText(el);
    return Promise.reject(new Error("no clipboard"));
  }

  function wire(button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    var status = button.parentElement.querySelector("[data-copy-status]");
    if (!target) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      copy(target.textContent, target).then(
        function () {
          if (status) status.textContent = "Copied.";
        },
        function () {
          selectText(target);
          if (status) status.textContent = "Selected: press Ctrl+C (Cmd+C) to copy.";
        },
      );
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("button[data-copy]").forEach(wire);
  });
})();
