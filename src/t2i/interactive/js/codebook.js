// The no-kernel codebook explorer. Each code is a point at its first two
// principal components, its area set by usage; hovering (or a click, which
// pins it) shows the code's tiles of the decoded-image and patch sprites.
function t2iCodebook(root) {
  var spec = JSON.parse(root.querySelector(".cb-spec").textContent);
  var scatter = root.querySelector(".cb-scatter"), size = scatter.width;
  var decodedCanvas = root.querySelector(".cb-decoded"), patchCanvas = root.querySelector(".cb-patches");
  var decodedSheet = new Image(), stripSheet = new Image(), loaded = 0;
  var maxUse = Math.max.apply(null, spec.usage), pinned = null, current = spec.start;
  decodedSheet.onload = stripSheet.onload = function () { if (++loaded === 2) show(current); };
  decodedSheet.src = spec.decoded; stripSheet.src = spec.strips;
  function radius(u) { return u > 0 ? 2 + 7 * Math.sqrt(u / maxUse) : 2.5; }
  function drawAxisLabels(c) {
    c.save();
    c.fillStyle = "#777"; c.font = "11px sans-serif"; c.textAlign = "center";
    c.fillText("PC 1 \u2192", size / 2, size - 4);
    c.translate(11, size / 2); c.rotate(-Math.PI / 2);
    c.fillText("PC 2 \u2192", 0, 0);
    c.restore();
  }
  function draw() {
    var c = scatter.getContext("2d");
    c.fillStyle = "white"; c.fillRect(0, 0, size, size);
    drawAxisLabels(c);
    spec.points.forEach(function (p, k) {
      var x = p[0] * size, y = (1 - p[1]) * size;
      c.beginPath(); c.arc(x, y, radius(spec.usage[k]), 0, 2 * Math.PI);
      if (spec.usage[k] > 0) { c.fillStyle = "rgba(31,119,180,0.55)"; c.fill(); }
      else { c.strokeStyle = "#999"; c.stroke(); }
    });
    var p = spec.points[current];
    c.strokeStyle = "#d62728"; c.lineWidth = 2.5;
    c.beginPath(); c.arc(p[0] * size, (1 - p[1]) * size, radius(spec.usage[current]) + 4, 0, 2 * Math.PI); c.stroke();
    c.lineWidth = 1;
  }
  function show(k) {
    current = k; draw();
    var u = spec.usage[k], share = spec.total ? 100 * u / spec.total : 0;
    root.querySelector(".cb-info").textContent = "code " + k + ": used " + u + " times (" +
      share.toFixed(2) + "% of grid cells)" + (pinned === k ? " · pinned" : "");
    if (loaded < 2) return;
    var d = decodedCanvas.getContext("2d"), t = spec.tile;
    d.imageSmoothingEnabled = false;
    d.drawImage(decodedSheet, 0, k * t, t, t, 0, 0, decodedCanvas.width, decodedCanvas.height);
    var w = spec.strip[0], h = spec.strip[1], scale = patchCanvas.height / h;
    patchCanvas.width = Math.round(w * scale);  // also resets the canvas
    var pc = patchCanvas.getContext("2d");
    pc.imageSmoothingEnabled = false;
    pc.fillStyle = "white"; pc.fillRect(0, 0, patchCanvas.width, patchCanvas.height);
    pc.drawImage(stripSheet, 0, k * h, w, h, 0, 0, w * scale, h * scale);
    if (u === 0) { pc.fillStyle = "#555"; pc.font = "13px sans-serif"; pc.fillText("no patch: this code is never used", 4, 34); }
  }
  function nearest(e) {
    var r = scatter.getBoundingClientRect();
    var x = (e.clientX - r.left) / r.width, y = 1 - (e.clientY - r.top) / r.height, best = 0, bestD = 1e9;
    spec.points.forEach(function (p, k) {
      var dd = (p[0] - x) * (p[0] - x) + (p[1] - y) * (p[1] - y);
      if (dd < bestD) { bestD = dd; best = k; }
    });
    return best;
  }
  scatter.addEventListener("mousemove", function (e) { if (pinned === null) show(nearest(e)); });
  scatter.addEventListener("click", function (e) {
    var k = nearest(e); pinned = pinned === k ? null : k; show(k);
  });
  draw(); show(current);
}
