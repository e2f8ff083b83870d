// Loaded before the theme's FontAwesome script. By default FontAwesome *replaces* every <i class="fa ..."> element by an
// <svg>; the ipywidgets Play button keeps a reference to its <i> icon element, throws when it is gone, and the jslink
// chain Play -> slider -> frames breaks. "nest" puts the svg inside the <i> instead, so the element survives.
window.FontAwesomeConfig = Object.assign(window.FontAwesomeConfig || {}, { autoReplaceSvg: "nest" });
