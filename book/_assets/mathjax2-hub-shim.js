// The ipywidgets HTML manager typesets labels with MathJax 2's
// MathJax.Hub.Queue(["Typeset", MathJax.Hub, element]); the book loads MathJax 3, which
// has no Hub, so every widget threw "Cannot read properties of undefined (reading
// 'Queue')". This gives MathJax 3 a Hub.Queue that typesets the same elements with
// typesetPromise. Loaded only on pages with widgets (nb_ipywidgets_js in _config.yml).
(function () {
  "use strict";
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
    // MathJax 3 replaces its configuration object once loaded: install on the real one
    if (window.MathJax && window.MathJax.version && !window.MathJax.Hub) {
      window.MathJax.Hub = { Queue: queue };
    }
  }
  install();
  document.addEventListener("DOMContentLoaded", install);
})();
