// Loaded (only on pages with widgets) just before require.js and the widget manager, both shipped in this folder.
// The manager's CSS references its icon fonts relative to a public path it guesses from the page URL, which is wrong
// for pages in sub-folders; point it at the folder this script was served from (the book's _static).
window.__jupyter_widgets_assets_path__ = new URL(".", document.currentScript.src).href;

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
