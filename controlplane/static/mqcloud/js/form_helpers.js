// Small enhancements of console forms; every form works without them (progressive enhancement).
//
// - <fieldset data-shown-for="type:webhook">: shown only while the field named "type" has that value (without
//   JavaScript every fieldset shows, and the server uses only the chosen type's fields).
(function () {
  "use strict";

  function syncShownFor(form) {
    form.querySelectorAll("[data-shown-for]").forEach(function (part) {
      var rule = part.dataset.shownFor.split(":");
      var control = form.elements.namedItem(rule[0]);
      part.hidden = !!control && control.value !== rule[1];
    });
  }

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
