// Loaded just before the ipywidgets HTML manager (html-manager/embed.js) on pages with
// widgets: see nb_ipywidgets_js in _config.yml and book/_ext/cnnbook_reader.py.
//
// 1. Where the manager's icon fonts are. Its stylesheet refers to them relative to
//    the webpack public path, which by default resolves next to the page. Point it at
//    the folder that holds embed.js, _static/html-manager/, so the fonts load from the
//    book itself on every page, at any depth, with no internet.
// 2. MathJax 2's API for the manager. It typesets labels with
//    MathJax.Hub.Queue(["Typeset", MathJax.Hub, element]); the book loads MathJax 3,
//    which has no Hub, so every widget threw "Cannot read properties of undefined
//    (reading 'Queue')". MathJax 3 gets a Hub.Queue that typesets the same elements
//    with typesetPromise.
(function () {
  "use strict";
  window.__jupyter_widgets_assets_path__ = new URL(
    "html-manager/",
    document.currentScript.src
  ).href;

  function queue() {
    var elements = [];
    for (var i = 0; i < arguments.length; i++) {
      var job = arguments[i];
      if (Array.isArray(job) && job[0] === "Typeset" && job[2]) elements.push(job[2]);
    }
    var mj = window.MathJax;
    if (!elements.length || !mj || !mj.startup || !mj.typesetPromise) return;
    mj.startup.promise
      .then(function () {
        return mj.typesetPromise(elements);
      })
      .catch(function (err) {
        console.warn("MathJax could not typeset a widget label", err);
      });
  }
  function install() {
    // MathJax 3 replaces its configuration object once loaded: install on the real
    // one (the manager renders on window "load", after DOMContentLoaded)
    if (window.MathJax && window.MathJax.version && !window.MathJax.Hub) {
      window.MathJax.Hub = { Queue: queue };
    }
  }
  install();
  document.addEventListener("DOMContentLoaded", install);
})();
