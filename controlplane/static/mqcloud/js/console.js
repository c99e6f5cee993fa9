// Failed htmx requests and Copy buttons, in one place for every console page. htmx swaps nothing on a 4xx/5xx or a network
// error, so without this a refused revoke or a lost connection looked like a button that did nothing. The
// server's message (the `detail` of a problem+json, or the text of the console's error fragment) goes into an
// alert right after the element that made the request, and goes away when that element asks again.
(function () {
  "use strict";

  var MAX_LENGTH = 300;
  var OFFLINE = "The console could not be reached. Check your connection and try again.";

  function clip(text) {
    text = (text || "").replace(/\s+/g, " ").trim();
    return text.length > MAX_LENGTH ? text.slice(0, MAX_LENGTH - 1) + "…" : text;
  }

  function messageFrom(xhr) {
    var type = (xhr.getResponseHeader("Content-Type") || "").toLowerCase();
    var body = xhr.responseText || "";
    var fallback = "The request failed (" + xhr.status + (xhr.statusText ? " " + xhr.statusText : "") + ").";
    if (type.indexOf("json") !== -1) {
      try {
        var problem = JSON.parse(body);
        return clip(problem.detail || problem.title) || fallback;
      } catch (ignored) {
        return fallback;
      }
    }
    if (type.indexOf("html") !== -1) {
      var doc = new DOMParser().parseFromString(body, "text/html");
      // The console's fragment (or full error page) marks its message; other pages (a CSRF or server error
      // page) are summed up by their heading and first paragraph rather than dumped whole.
      var marked = doc.querySelector("[data-error-detail]");
      if (marked) return clip(marked.textContent) || fallback;
      var heading = doc.querySelector("h1");
      var paragraph = doc.querySelector("h1 ~ p, main p, p");
      return clip((heading ? heading.textContent : "") + " " + (paragraph ? paragraph.textContent : "")) || fallback;
    }
    return clip(body) || fallback;
  }

  // Where the message goes: right after the element that asked; after its table for rows and table parts, where
  // a paragraph would not be valid.
  function anchorOf(elt) {
    var tablePart = elt.closest("thead, tbody, tfoot, tr");
    if (tablePart && !elt.closest("td, th")) return tablePart.closest("table") || elt;
    return elt;
  }

  function areaOf(elt, create) {
    var anchor = anchorOf(elt);
    var next = anchor.nextElementSibling;
    if (next && next.classList.contains("htmx-error")) return next;
    if (!create) return null;
    var area = document.createElement("p");
    area.className = "htmx-error";
    area.setAttribute("role", "alert");
    anchor.insertAdjacentElement("afterend", area);
    return area;
  }

  function show(elt, message) {
    if (!elt || !elt.isConnected) return;
    areaOf(elt, true).textContent = message;
  }

  function clear(evt) {
    var area = evt.detail.elt && areaOf(evt.detail.elt, false);
    if (area) area.remove();
  }

  // Copy buttons, one script for every page: <button data-copy-from="id"> copies that element's text,
  // <button data-copy="text"> the text itself, and the button says so for a moment. A click handler on the
  // document, so buttons that htmx swaps in later work too.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-from], [data-copy]");
    if (!button || !navigator.clipboard) return;
    var source = button.dataset.copyFrom ? document.getElementById(button.dataset.copyFrom) : null;
    var text = source ? source.textContent.trim() : button.dataset.copy;
    if (!text) return;
    navigator.clipboard.writeText(text).then(function () {
      var label = button.dataset.label || button.textContent;
      button.dataset.label = label;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  });

  // A box whose table is wider than it scrolls; keyboard users can only scroll it once it takes the focus.
  // <time data-viewer-time datetime="…Z">: the server writes UTC; show it in the viewer's own time zone.
  function viewerTimes() {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    var format = new Intl.DateTimeFormat(undefined, {weekday: "short", day: "numeric", month: "short",
      year: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZoneName: "short"});
    document.querySelectorAll("time[data-viewer-time]").forEach(function (elt) {
      var moment = new Date(elt.getAttribute("datetime"));
      if (isNaN(moment)) return;
      elt.textContent = format.format(moment);
      elt.title = zone;
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", viewerTimes);
  else viewerTimes();

  function focusableScrollers() {
    document.querySelectorAll(".card-flush, .table-scroll").forEach(function (box) {
      if (box.scrollWidth > box.clientWidth + 1) {
        if (!box.hasAttribute("tabindex")) box.setAttribute("tabindex", "0");
      } else if (box.getAttribute("tabindex") === "0") {
        box.removeAttribute("tabindex");
      }
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", focusableScrollers);
  else focusableScrollers();
  window.addEventListener("resize", focusableScrollers);
  document.addEventListener("htmx:afterSettle", focusableScrollers);

  document.addEventListener("htmx:beforeRequest", clear);
  document.addEventListener("htmx:afterRequest", function (evt) {
    if (evt.detail.successful) clear(evt);
  });
  document.addEventListener("htmx:responseError", function (evt) {
    show(evt.detail.elt, messageFrom(evt.detail.xhr));
  });
  document.addEventListener("htmx:sendError", function (evt) {
    show(evt.detail.elt, OFFLINE);
  });
})();
