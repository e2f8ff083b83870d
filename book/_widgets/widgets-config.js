// Loaded (only on pages with widgets) just before require.js and the widget manager, both shipped in this folder.
// The manager's bundled modules find their icon fonts relative to their AMD module URL, which require.js resolves
// against the page's folder (so fonts 404 on pages in sub-folders). A global `require` object defined before require.js
// loads is its configuration: map the widget modules onto the folder this script came from (the book's _static), where
// the fonts are shipped. The modules themselves are defined inside embed-amd.js and never fetched.
(function () {
  var here = new URL(".", document.currentScript.src).href.replace(/\/$/, "");
  window.__jupyter_widgets_assets_path__ = here + "/";
  window.require = {
    paths: {
      "@jupyter-widgets/html-manager/dist": here,
      "@jupyter-widgets/html-manager": here + "/html-manager",
      "@jupyter-widgets/base": here + "/base",
      "@jupyter-widgets/controls": here + "/controls",
    },
  };
})();

// ipywidgets typesets labels with MathJax 2's API (MathJax.Hub.Queue); the theme loads MathJax 3, which has no Hub, so
// every label with a description would throw. Give MathJax 3 (or its config object) a minimal Hub that forwards.
(function () {
  function shim() {
    var mj = window.MathJax;
    if (mj && !mj.Hub) {
      mj.Hub = {
        Queue: function (job) {
          var el = job && job[2];
          if (el && window.MathJax.typesetPromise) window.MathJax.typesetPromise([el]).catch(function () {});
        },
      };
    }
  }
  shim();
  document.addEventListener("DOMContentLoaded", shim);
  window.addEventListener("load", shim);
})();
