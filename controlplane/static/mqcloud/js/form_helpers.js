// Small enhancements of console forms; every form works without them (progressive enhancement).
//
// - <fieldset data-shown-for="type:webhook">: shown only while the field named "type" has that value (without
//   JavaScript every fieldset shows, and the server uses only the chosen type's fields).
// - <button data-copy-from="id">: copies that element's text and says so.
(function () {
  "use strict";

  function syncShownFor(form) {
    form.querySelectorAll("[data-shown-for]").forEach(function (part) {
      var rule = part.dataset.shownFor.split(":");
      var control = form.elements.namedItem(rule[0]);
      part.hidden = !!control && control.value !== rule[1];
    });
  }

  function copy(button) {
    var source = document.getElementById(button.dataset.copyFrom);
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-from]");
    if (button) copy(button);
  });

  function start() {
    document.querySelectorAll("form").forEach(function (form) {
      if (!form.querySelector("[data-shown-for]")) return;
      syncShownFor(form);
      form.addEventListener("change", function () { syncShownFor(form); });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
