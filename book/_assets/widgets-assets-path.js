// Loaded after require.js and just before the ipywidgets HTML manager (embed-amd.js),
// see nb_ipywidgets_js in _config.yml.
// The manager's stylesheet refers to its icon fonts relative to the RequireJS address
// of its module "@jupyter-widgets/html-manager/dist/libembed-amd", which by default
// resolves to a folder next to the page. Point that module path (and the webpack
// public path) at the folder that holds embed-amd.js, _static/html-manager/, so the
// fonts load from the book itself on every page, at any depth, with no internet.
(function () {
  var folder = new URL("html-manager/", document.currentScript.src).href;
  window.__jupyter_widgets_assets_path__ = folder;
  if (window.require && window.require.config) {
    window.require.config({
      paths: { "@jupyter-widgets/html-manager/dist": folder.replace(/\/$/, "") },
    });
  }
})();
