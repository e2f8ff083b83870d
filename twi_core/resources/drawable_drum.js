/*
 * A drum you can draw: the wave-equation RNN of twi_core.drum, running in the reader's browser.
 *
 * Everything numerical here is a transcription of twi_core.drum and twi_core.sound, kept operation for operation so the
 * page and the package agree to rounding (tests/test_browser.py checks it against the Python functions):
 *   - simulate():        drum.simulate's stencil path, i.e. the position form of drum.wave_step,
 *                        u[t+1] = m * ((k * (((left + right) + up) + down) - u[t-1]) + (2 - 4k) u[t]),  k = (c dt)^2,
 *                        Dirichlet: nodes outside the mask and outside the canvas are clamped to zero; no damping;
 *                        u[0] = unit impulse at drum.drum_centre(mask), v[0] = 0 (so u[-1] = u[0]); the probe is that
 *                        same node and sample t is recorded before step t, as in Python.
 *   - spectrum():        drum.spectrum: mean removed, numpy's Hann window, zero padded pad_factor times, |rfft|.
 *   - spectralPeaks():   drum.spectral_peaks: a bin that is the largest within +-1.5 unpadded bins and at least
 *                        rel_height times the largest bin (DC neighbourhood excluded), refined by a parabola
 *                        through the log-magnitude of its two neighbours.
 *   - fundamental():     drum.fundamental_frequency (the lowest peak at rel_height 0.01).
 *   - toneSamples():     sound.tone, from the eigenvalues the peaks imply through the leapfrog dispersion relation
 *                        (drum.eigenvalue_from_frequency).
 * The radix-2 FFT needs steps * pad_factor to be a power of two; the Python side that writes the config checks it.
 *
 * The page may embed several drums; one copy of this code serves them all (window.twiDrumLib). Each mounted drum is
 * pushed to window.twiDrums and the latest one is window.twiDrum, whose methods (setMask, run, fundamental, ...) are
 * the interface the browser tests use.
 */
(function () {
  "use strict";
  if (window.twiDrumLib) {
    return;
  }

  var PAD_FACTOR = 4;          // drum.spectrum's default zero padding
  var REL_FUNDAMENTAL = 0.01;  // drum.fundamental_frequency's default rel_height
  var REL_PEAKS = 1e-3;        // drum.spectral_peaks's default rel_height

  // ------------------------------------------------------------------------------------------------------------------
  // Physics: a transcription of twi_core.drum
  // ------------------------------------------------------------------------------------------------------------------

  /* drum.drum_centre: the free node nearest the centroid of the free nodes; ties go to the first in row-major order.
     Squared distances are rounded to 9 decimals first, as in Python, so that exact ties stay ties. */
  function drumCentre(mask, n) {
    var si = 0, sj = 0, count = 0, i, j;
    for (i = 0; i < n; i++) {
      for (j = 0; j < n; j++) {
        if (mask[i * n + j]) { si += i; sj += j; count++; }
      }
    }
    if (count === 0) { return null; }
    var ci = si / count, cj = sj / count, best = Infinity, bi = -1, bj = -1;
    for (i = 0; i < n; i++) {
      for (j = 0; j < n; j++) {
        if (!mask[i * n + j]) { continue; }
        var d2 = Math.round(((i - ci) * (i - ci) + (j - cj) * (j - cj)) * 1e9) / 1e9;
        if (d2 < best) { best = d2; bi = i; bj = j; }
      }
    }
    return [bi, bj];
  }

  /* drum.simulate (stencil path) for one n x n mask. Returns the probe trace and every frameEvery-th frame of the first
     nFrames (for the animation; not part of the Python result). */
  function simulate(mask, n, steps, dt, c, frameEvery, nFrames) {
    var probe = drumCentre(mask, n);
    if (probe === null) { return null; }
    var W2 = n + 2;                              // one clamped ring around the canvas, like Python's padding
    var cur = new Float64Array(W2 * W2), prev = new Float64Array(W2 * W2);
    var k = (c * dt) * (c * dt), a = 2.0 - 4.0 * k;
    var free = [], i, j;
    for (i = 0; i < n; i++) {
      for (j = 0; j < n; j++) {
        if (mask[i * n + j]) { free.push((i + 1) * W2 + j + 1); }
      }
    }
    var idx = new Int32Array(free);
    var p = (probe[0] + 1) * W2 + probe[1] + 1;
    cur[p] = 1.0;
    prev[p] = 1.0;                               // v_0 = 0 means u_{-1} = u_0
    var trace = new Float64Array(steps), frames = [];
    frameEvery = frameEvery || 0;
    for (var t = 0; t < steps; t++) {
      trace[t] = cur[p];
      if (frameEvery && t % frameEvery === 0 && frames.length < nFrames) {
        var f = new Float32Array(n * n);
        for (var q = 0; q < idx.length; q++) {
          var r = idx[q];
          f[(Math.floor(r / W2) - 1) * n + (r % W2) - 1] = cur[r];
        }
        frames.push(f);
      }
      // clamped nodes stay exactly zero (Python multiplies them by a = b = 0), so only free nodes are updated; the
      // order of the additions is Python's, which keeps the two traces equal to the last bit
      for (var m = 0; m < idx.length; m++) {
        var s = idx[m];
        var nb = ((cur[s - 1] + cur[s + 1]) + cur[s - W2]) + cur[s + W2];
        prev[s] = (nb * k - prev[s]) + cur[s] * a;
      }
      var swap = prev; prev = cur; cur = swap;
    }
    return { trace: trace, probe: probe, frames: frames, freeCells: idx.length };
  }

  /* In-place iterative radix-2 FFT of (re, im), length a power of two. */
  function fft(re, im) {
    var N = re.length, i, j, len;
    for (i = 1, j = 0; i < N; i++) {             // bit-reversal permutation
      var bit = N >> 1;
      for (; j & bit; bit >>= 1) { j ^= bit; }
      j ^= bit;
      if (i < j) {
        var tr = re[i]; re[i] = re[j]; re[j] = tr;
        var ti = im[i]; im[i] = im[j]; im[j] = ti;
      }
    }
    // twiddles from one table of the full length, so each is one rounding away from exact (a recurrence would
    // accumulate error over the 15 or so stages)
    var cosT = new Float64Array(N >> 1), sinT = new Float64Array(N >> 1);
    for (i = 0; i < N >> 1; i++) { cosT[i] = Math.cos(2 * Math.PI * i / N); sinT[i] = -Math.sin(2 * Math.PI * i / N); }
    for (len = 2; len <= N; len <<= 1) {
      var half = len >> 1, step = N / len;
      for (i = 0; i < N; i += len) {
        for (j = 0; j < half; j++) {
          var wr = cosT[j * step], wi = sinT[j * step];
          var xr = re[i + j + half] * wr - im[i + j + half] * wi;
          var xi = re[i + j + half] * wi + im[i + j + half] * wr;
          re[i + j + half] = re[i + j] - xr; im[i + j + half] = im[i + j] - xi;
          re[i + j] += xr; im[i + j] += xi;
        }
      }
    }
  }

  /* drum.spectrum: |rfft| of the mean-removed, Hann-windowed trace zero-padded padFactor times. */
  function spectrum(trace, dt, padFactor) {
    var T = trace.length, N = padFactor * T, mean = 0, i;
    for (i = 0; i < T; i++) { mean += trace[i]; }
    mean /= T;
    var re = new Float64Array(N), im = new Float64Array(N);
    for (i = 0; i < T; i++) {
      // numpy.hanning(T) in numpy's own form: 0.5 + 0.5 cos(pi n / (T - 1)), n = 1 - T, 3 - T, ..., T - 1
      var w = 0.5 + 0.5 * Math.cos(Math.PI * (2 * i + 1 - T) / (T - 1));
      re[i] = (trace[i] - mean) * w;
    }
    fft(re, im);
    var K = N / 2 + 1, mag = new Float64Array(K);
    for (i = 0; i < K; i++) { mag[i] = Math.hypot(re[i], im[i]); }
    return { df: 1 / (N * dt), mag: mag };
  }

  /* drum.spectral_peaks on a spectrum {df, mag}: frequencies of the peaks, lowest first. */
  function peaksOf(spec, padFactor, relHeight, count) {
    var mag = spec.mag, K = mag.length, half = Math.max(1, Math.round(1.5 * padFactor)), top = 0, k, q;
    for (k = padFactor; k < K; k++) { if (mag[k] > top) { top = mag[k]; } }
    var out = [];
    for (k = padFactor; k < K - 1; k++) {
      if (mag[k] < relHeight * top) { continue; }
      var isPeak = true;
      for (q = Math.max(0, k - half); q <= Math.min(K - 1, k + half); q++) {
        if (mag[q] > mag[k]) { isPeak = false; break; }
      }
      if (!isPeak) { continue; }
      var la = Math.log(mag[k - 1] + 1e-300), lb = Math.log(mag[k] + 1e-300), lc = Math.log(mag[k + 1] + 1e-300);
      var denom = la - 2 * lb + lc;
      var delta = denom < 0 ? 0.5 * (la - lc) / denom : 0.0;
      out.push((k + delta) * spec.df);
      if (count && out.length >= count) { break; }
    }
    return out;
  }

  function spectralPeaks(trace, dt, relHeight, count) {
    return peaksOf(spectrum(trace, dt, PAD_FACTOR), PAD_FACTOR, relHeight === undefined ? REL_PEAKS : relHeight, count);
  }

  function fundamental(trace, dt) {
    var p = spectralPeaks(trace, dt, REL_FUNDAMENTAL, 1);
    return p.length ? p[0] : null;
  }

  /* drum.eigenvalue_from_frequency: the Laplacian eigenvalue a leapfrog frequency belongs to. */
  function eigenvalueFromFrequency(f, dt, c) {
    var s = 2 * Math.sin(Math.PI * f * dt) / (c * dt);
    return s * s;
  }

  /* sound.tone: sum_k (1/k) exp(-t r_k / decay) sin(2 pi base r_k t), r_k = sqrt(lambda_k / reference), peak 0.9.
     Python refuses modes above the Nyquist frequency; a drawing can have any spectrum, so here they are left out. */
  function toneSamples(eigenvalues, reference, baseHz, seconds, sampleRate, decayS) {
    var L = Math.round(seconds * sampleRate), wave = new Float64Array(L), peak = 0, i, m;
    for (m = 0; m < eigenvalues.length; m++) {
      var ratio = Math.sqrt(eigenvalues[m] / reference), freq = baseHz * ratio, amp = 1 / (m + 1);
      if (!(freq < sampleRate / 2)) { continue; }
      for (i = 0; i < L; i++) {
        var t = i / sampleRate;
        wave[i] += amp * Math.exp(-t * ratio / decayS) * Math.sin(2 * Math.PI * freq * t);
      }
    }
    for (i = 0; i < L; i++) { peak = Math.max(peak, Math.abs(wave[i])); }
    var out = new Float32Array(L);
    for (i = 0; i < L && peak > 0; i++) { out[i] = 0.9 * wave[i] / peak; }
    return out;
  }

  // ------------------------------------------------------------------------------------------------------------------
  // The widget
  // ------------------------------------------------------------------------------------------------------------------

  var CSS = [
    ".twi-drum{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0.5em 0 1em;}",
    ".twi-drum .twi-drum-row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start;}",
    ".twi-drum canvas{display:block;background:#fff;}",
    ".twi-drum .twi-drum-board{cursor:crosshair;touch-action:none;border:1px solid #bbb;max-width:100%;}",
    ".twi-drum .twi-drum-side{display:flex;flex-direction:column;gap:8px;flex:1 1 280px;min-width:260px;" +
      "max-width:440px;}",
    ".twi-drum .twi-drum-bar{display:flex;flex-wrap:wrap;gap:4px;align-items:center;}",
    ".twi-drum .twi-drum-bar span{color:#666;font-size:12px;margin-right:2px;}",
    ".twi-drum button{font:inherit;font-size:13px;padding:2px 9px;border:1px solid #aaa;border-radius:4px;" +
      "background:#f6f6f6;color:#222;cursor:pointer;}",
    ".twi-drum button:hover{background:#eaeaea;}",
    ".twi-drum button.twi-on{background:#2b5d8a;border-color:#2b5d8a;color:#fff;}",
    ".twi-drum button.twi-drum-play{background:#b8452f;border-color:#b8452f;color:#fff;font-weight:600;}",
    ".twi-drum .twi-drum-spectrum{border:1px solid #ddd;width:100%;height:auto;}",
    ".twi-drum .twi-drum-readout{font-size:13px;min-height:4.2em;}",
    ".twi-drum .twi-drum-readout b{font-variant-numeric:tabular-nums;}"
  ].join("\n");

  function injectStyle() {
    if (document.getElementById("twi-drum-style")) { return; }
    var style = document.createElement("style");
    style.id = "twi-drum-style";
    style.textContent = CSS;
    document.head.appendChild(style);
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  /* Blue - white - red, the book's diverging scale for displacement (matplotlib's "bwr"). */
  function bwr(x) {
    x = Math.max(-1, Math.min(1, x));
    if (x < 0) { var a = 1 + x; return "rgb(" + Math.round(255 * a) + "," + Math.round(255 * a) + ",255)"; }
    var b = 1 - x; return "rgb(255," + Math.round(255 * b) + "," + Math.round(255 * b) + ")";
  }

  function niceStep(span) {
    var raw = span / 5, p = Math.pow(10, Math.floor(Math.log10(raw))), r = raw / p;
    return (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * p;
  }

  function mount(root, cfg) {
    injectStyle();
    var n = cfg.grid, cell = cfg.cell_px;
    var mask = new Uint8Array(n * n), tool = 1, brush = cfg.brush, last = null, result = null, audio = null;
    var animating = 0;

    root.textContent = "";
    var row = el("div", "twi-drum-row");
    var board = el("canvas", "twi-drum-board");
    board.width = n * cell; board.height = n * cell;
    board.setAttribute("aria-label", "drum drawing board, " + n + " by " + n + " cells");
    var side = el("div", "twi-drum-side");

    function button(bar, label, onClick, cls) {
      var b = el("button", cls, label);
      b.type = "button";
      b.addEventListener("click", onClick);
      bar.appendChild(b);
      return b;
    }

    var tools = el("div", "twi-drum-bar");
    tools.appendChild(el("span", "", "tool"));
    var paintBtn = button(tools, "paint", function () { setTool(1); }, "twi-on");
    var eraseBtn = button(tools, "erase", function () { setTool(0); });
    button(tools, "clear", function () { api.clear(); api.run(); });
    var brushes = el("div", "twi-drum-bar");
    brushes.appendChild(el("span", "", "brush"));
    var brushBtns = [0, 1, 2].map(function (r) {
      var b = button(brushes, String(2 * r + 1), function () { brush = r; markBrush(); });
      b.title = (2 * r + 1) + " cells wide";
      return b;
    });
    var presets = el("div", "twi-drum-bar");
    presets.appendChild(el("span", "", "shapes"));
    Object.keys(cfg.presets).forEach(function (name) {
      var b = button(presets, cfg.presets[name].label, function () { api.preset(name); api.run(); });
      b.title = cfg.presets[name].title;
    });
    var playBar = el("div", "twi-drum-bar");
    var playBtn = button(playBar, "\u25b6 strike and listen", function () { api.play(); }, "twi-drum-play");
    var spec = el("canvas", "twi-drum-spectrum");
    spec.width = cfg.spectrum_px[0]; spec.height = cfg.spectrum_px[1];
    var readout = el("div", "twi-drum-readout");
    [tools, brushes, presets, playBar, spec, readout].forEach(function (e) { side.appendChild(e); });
    row.appendChild(board); row.appendChild(side); root.appendChild(row);
    root.setAttribute("data-grid", String(n));
    root.setAttribute("data-steps", String(cfg.steps));
    root.setAttribute("data-dt", String(cfg.dt));
    root.setAttribute("data-c", String(cfg.c));

    function setTool(t) {
      tool = t;
      paintBtn.classList.toggle("twi-on", t === 1);
      eraseBtn.classList.toggle("twi-on", t === 0);
    }
    function markBrush() { brushBtns.forEach(function (b, r) { b.classList.toggle("twi-on", r === brush); }); }
    markBrush();

    // ---- drawing the board -----------------------------------------------------------------------------------------
    /* Does clamped cell (i, j) border the membrane? Diagonal neighbours count too: the stencil never reads them, but
       without them the rim has gaps at every convex corner and reads as broken. */
    function touches(i, j) {
      for (var di = -1; di <= 1; di++) {
        for (var dj = -1; dj <= 1; dj++) {
          var a = i + di, b = j + dj;
          if (a >= 0 && a < n && b >= 0 && b < n && mask[a * n + b]) { return true; }
        }
      }
      return false;
    }
    function drawBoard(frame, scale) {
      var g = board.getContext("2d"), i, j;
      g.fillStyle = "#eceae6";
      g.fillRect(0, 0, board.width, board.height);
      for (i = 0; i < n; i++) {
        for (j = 0; j < n; j++) {
          var q = i * n + j;
          if (mask[q]) {
            g.fillStyle = frame ? bwr(frame[q] / scale) : "#e9c77b";
          } else if (touches(i, j)) {
            g.fillStyle = "#5b4a3a";           // clamped neighbours of the membrane: the drum's rim (u = 0)
          } else {
            continue;
          }
          g.fillRect(j * cell, i * cell, cell, cell);
        }
      }
      g.strokeStyle = "rgba(0,0,0,0.07)";    // faint cell grid, so the reader sees the neurons
      g.lineWidth = 1;
      g.beginPath();
      for (i = 1; i < n; i++) {
        g.moveTo(i * cell + 0.5, 0); g.lineTo(i * cell + 0.5, n * cell);
        g.moveTo(0, i * cell + 0.5); g.lineTo(n * cell, i * cell + 0.5);
      }
      g.stroke();
      var centre = drumCentre(mask, n);
      if (centre) {                            // the struck and recorded neuron
        g.fillStyle = "#b8452f";
        g.beginPath();
        g.arc((centre[1] + 0.5) * cell, (centre[0] + 0.5) * cell, Math.max(2.5, cell * 0.42), 0, 2 * Math.PI);
        g.fill();
      }
    }

    // ---- painting with the pointer ----------------------------------------------------------------------------------
    function cellAt(ev) {
      var r = board.getBoundingClientRect();
      return [Math.floor((ev.clientY - r.top) / r.height * n), Math.floor((ev.clientX - r.left) / r.width * n)];
    }
    function dab(ci, cj, value) {
      for (var di = -brush; di <= brush; di++) {
        for (var dj = -brush; dj <= brush; dj++) {
          var i = ci + di, j = cj + dj;
          if (i >= 0 && i < n && j >= 0 && j < n) { mask[i * n + j] = value; }
        }
      }
    }
    function strokeTo(to, value) {
      // every cell on the segment from the previous pointer position, so a fast stroke leaves no gaps
      var from = last || to, steps = Math.max(Math.abs(to[0] - from[0]), Math.abs(to[1] - from[1]), 1);
      for (var s = 0; s <= steps; s++) {
        dab(Math.round(from[0] + (to[0] - from[0]) * s / steps), Math.round(from[1] + (to[1] - from[1]) * s / steps),
            value);
      }
      last = to;
    }
    var strokeValue = 1, drawing = false;
    board.addEventListener("contextmenu", function (ev) { ev.preventDefault(); });
    board.addEventListener("pointerdown", function (ev) {
      ev.preventDefault();
      drawing = true;
      strokeValue = (ev.button === 2 || ev.shiftKey) ? 0 : tool;  // right button or shift erases
      last = null;
      if (board.setPointerCapture) { try { board.setPointerCapture(ev.pointerId); } catch (e) { /* synthetic */ } }
      strokeTo(cellAt(ev), strokeValue);
      stopAnimation();
      drawBoard();
    });
    board.addEventListener("pointermove", function (ev) {
      if (!drawing) { return; }
      strokeTo(cellAt(ev), strokeValue);
      drawBoard();
    });
    function endStroke() {
      if (!drawing) { return; }
      drawing = false;
      last = null;
      api.run();                               // a few tens of milliseconds: the spectrum follows every stroke
    }
    board.addEventListener("pointerup", endStroke);
    board.addEventListener("pointercancel", endStroke);

    // ---- the spectrum plot ------------------------------------------------------------------------------------------
    function drawSpectrum() {
      var g = spec.getContext("2d"), w = spec.width, h = spec.height, L = 34, R = 8, T = 10, B = 32;
      g.fillStyle = "#fff"; g.fillRect(0, 0, w, h);
      g.font = "11px system-ui, sans-serif";
      if (!result) {
        g.fillStyle = "#888"; g.fillText("paint a drum to hear it", L + 10, h / 2);
        return;
      }
      var mag = result.spectrum.mag, df = result.spectrum.df, peaks = result.peaks, f1 = result.fundamental;
      var fmax = Math.max(peaks.length ? peaks[peaks.length - 1] * 1.15 : 0, 4 * f1);
      var kmax = Math.min(mag.length - 1, Math.ceil(fmax / df)), top = 0, k;
      for (k = PAD_FACTOR; k <= kmax; k++) { top = Math.max(top, mag[k]); }
      var DB = 4;                              // four decades of magnitude, like the chapter's spectrum plot
      function x(f) { return L + (w - L - R) * f / (kmax * df); }
      function y(m) { var v = Math.log10(Math.max(m / top, 1e-12)); return T + (h - T - B) * Math.min(1, -v / DB); }
      g.strokeStyle = "#ccc"; g.lineWidth = 1; g.beginPath();
      g.moveTo(L, T); g.lineTo(L, h - B); g.lineTo(w - R, h - B); g.stroke();
      g.fillStyle = "#666"; g.textAlign = "center";
      var st = niceStep(kmax * df);
      for (var f = 0; f <= kmax * df + 1e-12; f += st) {
        g.fillText(f.toFixed(st < 0.01 ? 3 : 2), x(f), h - B + 13);
        g.beginPath(); g.moveTo(x(f), h - B); g.lineTo(x(f), h - B + 3); g.stroke();
      }
      g.fillText("frequency (cycles per unit time)", L + (w - L - R) / 2, h - 2);
      g.textAlign = "right";
      // decade labels, the lowest left out: it would sit on the first frequency label
      for (var d = 0; d < DB; d += 2) { g.fillText(d === 0 ? "1" : "1e-" + d, L - 3, T + (h - T - B) * d / DB + 4); }
      for (d = 1; d <= DB; d++) {
        g.beginPath(); g.moveTo(L - 3, T + (h - T - B) * d / DB); g.lineTo(L, T + (h - T - B) * d / DB); g.stroke();
      }
      g.strokeStyle = "rgba(43,93,138,0.25)";
      peaks.forEach(function (p) { g.beginPath(); g.moveTo(x(p), T); g.lineTo(x(p), h - B); g.stroke(); });
      g.strokeStyle = "#2b5d8a"; g.lineWidth = 1.2; g.beginPath();
      g.moveTo(x(0), y(mag[0]));
      for (k = 1; k <= kmax; k++) { g.lineTo(x(k * df), y(mag[k])); }
      g.stroke();
      g.strokeStyle = "#b8452f"; g.lineWidth = 1.5;
      g.beginPath(); g.moveTo(x(f1), T); g.lineTo(x(f1), h - B); g.stroke();
      g.fillStyle = "#b8452f"; g.textAlign = "left";
      g.fillText("f\u2081", x(f1) + 3, T + 10);
    }

    function describe() {
      if (!result) {
        readout.textContent = "No drum yet: paint one, or pick a shape.";
        return;
      }
      var f1 = result.fundamental, mu = eigenvalueFromFrequency(f1, cfg.dt, cfg.c);
      // drum.side_from_fundamental: the square that rings at this fundamental (the "square area theory", exactly)
      var sideSq = Math.PI / (2 * Math.asin(Math.sqrt(mu / 8)));
      readout.innerHTML = "";
      readout.appendChild(document.createTextNode("fundamental "));
      readout.appendChild(el("b", "", "f\u2081 = " + f1.toFixed(6)));
      readout.appendChild(document.createTextNode(" cycles per unit time, the lowest peak of the red neuron's " +
        "spectrum (" + result.peaks.length + " peaks marked, and heard); " + result.freeCells + " free neurons. " +
        "A square drum with this fundamental has side " + sideSq.toFixed(1) + " (area " +
        (sideSq * sideSq).toFixed(0) + "). It sounds at " +
        (cfg.base_hz * Math.sqrt(mu / cfg.reference_eigenvalue)).toFixed(0) + " Hz."));
    }

    // ---- animation while the tone plays -----------------------------------------------------------------------------
    function stopAnimation() { if (animating) { cancelAnimationFrame(animating); animating = 0; } }
    function animate() {
      stopAnimation();
      if (!result || !result.frames.length) { return; }
      var frames = result.frames, scale = 0, t0 = null, q;
      // one colour scale for all frames, set by the waves after the first few frames so the initial spike saturates
      for (var f = Math.min(8, frames.length - 1); f < frames.length; f++) {
        for (q = 0; q < frames[f].length; q++) { scale = Math.max(scale, Math.abs(frames[f][q])); }
      }
      scale = scale || 1;
      function tick(now) {
        if (t0 === null) { t0 = now; }
        var k = Math.floor((now - t0) / 1000 * cfg.anim_fps);
        if (k >= frames.length) { animating = 0; drawBoard(); return; }
        drawBoard(frames[k], scale);
        animating = requestAnimationFrame(tick);
      }
      animating = requestAnimationFrame(tick);
    }

    // ---- the public interface ---------------------------------------------------------------------------------------
    var api = {
      root: root,
      grid: n,
      /* Replace the drawing: a flat array of n*n values or n rows of n values, truthy = free neuron. */
      setMask: function (m) {
        var flat = (m.length === n && m[0] && m[0].length === n) ? [].concat.apply([], m) : m;
        if (flat.length !== n * n) {
          throw new Error("setMask needs " + n * n + " cells or " + n + " rows of " + n + "; got " + flat.length);
        }
        for (var q = 0; q < n * n; q++) { mask[q] = flat[q] ? 1 : 0; }
        stopAnimation();
        drawBoard();
        return api;
      },
      /* The drawing as n rows of n zeros and ones. */
      getMask: function () {
        var rows = [];
        for (var i = 0; i < n; i++) { rows.push(Array.prototype.slice.call(mask, i * n, (i + 1) * n)); }
        return rows;
      },
      preset: function (name) {
        var p = cfg.presets[name];
        if (!p) {
          throw new Error("unknown shape " + JSON.stringify(name) + "; expected one of " +
                          JSON.stringify(Object.keys(cfg.presets)));
        }
        return api.setMask(p.cells.split("").map(Number));
      },
      clear: function () { return api.setMask(new Array(n * n).fill(0)); },
      /* Simulate, take the spectrum, find the peaks; updates the plot, the text and the data attributes. */
      run: function () {
        var sim = simulate(mask, n, cfg.steps, cfg.dt, cfg.c, cfg.frame_every, cfg.n_frames);
        if (sim === null) {
          result = null;
          root.setAttribute("data-state", "empty");
          root.removeAttribute("data-fundamental");
          root.setAttribute("data-free-cells", "0");
        } else {
          var sp = spectrum(sim.trace, cfg.dt, PAD_FACTOR);
          var f1 = peaksOf(sp, PAD_FACTOR, REL_FUNDAMENTAL, 1);
          result = { trace: sim.trace, probe: sim.probe, frames: sim.frames, freeCells: sim.freeCells, spectrum: sp,
                     fundamental: f1.length ? f1[0] : null, peaks: peaksOf(sp, PAD_FACTOR, REL_PEAKS, cfg.n_modes) };
          if (result.fundamental === null) { result = null; }
          root.setAttribute("data-state", result ? "done" : "empty");
          root.setAttribute("data-free-cells", String(sim.freeCells));
          if (result) { root.setAttribute("data-fundamental", String(result.fundamental)); }
          root.setAttribute("data-probe", sim.probe.join(","));
        }
        drawBoard();
        drawSpectrum();
        describe();
        return result ? { fundamental: result.fundamental, peaks: result.peaks.slice(), freeCells: result.freeCells,
                          probe: result.probe.slice() } : null;
      },
      fundamental: function () { return result ? result.fundamental : null; },
      peaks: function () { return result ? result.peaks.slice() : []; },
      trace: function () { return result ? Array.from(result.trace) : []; },
      /* The eigenvalues the peaks stand for and the reference the tone is pitched against. */
      eigenvalues: function () {
        return result ? result.peaks.map(function (f) { return eigenvalueFromFrequency(f, cfg.dt, cfg.c); }) : [];
      },
      /* sound.tone's samples for this drum (before the playback envelope). */
      toneSamples: function () {
        var lam = api.eigenvalues();
        return lam.length ? toneSamples(lam, cfg.reference_eigenvalue, cfg.base_hz, cfg.seconds, cfg.sample_rate,
                                        cfg.decay_s) : new Float32Array(0);
      },
      /* Strike: run if needed, play the tone with a short fade in and out, animate the membrane meanwhile. */
      play: function () {
        if (!result) { api.run(); }
        if (!result) { return false; }
        animate();
        var Ctx = window.AudioContext || window.webkitAudioContext;
        if (!Ctx) { root.setAttribute("data-audio", "unavailable"); return false; }
        try {
          audio = audio || new Ctx();
          if (audio.resume) { audio.resume(); }
          var samples = api.toneSamples(), buf = audio.createBuffer(1, samples.length, cfg.sample_rate);
          buf.getChannelData(0).set(samples);
          var src = audio.createBufferSource(), gain = audio.createGain(), t0 = audio.currentTime + 0.02;
          var end = t0 + samples.length / cfg.sample_rate;
          // the envelope lives in the gain, so the samples stay sound.tone's: 5 ms attack (no click), a fade over the
          // last 0.3 s (the tone is cut, not yet silent, at its end)
          gain.gain.setValueAtTime(0, t0);
          gain.gain.linearRampToValueAtTime(cfg.volume, t0 + 0.005);
          gain.gain.setValueAtTime(cfg.volume, end - 0.3);
          gain.gain.linearRampToValueAtTime(0, end);
          src.buffer = buf;
          src.connect(gain); gain.connect(audio.destination);
          src.start(t0);
          root.setAttribute("data-audio", "played");
          return true;
        } catch (e) {
          root.setAttribute("data-audio", "error: " + e.message);
          return false;
        }
      }
    };

    playBtn.title = "strike the red neuron and listen";
    api.preset(cfg.initial);
    api.run();
    window.twiDrums = window.twiDrums || [];
    window.twiDrums.push(api);
    window.twiDrum = api;
    root.setAttribute("data-ready", "1");
    return api;
  }

  window.twiDrumLib = {
    mount: mount,
    drumCentre: drumCentre,
    simulate: simulate,
    spectralPeaks: spectralPeaks,
    fundamental: fundamental,
    eigenvalueFromFrequency: eigenvalueFromFrequency,
    toneSamples: toneSamples
  };
})();
