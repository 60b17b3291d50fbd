// ticgw: a small line chart drawn in SVG, no library. A polyline per run of known values (a
// null value breaks the line), the y axis with three labels, the x axis with a few times (GMT).
//
//   var c = ticgwChart(svgElement, {ymin, ymax, span, step, threshold, thresholdLabel, empty,
//                                   decimals});
//   c.set([[epochSeconds, value], ...]);   c.add(t, value);
//
// The x axis runs from the oldest point kept (at most `span` seconds before the newest) to the
// newest; `add` keeps at most one point per `step` seconds.
"use strict";
(function () {
  var NS = "http://www.w3.org/2000/svg";
  var M = { left: 52, right: 14, top: 14, bottom: 26 };

  function node(tag, attrs, text) {
    var e = document.createElementNS(NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function hhmm(t, seconds) {
    var d = new Date(t * 1000);
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) +
      (seconds ? ":" + pad(d.getUTCSeconds()) : "");
  }

  // the smallest of 1, 2, 2.5, 5 x 10^k at or above v
  function niceCeil(v) {
    if (v <= 0) return 1;
    var k = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) { if (steps[i] * k >= v) return steps[i] * k; }
    return 10 * k;
  }

  function Chart(svg, opts) {
    this.svg = svg;
    this.opts = opts || {};
    this.points = [];
    var self = this;
    window.addEventListener("resize", function () { self.draw(); });
  }

  Chart.prototype.set = function (points) {
    this.live = null;
    this.points = (points || []).filter(function (p) { return p && typeof p[0] === "number"; })
      .map(function (p) { return [p[0], p[1] === null || p[1] === undefined ? null : Number(p[1])]; });
    this.points.sort(function (a, b) { return a[0] - b[0]; });
    this.trim();
    this.draw();
  };

  // one more point (at most one per `step` seconds: a value sooner is only shown as the
  // latest, at the top right); true when it was taken as a point
  Chart.prototype.add = function (t, v) {
    var last = this.points[this.points.length - 1];
    v = v === null || v === undefined ? null : Number(v);
    if (last && t - last[0] < (this.opts.step || 0)) {
      this.live = [t, v];
      this.draw();
      return false;
    }
    this.live = null;
    this.points.push([t, v]);
    this.trim();
    this.draw();
    return true;
  };

  Chart.prototype.trim = function () {
    var span = this.opts.span;
    if (!span || !this.points.length) return;
    var from = this.points[this.points.length - 1][0] - span;
    while (this.points.length && this.points[0][0] < from) this.points.shift();
  };

  Chart.prototype.format = function (v) {
    var d = this.opts.decimals === undefined ? 1 : this.opts.decimals;
    return Number(v).toFixed(d);
  };

  Chart.prototype.draw = function () {
    var svg = this.svg, o = this.opts, pts = this.points;
    var W = Math.max(200, Math.round(svg.clientWidth || 600));
    var H = Math.max(120, Math.round(svg.clientHeight || 220));
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute("data-count", String(pts.length));
    var known = pts.filter(function (p) { return p[1] !== null && !isNaN(p[1]); });
    if (!known.length) {
      svg.appendChild(node("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, o.empty || ""));
      return;
    }
    var values = known.map(function (p) { return p[1]; });
    var lo = o.ymin !== undefined ? o.ymin : Math.min(0, Math.min.apply(null, values));
    var hi = o.ymax !== undefined ? o.ymax : niceCeil(Math.max.apply(null, values));
    if (hi <= lo) hi = lo + 1;
    var x1 = pts[pts.length - 1][0];
    var x0 = pts[0][0];
    if (x1 - x0 < (o.step || 60)) x0 = x1 - (o.step || 60);
    var pw = W - M.left - M.right, ph = H - M.top - M.bottom;
    function X(t) { return M.left + (t - x0) / (x1 - x0) * pw; }
    function Y(v) { return M.top + (1 - (Math.min(Math.max(v, lo), hi) - lo) / (hi - lo)) * ph; }

    // grid and y labels: bottom, middle, top
    [lo, (lo + hi) / 2, hi].forEach(function (v) {
      svg.appendChild(node("line", { x1: M.left, x2: W - M.right, y1: Y(v), y2: Y(v),
                                     "class": "grid" }));
      svg.appendChild(node("text", { x: M.left - 6, y: Y(v) + 4, "text-anchor": "end" },
                           this.format(v)));
    }, this);
    if (o.threshold !== undefined && o.threshold > lo && o.threshold < hi) {
      svg.appendChild(node("line", { x1: M.left, x2: W - M.right, y1: Y(o.threshold),
                                     y2: Y(o.threshold), "class": "threshold",
                                     style: "stroke: var(--warn); stroke-dasharray: 5 4" }));
      if (o.thresholdLabel) {
        svg.appendChild(node("text", { x: W - M.right - 2, y: Y(o.threshold) - 4,
                                       "text-anchor": "end", style: "fill: var(--warn)" },
                             o.thresholdLabel));
      }
    }
    // axes
    svg.appendChild(node("line", { x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom,
                                   "class": "axis", style: "stroke: var(--muted)" }));
    svg.appendChild(node("line", { x1: M.left, x2: W - M.right, y1: H - M.bottom,
                                   y2: H - M.bottom, "class": "axis",
                                   style: "stroke: var(--muted)" }));
    // x labels: four times, GMT
    for (var i = 0; i < 4; i++) {
      var t = x0 + (x1 - x0) * i / 3;
      svg.appendChild(node("text", { x: X(t), y: H - 8,
                                     "text-anchor": i === 0 ? "start" : (i === 3 ? "end" : "middle") },
                           hhmm(t, x1 - x0 < 600)));
    }
    // the line: one polyline per run of known values
    var run = [];
    var runs = [run];
    pts.forEach(function (p) {
      if (p[1] === null || isNaN(p[1])) { if (run.length) { run = []; runs.push(run); } return; }
      run.push(X(p[0]).toFixed(1) + "," + Y(p[1]).toFixed(1));
    });
    runs.forEach(function (r) {
      if (!r.length) return;
      svg.appendChild(node("polyline", { points: r.join(" ") }));
      if (r.length === 1) {
        var xy = r[0].split(",");
        svg.appendChild(node("circle", { cx: xy[0], cy: xy[1], r: 3,
                                         style: "fill: var(--accent)" }));
      }
    });
    // the newest value at the top right
    var latest = this.live || known[known.length - 1];
    svg.appendChild(node("text", { x: W - M.right, y: M.top - 2, "text-anchor": "end",
                                   "class": "latest" },
                         (latest[1] === null ? "?" : this.format(latest[1])) +
                         " (" + hhmm(latest[0], true) + ")"));
  };

  window.ticgwChart = function (svg, opts) { return new Chart(svg, opts); };
})();
