// gonogo report.html: draws the charts described by the JSON of #gonogo-charts with uPlot.
// Every text from the run reaches the page through textContent or uPlot (which uses
// textContent too): never as HTML.
(function () {
  "use strict";
  var PALETTE = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7a8a", "#57606a"];

  function fixed(value, digits) {
    return Number(value.toFixed(digits)).toString();
  }

  function format(value, unit) {
    if (value === null || value === undefined || !isFinite(value)) return "—";
    var magnitude = Math.abs(value);
    if (unit === "seconds") {
      if (magnitude === 0) return "0";
      if (magnitude < 1e-3) return fixed(value * 1e6, 0) + " µs";
      if (magnitude < 1) return fixed(value * 1e3, magnitude < 0.01 ? 2 : 1) + " ms";
      return fixed(value, 2) + " s";
    }
    if (unit === "ratio") return fixed(value * 100, 2) + "%";
    if (unit === "bytes") {
      var steps = [[1073741824, "GiB"], [1048576, "MiB"], [1024, "KiB"]];
      for (var i = 0; i < steps.length; i++) {
        if (magnitude >= steps[i][0]) return fixed(value / steps[i][0], 1) + " " + steps[i][1];
      }
      return fixed(value, 0) + " B";
    }
    if (unit === "per_second") return fixed(value, magnitude < 10 ? 2 : 0) + "/s";
    return fixed(value, 3);
  }

  function percentileLabel(nines) {
    var percentile = 100 * (1 - Math.pow(10, -nines));
    var digits = Math.max(0, Math.ceil(nines - 2 + 1e-9));
    return fixed(percentile, digits) + "%";
  }

  function pad(number) {
    return (number < 10 ? "0" : "") + number;
  }

  function clock(seconds) {
    var d = new Date(seconds * 1000);
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
  }

  function drawOverlays(u, chart) {
    var ctx = u.ctx, top = u.bbox.top, height = u.bbox.height;
    ctx.save();
    chart.bands.forEach(function (band) {
      var left = Math.max(u.valToPos(band.from, "x", true), u.bbox.left);
      var right = Math.min(u.valToPos(band.to, "x", true), u.bbox.left + u.bbox.width);
      if (right <= left) right = left + 2;
      ctx.fillStyle = "rgba(209, 36, 47, 0.12)";
      ctx.fillRect(left, top, right - left, height);
    });
    chart.marks.forEach(function (mark) {
      var x = u.valToPos(mark.at, "x", true);
      ctx.strokeStyle = mark.label === "recovered" ? "#1a7f37" : "#9a6700";
      ctx.setLineDash([5, 4]);
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = ctx.strokeStyle;
      ctx.font = "12px sans-serif";
      ctx.fillText(mark.label, x + 4, top + 14);
    });
    ctx.restore();
  }

  function options(chart, width) {
    var xAxis = { stroke: "#57606a", grid: { stroke: "#eaeef2" } };
    var x = {};
    if (chart.kind === "time") {
      x = { time: false };
      xAxis.values = function (u, ticks) { return ticks.map(clock); };
      xAxis.incrs = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400];
      xAxis.space = 70;
      xAxis.label = "time (UTC)";
    } else if (chart.kind === "spectrum") {
      x = { time: false };
      xAxis.values = function (u, ticks) { return ticks.map(percentileLabel); };
      xAxis.splits = function (u) {
        // 0%, 50%, 75%, 90%, 99%, 99.9%, …: evenly spaced in nines, as HdrHistogram plots them
        var max = u.scales.x.max, splits = [0, Math.log10(2), Math.log10(4)];
        for (var n = 1; n <= max + 1e-9; n += 1) splits.push(n);
        return splits.filter(function (n) { return n <= max + 1e-9; });
      };
      xAxis.label = "percentile";
    } else {
      // half a run of room each side, so that the first and last labels are not cut
      x = { time: false, range: function (u, min, max) { return [min - 0.5, max + 0.5]; } };
      xAxis.values = function (u, ticks) {
        return ticks.map(function (t) { return chart.labels[Math.round(t)] || ""; });
      };
      xAxis.splits = function () { return chart.x; };
      xAxis.label = "run started (UTC, oldest first)";
    }
    var series = [{
      label: chart.kind === "spectrum" ? "percentile" : chart.kind === "runs" ? "run" : "time",
      value: function (u, v) {
        if (v === null || v === undefined) return "—";
        if (chart.kind === "time") return clock(v);
        if (chart.kind === "spectrum") return percentileLabel(v);
        return chart.tips[Math.round(v)] || chart.labels[Math.round(v)] || "";
      }
    }];
    var stepped = chart.kind === "time" ? uPlot.paths.stepped({ align: 1 }) : undefined;
    chart.series.forEach(function (s, index) {
      series.push({
        paths: stepped,
        label: s.label,
        stroke: PALETTE[index % PALETTE.length],
        width: 1.5,
        spanGaps: true,
        points: { show: chart.kind === "runs" },
        value: function (u, v) { return format(v, chart.unit); }
      });
    });
    var yAxis = {
      stroke: "#57606a",
      grid: { stroke: "#eaeef2" },
      size: 84,
      values: function (u, ticks) { return ticks.map(function (t) { return format(t, chart.unit); }); }
    };
    if (chart.unit === "bytes") {
      yAxis.incrs = [];  // round binary sizes: 1, 2, 4 … 512 KiB, MiB, GiB
      [1024, 1048576, 1073741824].forEach(function (base) {
        for (var m = 1; m < 1024; m *= 2) yAxis.incrs.push(base * m);
      });
    }
    return {
      width: width,
      height: chart.kind === "runs" ? 200 : 260,
      scales: { x: x, y: { range: function (u, min, max) { return [Math.min(0, min), max > 0 ? max * 1.05 : 1]; } } },
      axes: [xAxis, yAxis],
      series: series,
      hooks: { drawClear: [function (u) { drawOverlays(u, chart); }] }
    };
  }

  function draw() {
    var source = document.getElementById("gonogo-charts");
    if (!source) return;
    var charts = JSON.parse(source.textContent);
    var plots = [];
    charts.forEach(function (chart) {
      var holder = document.getElementById(chart.id);
      if (!holder) return;
      var width = Math.max(holder.clientWidth, 320);
      var data = [chart.x].concat(chart.series.map(function (s) { return s.values; }));
      plots.push([holder, new uPlot(options(chart, width), data, holder)]);
    });
    function fit(width) {
      plots.forEach(function (pair) {
        pair[1].setSize({ width: width || Math.max(pair[0].clientWidth, 320), height: pair[1].height });
      });
    }
    window.addEventListener("resize", function () { fit(); });
    // A printed page is narrower than the screen: draw the charts to its width, then back.
    window.addEventListener("beforeprint", function () { fit(680); });
    window.addEventListener("afterprint", function () { fit(); });
    document.body.setAttribute("data-charts-drawn", String(plots.length));
  }

  // A link to a row inside a closed <details> (the gates that passed, the evidence) opens it.
  function reveal() {
    var target = location.hash ? document.getElementById(location.hash.slice(1)) : null;
    for (var node = target; node; node = node.parentElement) {
      if (node.tagName === "DETAILS") node.open = true;
    }
    if (target) target.scrollIntoView();
  }

  window.addEventListener("hashchange", reveal);
  window.addEventListener("beforeprint", function () {
    Array.prototype.forEach.call(document.querySelectorAll("details"), function (d) { d.open = true; });
  });
  draw();
  reveal();
})();
