// 1. Scroll boxes a keyboard can reach (axe: scrollable-region-focusable). A box in the
//    page whose content is wider (or taller) than the box, such as a display equation
//    or a table on a phone, gets tabindex="0" so arrow keys can scroll it.
// 2. ipywidgets sliders: the handle (role="slider") gets the slider's visible label
//    as its name (axe: aria-input-field-name).
// 3. Figures on a narrow screen: an output figure is never shown below MIN_SCALE of
//    its natural size (its labels would be too small to read); where the column is
//    narrower than that, the figure scrolls sideways inside its own box.
// Checked again when the page changes (MathJax, widgets) and when it is resized.
(function () {
  "use strict";
  var FOCUSABLE = "a[href], button, input, select, textarea, [tabindex]";
  function mark() {
    var main = document.querySelector("main") || document.body;
    main.querySelectorAll("*").forEach(function (el) {
      if (el.hasAttribute("tabindex")) return;
      // inside an equation only the container itself can scroll
      if (el.tagName.startsWith("MJX-") && el.tagName !== "MJX-CONTAINER") return;
      var s = getComputedStyle(el);
      var scrollsX = /auto|scroll/.test(s.overflowX) && el.scrollWidth > el.clientWidth + 1;
      var scrollsY = /auto|scroll/.test(s.overflowY) && el.scrollHeight > el.clientHeight + 1;
      if ((scrollsX || scrollsY) && !el.querySelector(FOCUSABLE)) {
        el.setAttribute("tabindex", "0");
      }
    });
  }
  function nameSliders() {
    document.querySelectorAll(".widget-slider").forEach(function (slider) {
      var label = slider.querySelector(".widget-label");
      var name = (label && label.textContent.trim()) || "value";
      slider.querySelectorAll('[role="slider"]:not([aria-label])').forEach(function (h) {
        h.setAttribute("aria-label", name);
      });
    });
  }
  var MIN_SCALE = 0.6;
  function fitFigures() {
    document.querySelectorAll("main .cell_output img").forEach(function (img) {
      if (!img.naturalWidth || img.closest(".animation, .widget-subarea")) return;
      var box = img.parentElement;
      if (!box.classList.contains("cnnbook-figure")) {
        box = document.createElement("div");
        box.className = "cnnbook-figure";
        img.parentElement.insertBefore(box, img);
        box.appendChild(img);
      }
      var least = Math.round(img.naturalWidth * MIN_SCALE);
      var wide = least > box.clientWidth;
      box.classList.toggle("cnnbook-figure-wide", wide);
      img.style.width = wide ? least + "px" : "";
      img.style.maxWidth = wide ? "none" : "";
    });
  }
  var timer = null;
  function soon() {
    clearTimeout(timer);
    timer = setTimeout(function () {
      nameSliders();
      fitFigures();
      mark();
    }, 150);
  }
  window.addEventListener("load", function () {
    soon();
    new MutationObserver(soon).observe(document.querySelector("main") || document.body, {
      childList: true,
      subtree: true,
    });
    window.addEventListener("resize", soon);
  });
})();
